"""Export-only torch modules for the MobileNets: the log-mel frontend as a convolution, and the
whole pipeline (frontend, folded backbone, feature taps) as one traceable module.

They compute the numbers of :class:`~hear_mn.models.efficientat.log_mel_frontend.LogMelFrontend` and
:meth:`~hear_mn.models.efficientat.efficientat_embedder.MobileNetEmbedder.embed_mels` with
operations every ONNX runtime has: ``torch.stft`` with complex output does not export with the
TorchScript exporter, so the STFT is a strided Conv1d with fixed DFT kernels (cos and sin, the
window folded in, computed in float64, trimmed to the window's non-zero taps and to the FFT bins the
mel matrix uses). The torch path is not changed; these modules exist only to be traced.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hear_mn.export.graph import signal_length
from hear_mn.models.efficientat.efficientat_embedder import EfficientATEmbedder, MobileNetEmbedder
from hear_mn.models.efficientat.inference_rewrites import fold_batchnorm
from hear_mn.models.efficientat.log_mel_frontend import (
    LOG_OFFSET,
    NORM_SCALE,
    NORM_SHIFT,
    PREEMPHASIS,
    LogMelFrontend,
)
from hear_mn.models.efficientat.mobilenet_network import concatenate_taps


def mirror(positions: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """:func:`hear_mn.audio.reflect_index` without a branch on ``n``: positions mirrored into
    ``[0, n)`` (edge sample not repeated; a one-sample signal maps everything to 0)."""
    period = torch.clamp(2 * (n - 1), min=1)
    folded = torch.remainder(positions, period)
    return torch.where(folded < n, folded, period - folded)


class ConvLogMel(nn.Module):
    """(batch, samples) -> (batch, n_mels, frames): :class:`LogMelFrontend`'s numbers, traceable.

    Pre-emphasis and the STFT's mirror padding are one gather pair on the raw samples (with
    :func:`mirror`, so that signals shorter than the padding, down to one sample, follow the
    library's rule), the STFT is a Conv1d, then power, mel matrix, log and normalisation.
    """

    def __init__(self, frontend: LogMelFrontend) -> None:
        super().__init__()
        n_fft = frontend.n_fft
        window = frontend.window.detach().double().cpu()
        taps = torch.nonzero(window).flatten()
        first, stop = int(taps[0]), int(taps[-1]) + 1
        mel_matrix = frontend.mel_matrix.detach().float().cpu()
        used = torch.nonzero(mel_matrix.abs().sum(0)).flatten()
        low, high = int(used[0]), int(used[-1]) + 1
        bins = torch.arange(low, high, dtype=torch.float64)[:, None]
        times = torch.arange(first, stop, dtype=torch.float64)[None]
        # (k * n) mod n_fft keeps the angle small, so cos and sin stay exact in float64.
        angle = (2 * math.pi / n_fft) * torch.remainder(bins * times, n_fft)
        kernel = torch.cat([torch.cos(angle), -torch.sin(angle)]) * window[first:stop]
        self.register_buffer("kernel", kernel.float()[:, None])
        self.register_buffer("mel_matrix", mel_matrix[:, low:high].contiguous())
        self.n_bins = high - low
        self.hop_length = frontend.hop_length
        # Frame j covers emphasised samples [j * hop - n_fft / 2, j * hop + n_fft / 2); only
        # the window's non-zero taps [first, stop) of it are computed.
        self.left = n_fft // 2 - first
        self.right = stop - n_fft // 2

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        n = signal_length(audio)
        # Pre-emphasis leaves n - 1 samples (a one-sample signal is mirrored to two first).
        m = torch.clamp(n - 1, min=1)
        index = mirror(torch.arange(-self.left, m + self.right), m)
        following = torch.minimum(index + 1, n - 1)
        signal = audio.index_select(-1, following) - PREEMPHASIS * audio.index_select(-1, index)
        spectrum = nn.functional.conv1d(signal[:, None], self.kernel, stride=self.hop_length)
        real, imag = spectrum.split(self.n_bins, dim=1)
        power = real.square() + imag.square()
        mel = torch.matmul(self.mel_matrix, power)
        return (torch.log(mel + LOG_OFFSET) + NORM_SHIFT) / NORM_SCALE


class TapsGraph(nn.Module):
    """An EfficientAT embedder as one module: audio or log-mel in, ``(batch, D)`` embeddings
    out. With ``frontend`` it takes ``(batch, samples)`` audio (:class:`ConvLogMel` first);
    without, ``(batch, n_mels, frames)`` log-mels. ``backbone`` is the family's traceable
    float32 CPU copy, run only as far as the model's features need."""

    def __init__(self, model: EfficientATEmbedder, backbone: nn.Module, *, frontend: bool) -> None:
        super().__init__()
        self.frontend = ConvLogMel(model.frontend) if frontend else None
        self.backbone = backbone.to(memory_format=torch.contiguous_format).eval()
        self.features = model.features
        self.plan = model.plan

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mels = x if self.frontend is None else self.frontend(x)
        outputs = self.backbone(mels[:, None], self.plan)
        return concatenate_taps(self.features, outputs, mels)


class MobileNetGraph(TapsGraph):
    """A MobileNet as a :class:`TapsGraph`: its backbone a float32 CPU copy with BatchNorm
    folded (:func:`~hear_mn.models.efficientat.inference_rewrites.fold_batchnorm`, the inference
    copy's numbers)."""

    def __init__(self, model: MobileNetEmbedder, *, frontend: bool) -> None:
        backbone = fold_batchnorm(model.backbone).float().cpu()
        super().__init__(model, backbone, frontend=frontend)
