"""Audio tensors in, audio tensors out: input validation and padding helpers.

Everything that touches raw audio before a model's frontend lives here, so that every
model family checks its input the same way and pads short clips the same way.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

FINITE_CHECK_SLICE = 1 << 22


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
    if not torch.is_floating_point(audio):
        raise TypeError(
            f"{what} must hold floating point samples in [-1, 1], got dtype {audio.dtype}; "
            "convert integer PCM first, e.g. x.float() / 32768"
        )
    return audio


def _finite_float32(audio: torch.Tensor, device: torch.device | None) -> torch.Tensor:
    if device is not None:
        audio = audio.to(device, non_blocking=True)
    audio = audio.float()
    # Checked in slices: isfinite's temporaries take about 7 bytes per sample, which for an
    # hour of audio would be more memory than the whole embedding computation.
    for part in audio.reshape(-1).split(FINITE_CHECK_SLICE):
        if not bool(torch.isfinite(part).all()):
            raise ValueError("audio contains NaN or Inf samples; clean or clip the signal first")
    return audio


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


def gather_windows(
    audio: torch.Tensor,
    sounds: torch.Tensor,
    starts: torch.Tensor,
    size: int,
) -> torch.Tensor:
    """Windows ``audio[sounds[k], starts[k] : starts[k] + size]`` of the reflect-extended clips.

    Starts may be negative and windows may run past the end: those samples are mirrored
    (:func:`reflect_index`). Only the requested windows are materialised, so a long clip is
    never padded or unfolded as a whole.
    """
    offsets = torch.arange(size, device=audio.device)
    positions = reflect_index(starts[:, None] + offsets, audio.shape[-1])
    return audio[sounds[:, None], positions]


def centred_windows(
    audio: torch.Tensor, first: int, stop: int, n_windows: int, size: int, hop: int
) -> torch.Tensor:
    """Windows ``first .. stop - 1`` of the flattened (sound, window) grid, as (count, size).

    Window w of a sound covers samples ``[w * hop - size // 2, w * hop + size // 2)`` of the
    reflect-extended clip. Windows inside the clip are strided views of it (no gathering);
    only the few that reach into the padding are gathered with :func:`gather_windows`.
    """
    n_samples = audio.shape[-1]
    half = size // 2
    first_inside = -(-half // hop)
    last_inside = (n_samples - (size - half)) // hop
    pieces: list[torch.Tensor] = []
    index = first
    while index < stop:
        sound, window = divmod(index, n_windows)
        end = window + min(stop, (sound + 1) * n_windows) - index
        inside_from = min(max(window, first_inside), end)
        inside_to = max(min(end, last_inside + 1), inside_from)
        if inside_from > window:  # left edge: reaches into the padding before the clip
            pieces.append(_gathered(audio, sound, window, inside_from, size, hop))
        if inside_to > inside_from:
            span = audio[sound, inside_from * hop - half : (inside_to - 1) * hop - half + size]
            pieces.append(span.unfold(0, size, hop))
        if end > inside_to:  # right edge: reaches past the end of the clip
            pieces.append(_gathered(audio, sound, inside_to, end, size, hop))
        index += end - window
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces)


def _gathered(
    audio: torch.Tensor, sound: int, lo: int, hi: int, size: int, hop: int
) -> torch.Tensor:
    starts = torch.arange(lo, hi, device=audio.device) * hop - size // 2
    return gather_windows(audio, torch.full_like(starts, sound), starts, size)
