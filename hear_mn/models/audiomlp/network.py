"""Audio-MLP (HEAR 2021): the kwmlp and audiomae gMLP encoders under the HEAR API.

Both models cut 16 kHz audio into 1 s chunks, turn each chunk into 98 frames of 40 mel
features (kwmlp: 40 MFCCs), run a gMLP encoder over the 98 frame tokens, and stitch the
chunks back together into one embedding every 10 ms. The numbers reproduce the released
checkpoints and the original submission (see ``shared/notes/REFERENCE.md``, section 2):

- audio is padded with 80 zero samples in front and 240 behind, then with zeros to whole
  seconds;
- each chunk's 98 output frames get their edge frame repeated on both sides (100 a chunk),
  the chunks are concatenated and the very first and last frame dropped;
- timestamp embeddings keep the first ``n = len // 160`` frames (at least one), centred at
  10, 20, ... ms;
- scene embeddings resample all frames to a fixed number of time steps and flatten them
  feature-major.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hear_mn.config import ModelConfig
from hear_mn.hub.checkpoint import load_into
from hear_mn.model import EmbeddingModel
from hear_mn.models.audiomlp.architectures import (  # the variants as data, torch-free
    ARCHS,
    AUDIOMLP_FAMILY,
    CHUNK_SAMPLES,
    FRAMES_PER_CHUNK,
    HOP,
    N_FFT,
    N_MELS,
    AudioMLPArch,
)
from hear_mn.models.audiomlp.scene_resampling import SpilledRows, cascade_lengths, resample_rows
from hear_mn.run_options import RunOptions
from hear_mn.streaming import EmbeddingStream

logger = logging.getLogger(__name__)

PAD_START = 80  # zero samples in front of the clip (half a window minus a hop)
PAD_END = 240  # zero samples behind the clip (half a window)
DEFAULT_WINDOW_BATCH = 32  # one-second chunks per forward pass


# ---------------------------------------------------------------------------------------
# Frontend
# ---------------------------------------------------------------------------------------


def _hz_to_slaney_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz (200/3 Hz a mel), logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3.0
    brk_hz, brk_mel = 1000.0, 1000.0 / f_sp
    log_step = math.log(6.4) / 27.0
    safe = np.maximum(hz, brk_hz)
    return np.where(hz >= brk_hz, brk_mel + np.log(safe / brk_hz) / log_step, hz / f_sp)


def _slaney_mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_hz_to_slaney_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    f_sp = 200.0 / 3.0
    brk_hz, brk_mel = 1000.0, 1000.0 / f_sp
    log_step = math.log(6.4) / 27.0
    return np.where(mel >= brk_mel, brk_hz * np.exp(log_step * (mel - brk_mel)), f_sp * mel)


def slaney_mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None
) -> np.ndarray:
    """Triangular mel filters on Slaney's scale with area normalisation, (n_mels, n_fft//2+1).

    Band ``i`` rises from edge ``i`` to ``i+1`` and falls to ``i+2`` of ``n_mels + 2`` edges
    equally spaced in mel, and is scaled by ``2 / (edge[i+2] - edge[i])`` (in Hz) so that
    every band has the same area. Computed in float64.
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    bin_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges_mel = np.linspace(_hz_to_slaney_mel(f_min), _hz_to_slaney_mel(f_max), n_mels + 2)
    edges = _slaney_mel_to_hz(edges_mel)
    widths = np.diff(edges)
    dist = edges[:, None] - bin_hz[None, :]
    rising = -dist[:-2] / widths[:-1, None]
    falling = dist[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]


def dct_ii_orthonormal(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix ``D`` (n, n): ``coeffs = D @ x``. Float64."""
    k = np.arange(n)[:, None]
    m = np.arange(n)[None, :]
    basis = np.cos(np.pi * k * (2 * m + 1) / (2 * n)) * math.sqrt(2.0 / n)
    basis[0] /= math.sqrt(2.0)
    return basis


class AudioMLPFrontend(nn.Module):
    """Power mel spectrogram (``"mel"``) or MFCCs (``"mfcc"``) of 1 s chunks.

    Input (n_chunks, 16000) float32; output (n_chunks, 40, 98): 40 features for each of
    98 frames (periodic Hann 480, n_fft 480, hop 160, no centring, power 2, 40 Slaney mel
    bands 0-8 kHz with area norm). ``"mfcc"`` converts to dB (floor 1e-10, clipped at each
    chunk's maximum minus 80 dB) and takes the orthonormal DCT-II over the mel axis.
    The returned tensor is a transposed view of a (n_chunks, 98, 40) contiguous tensor.
    """

    def __init__(self, kind: str, sample_rate: int, n_mels: int = N_MELS) -> None:
        super().__init__()
        if kind not in ("mfcc", "mel"):
            raise ValueError(f"kind must be 'mfcc' or 'mel', got {kind!r}")
        self.kind = kind
        n = np.arange(N_FFT)
        window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)  # periodic Hann
        self.register_buffer("window", torch.tensor(window, dtype=torch.float32))
        mel = slaney_mel_filterbank(sample_rate, N_FFT, n_mels, 0.0, sample_rate / 2)
        self.register_buffer("mel_basis", torch.tensor(mel.T, dtype=torch.float32))  # (241, 40)
        if kind == "mfcc":
            dct = dct_ii_orthonormal(n_mels)
            self.register_buffer("dct_basis", torch.tensor(dct.T, dtype=torch.float32))

    def forward(self, chunks: torch.Tensor) -> torch.Tensor:
        """(n_chunks, 16000) -> (n_chunks, n_mels, 98), always computed in float32."""
        with torch.autocast(chunks.device.type, enabled=False):
            return self._features(chunks.float())

    def _features(self, chunks: torch.Tensor) -> torch.Tensor:
        frames = chunks.unfold(-1, N_FFT, HOP) * self.window  # (N, 98, 480)
        spec = torch.fft.rfft(frames)  # (N, 98, 241) complex
        power = spec.real.square() + spec.imag.square()
        feats = torch.matmul(power, self.mel_basis)  # (N, 98, 40)
        if self.kind == "mfcc":
            db = 10.0 * torch.log10(torch.clamp(feats, min=1e-10))
            floor = db.amax(dim=(1, 2), keepdim=True) - 80.0
            feats = torch.matmul(torch.maximum(db, floor), self.dct_basis)
        return feats.transpose(1, 2)


# ---------------------------------------------------------------------------------------
# Encoder (module and parameter names follow the released checkpoints)
# ---------------------------------------------------------------------------------------


class _FramesToTokens(nn.Module):
    """(N, features, frames) -> (frames, N, features): one token per frame, token-major.

    Inside the encoder activations are kept as (tokens, chunks, channels), so that the
    spatial gating's token mixing is a single matrix product over all chunks at once.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(2, 0, 1)


class SpatialGatingUnit(nn.Module):
    """Split channels in half; gate = LayerNorm(2nd half) mixed across tokens; out = gate * 1st half.

    The token mixing is a 1x1 Conv1d with the token axis as channels (``proj``), i.e.
    ``gate'[t] = sum_s W[t, s] gate[s] + b[t]``. Input and output are (tokens, N, channels).
    """

    def __init__(self, dim_ff: int, n_tokens: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim_ff // 2)
        self.proj = nn.Conv1d(n_tokens, n_tokens, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res, gate = x.chunk(2, dim=-1)
        return self.gated(res, gate)

    def gated(self, res: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """The unit on the two halves given separately (each (tokens, N, channels // 2))."""
        gate = self.norm(gate)  # contiguous (T, N, C)
        n_tokens = gate.shape[0]
        mixed = torch.addmm(
            self.proj.bias.unsqueeze(1),
            self.proj.weight.squeeze(-1),
            gate.reshape(n_tokens, -1),
        )
        return mixed.view_as(gate) * res


class _GatedMLP(nn.Module):
    """Linear + GELU up to ``dim_ff``, spatial gating, Linear back to ``dim``."""

    def __init__(self, dim: int, dim_ff: int, n_tokens: int) -> None:
        super().__init__()
        self.proj_in = nn.Sequential(nn.Linear(dim, dim_ff), nn.GELU())
        self.sgu = SpatialGatingUnit(dim_ff, n_tokens)
        self.proj_out = nn.Linear(dim_ff // 2, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # proj_in computed as two half-width products (same numbers as one product split
        # afterwards), so that both halves are contiguous and the gate's LayerNorm needs no copy.
        linear, act = self.proj_in
        half = linear.out_features // 2
        res = act(F.linear(x, linear.weight[:half], linear.bias[:half]))
        gate = act(F.linear(x, linear.weight[half:], linear.bias[half:]))
        return self.proj_out(self.sgu.gated(res, gate))


class _PostNormBranch(nn.Module):
    """LayerNorm applied to the output of the gated MLP."""

    def __init__(self, dim: int, dim_ff: int, n_tokens: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = _GatedMLP(dim, dim_ff, n_tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.fn(x))


class GMLPBlock(nn.Module):
    """Post-norm residual gMLP block: ``x + LayerNorm(gated_mlp(x))``."""

    def __init__(self, dim: int, dim_ff: int, n_tokens: int) -> None:
        super().__init__()
        self.fn = _PostNormBranch(dim, dim_ff, n_tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x).add_(x)  # in place on the fresh LayerNorm output


class AudioMLPEncoder(nn.Module):
    """Frame tokens -> gMLP blocks -> head. (N, 40, 98) -> (N, 98, timestamp_dim) (a view).

    Its state dict is exactly the released checkpoint's, less ``arch.unused_checkpoint_keys``.
    """

    def __init__(self, arch: AudioMLPArch) -> None:
        super().__init__()
        self.to_patch_embed = nn.Sequential(_FramesToTokens(), nn.Linear(arch.n_mels, arch.dim))
        dim_ff = arch.dim * arch.ff_mult
        self.layers = nn.ModuleList(
            GMLPBlock(arch.dim, dim_ff, arch.n_tokens) for _ in range(arch.depth)
        )
        if arch.head == "bottleneck":
            self.bottleneck = nn.Sequential(nn.Linear(arch.dim, arch.timestamp_dim), nn.GELU())
        else:
            # kwmlp's classifier is replaced by a fresh LayerNorm (weight 1, bias 0), which
            # is the same as a LayerNorm without affine parameters.
            self.out_norm = nn.LayerNorm(arch.dim, elementwise_affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.to_patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        x = self.bottleneck(x) if hasattr(self, "bottleneck") else self.out_norm(x)
        return x.transpose(0, 1)


# ---------------------------------------------------------------------------------------
# HEAR model
# ---------------------------------------------------------------------------------------


def n_timestamps(n_samples: int) -> int:
    """Number of timestamp embeddings for a clip of ``n_samples`` at 16 kHz.

    The original gives ``int((t_ms - 30) / 10 + 1)`` with ``t_ms`` the length after the
    80 + 240 sample padding, which is ``n_samples // 160``; it gives none below 160 samples,
    where this returns one (centred at 10 ms).
    """
    return max(1, n_samples // HOP)


def resample_time(x: torch.Tensor, steps: int) -> torch.Tensor:
    """(B, T, D) -> (B, steps, D) as the original scene embedding does.

    Zero-pads at the end when ``T < steps``; otherwise halves the length (``T // 2``, linear
    interpolation with aligned corners) as long as the result stays ``>= steps``, then
    interpolates once more to ``steps`` unless already there.
    """
    lengths = cascade_lengths(x.shape[1], steps)
    if len(lengths) == 1:
        return F.pad(x, (0, 0, 0, steps - x.shape[1]))
    y = x.transpose(1, 2)
    for length in lengths[1:]:
        y = F.interpolate(y, size=length, mode="linear", align_corners=True)
    return y.transpose(1, 2)


class AudioMLPModel(EmbeddingModel):
    """kwmlp or audiomae under the HEAR API: the configuration ``config`` (its checkpoint's
    architecture and sample rate, 16 kHz as released) run as ``run`` says.

    Built with random weights; call :meth:`load_checkpoint` with the released state dict.
    ``run.window_batch_size`` bounds how many 1 s chunks go through the network at once
    (memory stays bounded for long audio; results do not depend on it).
    """

    family = AUDIOMLP_FAMILY

    def __init__(self, config: ModelConfig, run: RunOptions | None = None) -> None:
        run = run or RunOptions()
        arch = ARCHS[config.checkpoint.arch]
        super().__init__(
            name=config.name,
            sample_rate=config.sample_rate,
            scene_embedding_size=arch.scene_dim,
            timestamp_embedding_size=arch.timestamp_dim,
            autocast=run.autocast,
        )
        self.arch = arch
        self.hop_ms = 1000 * HOP / config.sample_rate  # between two frames (10 ms)
        self.frontend = AudioMLPFrontend(arch.frontend, config.sample_rate, arch.n_mels)
        self.encoder = AudioMLPEncoder(arch)
        self.window_batch_size = run.window_batch_size or DEFAULT_WINDOW_BATCH
        self.eval()

    def load_checkpoint(self, state_dict: Mapping[str, torch.Tensor], *, source: str) -> None:
        """Load a released checkpoint's state dict (the ``model_state_dict`` entry), strictly.

        Only the keys listed in ``arch.unused_checkpoint_keys`` are dropped; any other
        missing, unexpected or mis-shaped key raises an error naming ``source``. This
        model's own ``state_dict()`` (encoder and frontend buffers) loads too.
        """
        if any(key.startswith("encoder.") for key in state_dict):
            # This model's own state dict: the encoder's weights beside the frontend's
            # constant buffers, which are computed, not loaded.
            state_dict = {
                key.removeprefix("encoder."): value
                for key, value in state_dict.items()
                if not key.startswith("frontend.")
            }
        unused = set(self.arch.unused_checkpoint_keys)
        kept = {k: v for k, v in state_dict.items() if k not in unused}
        dropped = sorted(unused & set(state_dict))
        if dropped:
            logger.debug("%s: not using checkpoint keys %s", source, dropped)
        load_into(self.encoder, kept, source=f"{source} ({self.arch.name})")

    def frame_embeddings(self, audio: torch.Tensor) -> torch.Tensor:
        """All frames of the chunked pass, (B, 100 * n_chunks - 2, D), from checked audio."""
        batch, n_samples = audio.shape
        padded = n_samples + PAD_START + PAD_END
        n_chunks = max(1, -(-padded // CHUNK_SAMPLES))
        total = n_chunks * CHUNK_SAMPLES
        x = F.pad(audio, (PAD_START, total - n_samples - PAD_START))
        emb = self.chunk_frames(x.reshape(batch * n_chunks, CHUNK_SAMPLES))
        return emb.reshape(batch, n_chunks * (FRAMES_PER_CHUNK + 2), emb.shape[-1])[:, 1:-1]

    def chunk_frames(self, chunks: torch.Tensor) -> torch.Tensor:
        """(n, 16000) one-second chunks -> (n, 100, D): each chunk's 98 frames with its edge
        frames repeated, ``window_batch_size`` chunks at a time."""
        outs = []
        step = self.window_batch_size
        for start in range(0, chunks.shape[0], step):
            outs.append(self.encoder(self.frontend(chunks[start : start + step])))
        emb = outs[0] if len(outs) == 1 else torch.cat(outs)
        return torch.cat([emb[:, :1], emb, emb[:, -1:]], dim=1)

    def stream(self) -> AudioMLPStream:
        """Streaming timestamp embeddings (see :mod:`hear_mn.streaming`)."""
        return AudioMLPStream(self)

    def _timestamp_embeddings(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = n_timestamps(audio.shape[1])
        emb = self.frame_embeddings(audio)[:, :n].contiguous()
        times = torch.arange(1, n + 1, device=audio.device, dtype=torch.float32) * self.hop_ms
        return emb, times.repeat(audio.shape[0], 1)

    def _scene_embeddings(self, audio: torch.Tensor) -> torch.Tensor:
        return self.scene_from_frames(self.frame_embeddings(audio))

    def scene_from_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Scene embeddings from all frames of the chunked pass, (B, T, D) -> (B, scene_dim)."""
        emb = resample_time(frames, self.arch.scene_time_steps)
        return emb.transpose(1, 2).reshape(emb.shape[0], -1)

    def scene_stream(self) -> AudioMLPSceneStream:
        """The scene embedding of a signal pushed block by block (:mod:`hear_mn.long_audio`)."""
        return AudioMLPSceneStream(self)


class AudioMLPStream(EmbeddingStream):
    """Frames of a growing signal, emitted once their one-second chunk is complete.

    The padded signal is 80 zeros + the samples (+ 240 zeros and zeros to a whole second at
    :meth:`close`); chunk c is final once it holds only real samples. Frame k is frame k + 1
    of the stitched chunk outputs, and is kept once the signal is long enough that the
    final count (``n_timestamps``) includes it. The buffer holds less than one chunk plus the
    pushed samples, and at most one chunk's frames wait for release.
    """

    def __init__(self, model: AudioMLPModel) -> None:
        super().__init__(model)
        self._samples = torch.zeros(PAD_START, device=model.device)
        self._frames = self._empty()  # stitched frames from index self._frames_start on
        self._frames_start = 0

    def _push(self, samples: torch.Tensor) -> torch.Tensor:
        self._samples = torch.cat([self._samples, samples])
        self._process_complete_chunks()
        return self._release(min(self.num_samples // HOP, self._stitched_count() - 1))

    def _close(self) -> torch.Tensor:
        if self.num_samples == 0:
            return self._empty()  # no signal, no frames: as the MobileNets' streams
        self._process_last_chunks()
        return self._release(n_timestamps(self.num_samples))

    def _process_last_chunks(self) -> None:
        """End of signal: the 240 zeros and zeros to a whole second, then the last chunks."""
        tail = PAD_END + (-(self._samples.shape[0] + PAD_END)) % CHUNK_SAMPLES
        self._samples = torch.cat([self._samples, self._samples.new_zeros(tail)])
        self._process_complete_chunks()

    def _process_complete_chunks(self) -> None:
        complete = self._samples.shape[0] // CHUNK_SAMPLES
        if complete == 0:
            return
        chunks = self._samples[: complete * CHUNK_SAMPLES].reshape(complete, CHUNK_SAMPLES)
        frames = self.model.chunk_frames(chunks).reshape(-1, self.model.timestamp_embedding_size)
        self._keep_frames(frames)
        self._samples = self._samples[complete * CHUNK_SAMPLES :]

    def _keep_frames(self, frames: torch.Tensor) -> None:
        self._frames = torch.cat([self._frames, frames])

    def _stitched_count(self) -> int:
        return self._frames_start + self._frames.shape[0]

    def _release(self, count: int) -> torch.Tensor:
        """Emit output frames up to ``count`` (output frame k is stitched frame k + 1)."""
        begin = self.num_emitted + 1 - self._frames_start
        end = count + 1 - self._frames_start
        out = self._frames[begin:end] if end > begin else self._empty()
        keep_from = min(self._frames.shape[0], max(begin, end))
        self._frames = self._frames[keep_from:]
        self._frames_start += keep_from
        return out

    def _timestamps(self, indices: torch.Tensor) -> torch.Tensor:
        return (indices + 1) * self.model.hop_ms


class AudioMLPSceneStream(AudioMLPStream):
    """The scene embedding of a growing signal, as :meth:`AudioMLPModel.scene_embeddings`
    computes it on the whole. The scene resamples all frames of the signal once it has ended, so the
    frames (but the first and last, which the scene drops) go to a temporary file as their chunks
    complete (kwmlp: 92 MB an hour, audiomae: 12 MB) and :meth:`close` resamples from there block by
    block (:mod:`hear_mn.models.audiomlp.scene_resampling`): memory holds neither the signal nor its
    frames. :meth:`close` gives the (1, scene_dim) embedding; a failed push or close can be retried.
    """

    def __init__(self, model: AudioMLPModel) -> None:
        super().__init__(model)
        self._spilled = SpilledRows(model.timestamp_embedding_size)
        self._spilled_count = 0  # rows of the file that belong to the frames (the rest failed)
        self._first_dropped = False
        self._latest = np.empty((0, model.timestamp_embedding_size), np.float32)

    def _keep_frames(self, frames: torch.Tensor) -> None:
        rows = frames.float().cpu().numpy()
        if not self._first_dropped:
            rows, self._first_dropped = rows[1:], True
        rows = np.concatenate([self._latest, rows])
        self._spilled.truncate(self._spilled_count)
        self._spilled.add(rows[:-1])  # the latest row waits: the very last one is dropped
        self._spilled_count = self._spilled.rows
        self._latest = rows[-1:]

    def _push(self, samples: torch.Tensor) -> torch.Tensor:
        self._samples = torch.cat([self._samples, samples])
        self._process_complete_chunks()
        return self._empty()

    def _close(self) -> torch.Tensor:
        if self.num_samples == 0:
            return self._empty()
        self._process_last_chunks()
        self._spilled.truncate(self._spilled_count)
        emb = resample_rows(self._spilled, self.model.arch.scene_time_steps)
        return torch.from_numpy(emb.T.reshape(1, -1)).to(self.model.device)

    def close(self) -> tuple[torch.Tensor, torch.Tensor]:
        result = super().close()
        self._spilled.close()
        return result

    def _timestamps(self, indices: torch.Tensor) -> torch.Tensor:
        return torch.zeros(indices.shape, device=indices.device)  # a scene has no time

    def _empty(self) -> torch.Tensor:
        return torch.empty(0, self.model.scene_embedding_size, device=self.model.device)
