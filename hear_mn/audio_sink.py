"""Decoded audio blocks in, one mono float32 array at the wanted rate out.

The decoders of :mod:`hear_mn.audio_io` push blocks of a file into a :class:`MonoResampler`:
mixed to mono, resampled by one soxr stream in bounded slices, written into one array that
is allocated once and grown in place. A :class:`~hear_mn.decode_limits.DecodeLimit` refuses
a file whose length (announced by its header, or reached) would exceed the memory available
or ``$HEAR_MN_MAX_AUDIO_SECONDS``, before its samples are allocated.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hear_mn.decode_limits import DecodeLimit

__all__ = ["AudioReadError", "MonoResampler", "require"]

logger = logging.getLogger("hear_mn.audio_io")

# The most samples soxr gives per call (1 MiB): one 64k-frame block of a file declaring 1 Hz
# would make 2 G samples at 32 kHz at once (8 GiB), so such blocks go to soxr in slices.
_RESAMPLED_SLICE = 1 << 18
# Samples added when the decoder's length estimate was short.
_GROWTH = 1 << 16


class AudioReadError(ValueError):
    """An audio file cannot be used: missing, empty, corrupt, undecodable or without samples."""


def require(module: str, package: str) -> Any:
    """Import a declared dependency, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:  # pragma: no cover - a declared dependency
        raise ImportError(
            f"the {package} package is not installed: pip install {package}"
        ) from error


class MonoResampler:
    """Mixes decoded blocks to mono and resamples them into one float32 array (or hands each
    resampled slice to ``receiver``, keeping nothing: long files embedded block by block).

    All blocks go through one soxr stream, in slices of at most :data:`_RESAMPLED_SLICE`
    output samples, which gives the same samples as ``soxr.resample`` of the whole mono
    signal. The result is allocated once from the decoder's length estimate and grown or
    trimmed in place, so no second full-length array ever exists; ``limit`` refuses a
    length (announced or reached) beyond the memory available or the configured limit.
    """

    def __init__(
        self,
        path: Path,
        file_rate: int,
        sample_rate: int,
        expected_frames: int,
        limit: DecodeLimit,
        receiver: Callable[[np.ndarray], None] | None = None,
    ) -> None:
        self._path = path
        self._rates = (file_rate, sample_rate)
        self._limit = limit
        self._slice = max(1, _RESAMPLED_SLICE * file_rate // sample_rate)
        self._stream = None
        if file_rate != sample_rate:
            logger.debug("%s: resampling %d Hz -> %d Hz", path, file_rate, sample_rate)
            self._stream = require("soxr", "soxr").ResampleStream(
                file_rate, sample_rate, 1, dtype="float32", quality="HQ"
            )
        expected = round(max(expected_frames, 0) * sample_rate / file_rate)
        self._refuse_beyond(expected, f"its {expected_frames} frames at {file_rate} Hz make")
        self._receiver = receiver
        # With a receiver, each resampled slice goes to it and nothing is kept here.
        capacity = 0 if receiver is not None else expected + 1024  # slack for short estimates
        self._output = np.empty(capacity, np.float32)
        self._filled = 0
        self._frames_in = 0
        self._finished = False

    def push(self, block: np.ndarray) -> None:
        """Add a (frames, channels) float32 block at the file's rate."""
        mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
        if not np.isfinite(mono).all():
            raise AudioReadError(f"{self._path}: the file holds NaN or Inf samples")
        self._frames_in += len(mono)
        if self._stream is None:
            self._append(mono)
            return
        for start in range(0, len(mono), self._slice):
            self._append(self._stream.resample_chunk(mono[start : start + self._slice]))

    def finish(self) -> np.ndarray:
        """The whole signal at the target rate, shape (n_samples,) (empty with a receiver,
        which got it slice by slice). Called again, returns the same."""
        if self._finished:
            return self._output
        if self._frames_in == 0:
            raise AudioReadError(f"{self._path}: the file holds no audio samples")
        if self._stream is not None:
            self._append(self._stream.resample_chunk(np.zeros(0, np.float32), last=True))
        if self._filled == 0:
            file_rate, sample_rate = self._rates
            raise AudioReadError(
                f"{self._path}: too short to resample from {file_rate} Hz to {sample_rate} Hz"
            )
        if self._receiver is None:
            self._output.resize(self._filled, refcheck=False)  # in place: no copy is made
        self._finished = True
        return self._output

    @property
    def samples(self) -> int:
        """Samples produced so far at the target rate."""
        return self._filled

    def _refuse_beyond(self, samples: int, source: str) -> None:
        refusal = self._limit.refusal(samples)
        if refusal is not None:
            raise AudioReadError(
                f"{self._path}: too long to decode: {source} {refusal}; check the sample rate "
                f"the file declares ({self._rates[0]} Hz)"
            )

    def _append(self, samples: np.ndarray) -> None:
        end = self._filled + len(samples)
        if self._receiver is not None:
            self._refuse_beyond(end, "its samples decoded so far make")
            self._filled = end
            if len(samples):  # the receiver may keep it: never a view of a reused buffer
                self._receiver(samples if samples.flags.owndata else samples.copy())
            return
        if end > len(self._output):  # the estimate was short: grow a little, in place
            self._refuse_beyond(end, "its samples decoded so far make")
            capacity = len(self._output)
            grown = max(end, capacity + capacity // 64 + _GROWTH)  # at most 1/64 spare
            self._output.resize(grown, refcheck=False)
        self._output[self._filled : end] = samples
        self._filled = end
