"""Audio tensors in, audio tensors out: input validation and padding helpers.

Everything that touches raw audio before a model's frontend lives here, so that every
model family checks its input the same way and pads short clips the same way.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

FINITE_CHECK_SLICE = 1 << 22
FLOAT32_MAX = float(np.finfo(np.float32).max)


def as_audio_batch(audio: object, *, device: torch.device | None = None) -> torch.Tensor:
    """Check a HEAR audio batch and return it as a float32 tensor of shape (n_sounds, n_samples).

    Accepts a 2-D floating point ``torch.Tensor`` on any device, or a 2-D floating point
    ``numpy.ndarray`` (converted to a tensor). Anything else raises a ``TypeError`` or
    ``ValueError`` that says what was expected.
    """
    audio = _float_tensor(audio, "audio", "(n_sounds, n_samples)")
    if audio.ndim != 2:
        hint = " (add a batch dimension: audio[None])" if audio.ndim == 1 else ""
        raise ValueError(
            f"audio must have shape (n_sounds, n_samples), got {audio.ndim}-D shape "
            f"{tuple(audio.shape)}{hint}"
        )
    n_sounds, n_samples = audio.shape
    if n_sounds == 0:
        raise ValueError("audio holds zero sounds (shape[0] == 0); pass at least one clip")
    if n_samples == 0:
        raise ValueError("audio clips have zero samples (shape[1] == 0); pass at least one sample")
    return _finite_float32(audio, device)


def as_audio_chunk(chunk: object, *, device: torch.device | None = None) -> torch.Tensor:
    """Check a piece of a stream: a 1-D float tensor or numpy array, possibly empty."""
    chunk = _float_tensor(chunk, "a stream chunk", "(n_samples,)")
    if chunk.ndim != 1:
        raise ValueError(
            f"a stream chunk must be 1-D, (n_samples,), got shape {tuple(chunk.shape)}; "
            "stream one signal at a time"
        )
    return _finite_float32(chunk, device)


def _float_tensor(audio: object, what: str, shape: str) -> torch.Tensor:
    if isinstance(audio, np.ndarray):
        if not np.issubdtype(audio.dtype, np.floating):
            raise TypeError(
                f"{what} must hold floating point samples in [-1, 1], got a numpy array of "
                f"dtype {audio.dtype}; convert integer PCM first, e.g. x.astype('float32') / 32768"
            )
        audio = torch.from_numpy(np.ascontiguousarray(audio))
    if not isinstance(audio, torch.Tensor):
        raise TypeError(
            f"{what} must be a torch.Tensor (or numpy float array) of shape {shape}, "
            f"got {type(audio).__name__}"
        )
    if audio.layout != torch.strided:
        raise TypeError(
            f"{what} is a sparse tensor ({audio.layout}); pass its samples as a dense "
            "tensor: audio.to_dense()"
        )
    if audio.is_nested:
        raise TypeError(
            f"{what} is a nested tensor; pass clips of equal length as one dense tensor of "
            f"shape {shape} (pad the shorter ones), or call once per clip"
        )
    if not torch.is_floating_point(audio):
        raise TypeError(
            f"{what} must hold floating point samples in [-1, 1], got dtype {audio.dtype}; "
            "convert integer PCM first, e.g. x.float() / 32768"
        )
    if audio.device.type == "meta":
        raise ValueError(
            f"{what} is on the meta device, which holds no data (only shapes); pass the "
            "samples on the CPU or a GPU"
        )
    return audio


def _finite_float32(audio: torch.Tensor, device: torch.device | None) -> torch.Tensor:
    if device is not None:
        audio = audio.to(device, non_blocking=True)
    given = audio
    audio = audio.float()
    # A sum is finite only if every term is (NaN and Inf propagate; Inf never cancels to a
    # finite value), so one cheap reduction clears the usual case. Only a non-finite sum
    # (or finite samples so huge that they overflow) is checked element by element, in
    # slices: isfinite's temporaries take about 7 bytes per sample, which for an hour of
    # audio would be more memory than the whole embedding computation.
    if bool(torch.isfinite(audio.sum())):
        return audio
    slices = zip(
        audio.reshape(-1).split(FINITE_CHECK_SLICE), given.reshape(-1).split(FINITE_CHECK_SLICE)
    )
    for part, given_part in slices:
        if not bool(torch.isfinite(part).all()):
            _refuse_non_finite(given_part)
    return audio


def _refuse_non_finite(given: torch.Tensor) -> None:
    """Say why samples are not finite in float32: NaN/Inf given, or finite samples of a wider
    dtype beyond float32's range (they overflow to Inf on conversion)."""
    if bool(torch.isfinite(given).all()):
        peak = float(given.abs().max())
        raise ValueError(
            f"audio holds finite {given.dtype} samples up to {peak:.3g} in magnitude, beyond "
            f"float32's range (at most {FLOAT32_MAX:.3g}), so they are not finite once "
            "converted to float32; the HEAR API expects samples in [-1, 1]: scale the audio "
            "first (e.g. audio / abs(audio).max())"
        )
    raise ValueError("audio contains NaN or Inf samples; clean or clip the signal first")


def reflect_index(positions: torch.Tensor, n: int) -> torch.Tensor:
    """Map sample positions, possibly outside ``[0, n)``, into it by mirror reflection.

    Inside the signal positions are unchanged; ``-1`` maps to ``1``, ``n`` to ``n - 2`` (the
    edge sample is not repeated, as in ``F.pad(mode="reflect")``), and positions further out
    keep reflecting back and forth. A one-sample signal maps everything to 0.
    """
    if n == 1:
        return torch.zeros_like(positions)
    period = 2 * (n - 1)
    folded = positions % period
    return torch.where(folded < n, folded, period - folded)


def reflect_pad(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """Reflect-pad the last dimension, also when the pad is longer than the signal.

    Where ``torch.nn.functional.pad(mode="reflect")`` works (pad < length) the result is
    identical to it; longer pads follow :func:`reflect_index`.
    """
    n = x.shape[-1]
    if left < n and right < n:
        shape = x.shape
        padded = F.pad(x.reshape(-1, 1, n), (left, right), mode="reflect")
        return padded.reshape(*shape[:-1], padded.shape[-1])
    positions = torch.arange(-left, n + right, device=x.device)
    return x.index_select(-1, reflect_index(positions, n))


def extended_span(clip: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Samples ``[start, stop)`` of the mirror-extended 1-D ``clip``.

    Positions before 0 or past the end are mirrored (:func:`reflect_index`). A span inside
    the clip is a view; only spans reaching past an end are gathered, so a long clip is
    never padded as a whole.
    """
    n = clip.shape[-1]
    if start >= 0 and stop <= n:
        return clip[start:stop]
    inside_start, inside_stop = max(start, 0), min(stop, n)
    if inside_start >= inside_stop:
        return clip[reflect_index(torch.arange(start, stop, device=clip.device), n)]
    # Only the mirrored ends are gathered; the samples inside are copied once, as they are.
    before = reflect_index(torch.arange(min(start, 0), 0, device=clip.device), n)
    after = reflect_index(torch.arange(n, max(stop, n), device=clip.device), n)
    return torch.cat([clip[before], clip[inside_start:inside_stop], clip[after]])


def positive_int(value: object, what: str) -> int:
    """``value`` as an int of at least 1 (bools and floats refused), for counts and rates."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return int(value)


def check_sample_rate(sample_rate: object) -> int:
    """A sample rate in Hz: a positive int."""
    return positive_int(sample_rate, "sample_rate")


def resample(audio: torch.Tensor, from_rate: int, to_rate: int) -> torch.Tensor:
    """(n_sounds, n_samples) float32 from ``from_rate`` to ``to_rate`` Hz with soxr (HQ).

    Runs on the CPU (soxr works on numpy arrays); the result is a CPU tensor.
    """
    if from_rate == to_rate:
        return audio
    soxr = _soxr()
    frames = audio.detach().cpu().numpy().T  # soxr takes (n_samples, channels)
    resampled = soxr.resample(np.ascontiguousarray(frames), from_rate, to_rate, quality="HQ")
    if resampled.shape[0] == 0:
        raise ValueError(
            f"{audio.shape[1]} samples at {from_rate} Hz are too short to resample to "
            f"{to_rate} Hz; pass a longer clip"
        )
    return torch.from_numpy(np.ascontiguousarray(resampled.T, dtype=np.float32))


class StreamResampler:
    """Chunk-by-chunk resampling of one signal with soxr: equals resampling it whole."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self._stream = _soxr().ResampleStream(from_rate, to_rate, 1, dtype="float32", quality="HQ")

    def push(self, chunk: torch.Tensor, last: bool = False) -> torch.Tensor:
        """Resampled samples that are ready (all of them when ``last``), as a CPU tensor."""
        samples = np.ascontiguousarray(chunk.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self._stream.resample_chunk(samples, last=last).copy())


def _soxr():
    try:
        import soxr
    except ImportError as error:  # pragma: no cover - a declared dependency
        raise ImportError("resampling audio needs the soxr package: pip install soxr") from error
    return soxr
