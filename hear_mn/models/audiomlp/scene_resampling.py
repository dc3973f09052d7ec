"""Audio-MLP's scene resampling for signals too long to hold their frames.

The scene embedding resamples all frames of a signal to a fixed number of steps by a cascade of
linear interpolations with aligned corners: halving the length while the result stays at least the
steps, then once more to the steps (:func:`cascade_lengths`, the one rule that
:func:`hear_mn.models.audiomlp.network.resample_time` also follows). Where each output lands depends
on the final length, so a stream cannot resample as frames arrive: :class:`SpilledRows` keeps them
in an anonymous temporary file (kwmlp: 92 MB an hour), and :func:`resample_rows` runs the cascade
from there level by level, a block of rows at a time, so memory holds blocks, never the signal's
frames.

Each output is computed as torch's CPU interpolation computes it, in float32: the scale
``float(n_in - 1) / (n_out - 1)``, the source position ``scale * j`` rounded to float32,
its floor and fraction as the two rows' weights. Matching those float32 positions matters
on long signals, where they are off the exact ones by up to a few hundredths of a frame.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

import numpy as np

__all__ = ["SpilledRows", "cascade_lengths", "resample_rows"]

# Output rows computed at a time (kwmlp: 0.5 MiB of float32 frames, a few MiB of work).
BLOCK_ROWS = 2048


def cascade_lengths(frames: int, steps: int) -> list[int]:
    """The lengths the scene resampling goes through, from ``frames`` to its last level:
    ``frames`` alone when it is at most ``steps`` (zero-padded, or already there); else the
    halvings (``n // 2``) while the result stays ``>= steps``, then ``steps`` unless the
    halvings ended exactly there."""
    if frames <= steps:
        return [frames]
    halvings = 0
    while steps << (halvings + 1) <= frames:
        halvings += 1
    lengths = [frames]
    for _ in range(halvings):
        lengths.append(lengths[-1] // 2)
    if frames != steps << halvings:
        lengths.append(steps)
    return lengths


class SpilledRows:
    """float32 rows of one width appended to an anonymous temporary file (in the system's
    temporary folder, ``TMPDIR``), read back by range. The file is gone when closed, when
    collected, and when the process ends, however it ends."""

    def __init__(self, width: int) -> None:
        self.width = int(width)
        self.rows = 0
        self._file = tempfile.TemporaryFile(prefix="hear_mn_frames_", buffering=0)

    def add(self, rows: np.ndarray) -> None:
        """Append ``rows`` (n, width)."""
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.width:
            raise ValueError(f"rows of width {self.width} expected, got shape {rows.shape}")
        data, offset = memoryview(rows).cast("B"), 4 * self.width * self.rows
        while data:  # a write may take part of it
            written = os.pwrite(self._file.fileno(), data, offset)
            data, offset = data[written:], offset + written
        self.rows += rows.shape[0]

    def truncate(self, rows: int) -> None:
        """Keep the first ``rows`` rows only (what a failed step added is dropped)."""
        if not 0 <= rows <= self.rows:
            raise IndexError(f"cannot keep {rows} of {self.rows} rows")
        os.ftruncate(self._file.fileno(), 4 * self.width * rows)
        self.rows = rows

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start`` to ``stop`` (exclusive), (stop - start, width)."""
        if not 0 <= start <= stop <= self.rows:
            raise IndexError(f"rows {start}:{stop} of {self.rows}")
        row_bytes = 4 * self.width
        data = os.pread(self._file.fileno(), (stop - start) * row_bytes, start * row_bytes)
        if len(data) != (stop - start) * row_bytes:
            raise OSError(
                f"the temporary frames file gave {len(data)} bytes of {stop - start} rows"
            )
        return np.frombuffer(data, dtype=np.float32).reshape(stop - start, self.width)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SpilledRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _positions(start: int, stop: int, n_in: int, n_out: int) -> tuple[np.ndarray, ...]:
    """For outputs ``start:stop`` of an ``n_in`` -> ``n_out`` interpolation with aligned
    corners: the two input rows of each and their weights, as torch's CPU kernel has them."""
    scale = np.float32(n_in - 1) / np.float32(n_out - 1) if n_out > 1 else np.float32(0)
    source = scale * np.arange(start, stop).astype(np.float32)
    first = np.minimum(np.floor(source).astype(np.int64), n_in - 1)
    weight_second = np.clip(source - first.astype(np.float32), np.float32(0), np.float32(1))
    second = first + (first < n_in - 1)
    return first, second, np.float32(1) - weight_second, weight_second


def _interpolate_level(
    read: Callable[[int, int], np.ndarray],
    n_in: int,
    n_out: int,
    write: Callable[[np.ndarray], None],
    block_rows: int,
) -> None:
    """One level of the cascade: ``n_out`` rows from the ``n_in`` rows ``read`` gives by
    range, handed to ``write`` in order, ``block_rows`` at a time."""
    for start in range(0, n_out, block_rows):
        stop = min(n_out, start + block_rows)
        if n_in == n_out:  # torch copies an interpolation to the same length
            write(read(start, stop))
            continue
        first, second, weight_first, weight_second = _positions(start, stop, n_in, n_out)
        base = int(first[0])
        rows = read(base, int(second[-1]) + 1)
        write(
            weight_first[:, None] * rows[first - base]
            + weight_second[:, None] * rows[second - base]
        )


def resample_rows(source: SpilledRows, steps: int, *, block_rows: int = BLOCK_ROWS) -> np.ndarray:
    """The (steps, width) float32 scene resampling of ``source``'s rows, as
    :func:`hear_mn.models.audiomlp.network.resample_time` computes it on the whole sequence;
    intermediate levels are spilled too, so memory holds ``block_rows`` rows at a time."""
    lengths = cascade_lengths(source.rows, steps)
    if len(lengths) == 1:
        rows = source.read(0, source.rows)
        return np.concatenate([rows, np.zeros((steps - len(rows), source.width), np.float32)])
    current, spilled = source, []
    try:
        for n_in, n_out in zip(lengths[:-2], lengths[1:-1]):
            target = SpilledRows(source.width)
            spilled.append(target)
            _interpolate_level(current.read, n_in, n_out, target.add, block_rows)
            current = target
        last: list[np.ndarray] = []
        _interpolate_level(current.read, lengths[-2], lengths[-1], last.append, block_rows)
        return np.concatenate(last).astype(np.float32, copy=False)
    finally:
        for target in spilled:
            target.close()
