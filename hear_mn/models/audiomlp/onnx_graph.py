"""Audio-MLP's ONNX export (kwmlp, audiomae): traceable forms of its frontend, its chunked
pass and its scene embedding, and the export the family hands over
(:func:`audiomlp_graph_spec`).

:class:`~hear_mn.models.audiomlp.network.AudioMLPModel` computes an FFT (complex, not
exportable with the TorchScript exporter) and resamples frames to the scene's time steps
with a loop whose length depends on the clip (``resample_time``), which a trace would freeze
to one length. Here the FFT is a strided Conv1d with fixed DFT kernels (window folded in,
float64), and the loop is unrolled into :data:`HALVING_STAGES` stages that each halve the
frames or pass them through unchanged, decided in the graph, so one graph serves every clip
length.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from hear_mn.export.graph import VERIFY_SEED, GraphSpec, signal_length, verify_audio
from hear_mn.export.spec import graph_metadata, reference_on, window_entries
from hear_mn.models.audiomlp.architectures import (
    AUDIOMLP_FAMILY,
    CHUNK_SAMPLES,
    FRAMES_PER_CHUNK,
    HOP,
    N_FFT,
)
from hear_mn.models.audiomlp.network import PAD_END, PAD_START, AudioMLPModel

# Halvings the graph can make: enough for clips of up to steps * 2 ** 21 frames of 10 ms
# (over 90 hours for kwmlp's 16 steps, far more for audiomae's 198), beyond any one input.
HALVING_STAGES = 20


class ConvFeatures(nn.Module):
    """(chunks, 16000) -> (chunks, n_mels, 98):
    :class:`~hear_mn.models.audiomlp.network.AudioMLPFrontend`'s
    numbers with the FFT as a Conv1d (power mel, or MFCCs with the per-chunk 80 dB floor)."""

    def __init__(self, model: AudioMLPModel) -> None:
        super().__init__()
        frontend = model.frontend
        window = frontend.window.detach().double().cpu()
        bins = torch.arange(N_FFT // 2 + 1, dtype=torch.float64)[:, None]
        times = torch.arange(N_FFT, dtype=torch.float64)[None]
        angle = (2 * math.pi / N_FFT) * torch.remainder(bins * times, N_FFT)
        kernel = torch.cat([torch.cos(angle), -torch.sin(angle)]) * window
        self.register_buffer("kernel", kernel.float()[:, None])
        self.register_buffer("mel_basis", frontend.mel_basis.detach().float().cpu())
        self.mfcc = frontend.kind == "mfcc"
        if self.mfcc:
            self.register_buffer("dct_basis", frontend.dct_basis.detach().float().cpu())

    def forward(self, chunks: torch.Tensor) -> torch.Tensor:
        spectrum = F.conv1d(chunks[:, None], self.kernel, stride=HOP)
        real, imag = spectrum.split(N_FFT // 2 + 1, dim=1)
        power = (real.square() + imag.square()).transpose(1, 2)  # (N, 98, 241)
        feats = torch.matmul(power, self.mel_basis)
        if self.mfcc:
            db = 10.0 * torch.log10(torch.clamp(feats, min=1e-10))
            floor = db.amax(dim=(1, 2), keepdim=True) - 80.0
            feats = torch.matmul(torch.maximum(db, floor), self.dct_basis)
        return feats.transpose(1, 2)


def _linear_resize(x: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """(B, D, L) -> (B, D, size): ``F.interpolate(mode="linear", align_corners=True)``'s
    arithmetic (float32 scale, floor index, clamped weight) with a size known only at run
    time. ``size == L`` returns ``x`` exactly."""
    length = signal_length(x)
    scale = (length - 1).float() / torch.clamp(size - 1, min=1).float()
    source = torch.arange(size).float() * scale
    first = source.long()
    second = torch.minimum(first + 1, length - 1)
    weight = torch.clamp(source - first.float(), 0.0, 1.0)
    return x.index_select(-1, first) * (1.0 - weight) + x.index_select(-1, second) * weight


def resample_frames(frames: torch.Tensor, steps: int) -> torch.Tensor:
    """:func:`hear_mn.models.audiomlp.network.resample_time` as a fixed graph:
    (B, T, D) -> (B, steps, D).

    Zero-pad to ``steps``; then :data:`HALVING_STAGES` stages, each halving the length while
    that leaves at least ``steps`` (else passing it through); then one resize to ``steps``
    (exactly the identity where the length already is ``steps``).
    """
    y = frames.transpose(1, 2)
    short = torch.clamp(steps - signal_length(y), min=0)
    y = torch.cat([y, y.new_zeros(1, 1, 1).expand(y.shape[0], y.shape[1], short)], dim=-1)
    for _ in range(HALVING_STAGES):
        length = signal_length(y)
        halve = torch.div(length, 2, rounding_mode="floor") >= steps
        y = _linear_resize(
            y, torch.where(halve, torch.div(length, 2, rounding_mode="floor"), length)
        )
    y = _linear_resize(y, torch.full_like(signal_length(y), steps))
    return y.transpose(1, 2)


class AudioMLPGraph(nn.Module):
    """Audio-MLP as one module.

    With ``frontend``: ``(batch, samples)`` 16 kHz audio -> ``(batch, scene_dim)`` scene
    embeddings (padding, 1 s chunks, features, gMLP, stitching, time resampling). Without:
    ``(chunks, n_mels, 98)`` chunk features -> ``(chunks, 98, D)`` frame embeddings (the
    encoder alone, :meth:`AudioMLPModel.chunk_frames` before the edge frames are repeated).
    """

    def __init__(self, model: AudioMLPModel, *, frontend: bool) -> None:
        super().__init__()
        self.features = ConvFeatures(model) if frontend else None
        self.encoder = copy.deepcopy(model.encoder).float().cpu().eval()
        self.steps = model.arch.scene_time_steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.features is None:
            return self.encoder(x)
        batch = x.shape[0]
        n = signal_length(x)
        chunks = torch.div(
            n + PAD_START + PAD_END + CHUNK_SAMPLES - 1, CHUNK_SAMPLES, rounding_mode="floor"
        )
        tail = chunks * CHUNK_SAMPLES - n - PAD_START
        zeros = x.new_zeros(1, 1)
        padded = torch.cat([zeros.expand(batch, PAD_START), x, zeros.expand(batch, tail)], dim=1)
        emb = self.encoder(self.features(padded.reshape(-1, CHUNK_SAMPLES)))
        emb = torch.cat([emb[:, :1], emb, emb[:, -1:]], dim=1)
        frames = emb.reshape(batch, -1, emb.shape[-1])[:, 1:-1]
        scene = resample_frames(frames, self.steps)
        return scene.transpose(1, 2).reshape(batch, -1)


def audiomlp_graph_spec(model: AudioMLPModel, frontend: bool) -> GraphSpec:
    """Audio-MLP's export: whole (audio in, scene embeddings out) or its encoder on chunk
    features (the family hands it to :func:`hear_mn.export.spec.graph_spec`)."""
    arch = model.arch
    if frontend:
        name, axes = "audio", {0: "batch", 1: "samples"}
        examples = tuple(verify_audio(model.sample_rate))
        layout = f"(batch, samples) float32 audio at {model.sample_rate} Hz"
        output_axes = {0: "batch"}
        output_layout = "(batch, scene_embedding_size) float32 scene embeddings"
        reference = reference_on(model, model)  # forward: the bare scene embeddings
        size = model.scene_embedding_size
    else:
        name, axes = "features", {0: "chunks"}
        generator = torch.Generator().manual_seed(VERIFY_SEED)
        chunks = [0.2 * torch.randn(n, CHUNK_SAMPLES, generator=generator) for n in (1, 3)]
        with torch.no_grad():
            examples = tuple(model.frontend(c.to(model.device)).cpu() for c in chunks)
        layout = (
            f"(chunks, {arch.n_mels}, {FRAMES_PER_CHUNK}) float32 {arch.frontend} features of "
            f"1 s chunks (the model's frontend)"
        )
        output_axes = {0: "chunks"}
        output_layout = f"(chunks, {FRAMES_PER_CHUNK}, timestamp_embedding_size) float32"
        reference = reference_on(model, model.encoder)
        size = model.timestamp_embedding_size
    return GraphSpec(
        build=lambda: AudioMLPGraph(model, frontend=frontend),
        input_name=name,
        input_axes=axes,
        output_axes=output_axes,
        examples=examples,
        reference=reference,
        metadata=graph_metadata(
            model,
            frontend,
            family=AUDIOMLP_FAMILY,
            **window_entries(N_FFT, HOP, model.sample_rate),
            embedding_size=size,
            features="",
            feature_sizes=[size],
            pooling="",
            n_mels=arch.n_mels,
            stft_hop_samples=HOP,
            input_name=name,
            input_layout=layout,
            output_layout=output_layout,
        ),
    )
