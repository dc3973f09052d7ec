"""A signal cut into consecutive windows, each scored on its own: ``tag --window`` and a
classifier's ``predict_file(window=...)``.

Torch-free: the scoring function is the caller's (a model's or a classifier's forward pass).
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def window_bounds(n_samples: int, window: int | None) -> list[tuple[int, int]]:
    """Consecutive windows of ``window`` samples covering ``n_samples`` (the last one shorter;
    None: the whole signal), as ``hear-mn tag --window`` cuts them."""
    if window is None or window >= n_samples:
        return [(0, n_samples)]
    return [(start, min(start + window, n_samples)) for start in range(0, n_samples, window)]


def score_windows(
    audio: np.ndarray,
    bounds: list[tuple[int, int]],
    batch_size: int,
    score: Callable[[np.ndarray], np.ndarray],
) -> list[np.ndarray]:
    """``score`` (batch of equal-length windows -> one row each) on every window of ``audio``,
    in the order of ``bounds``; equal-length windows share forward passes of ``batch_size``."""
    rows: list[np.ndarray | None] = [None] * len(bounds)
    by_length: dict[int, list[int]] = {}
    for i, (start, stop) in enumerate(bounds):
        by_length.setdefault(stop - start, []).append(i)
    for indices in by_length.values():
        for first in range(0, len(indices), batch_size):
            chunk = indices[first : first + batch_size]
            batch = np.stack([audio[bounds[i][0] : bounds[i][1]] for i in chunk])
            for i, row in zip(chunk, score(batch)):
                rows[i] = row
    return rows
