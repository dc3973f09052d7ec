"""Durations in milliseconds as whole numbers of samples: the timestamp window and hop options.

Torch-free, so that configurations can be checked and sized without loading a network.
"""

from __future__ import annotations

import math

# The longest timestamp window, hop or pad accepted (ms). The networks were trained on 10 s
# clips; each window goes through them on its own, so its memory grows with its length (a
# 1e9 ms window asked for a 256 GB allocation). A clip's own embedding: get_scene_embeddings.
LONGEST_WINDOW_MS = 60_000


def duration_to_samples(milliseconds: object, sample_rate: int, what: str) -> int:
    """A duration in milliseconds as a whole, positive number of samples at ``sample_rate``."""
    if isinstance(milliseconds, bool) or not isinstance(milliseconds, (int, float)):
        raise TypeError(f"{what} is a duration in milliseconds, got {milliseconds!r}")
    if not math.isfinite(milliseconds):
        raise ValueError(f"{what}={milliseconds!r} ms: give a finite number of milliseconds")
    if milliseconds > LONGEST_WINDOW_MS:
        raise ValueError(
            f"{what}={milliseconds!r} ms is too long: timestamp windows and hops are at most "
            f"{LONGEST_WINDOW_MS} ms ({LONGEST_WINDOW_MS // 1000} s; a window's memory grows "
            "with its length); for one embedding of a whole clip use get_scene_embeddings"
        )
    samples = milliseconds * sample_rate / 1000
    if not samples >= 1 or abs(samples - round(samples)) > 1e-6:
        raise ValueError(
            f"{what}={milliseconds!r} ms is not a whole, positive number of samples at "
            f"{sample_rate} Hz; use a multiple of {1000 / sample_rate:g} ms, e.g. 160"
        )
    return round(samples)
