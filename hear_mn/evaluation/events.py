"""From frame predictions to sound events, as heareval post-processes them.

Per file, frames are ordered by timestamp, smoothed by a median filter over time (its width is
``median_filter_ms`` over the mean frame hop, rounded), thresholded, and every run of
consecutive active frames of a label becomes an event from the first to the last frame's
timestamp, kept when at least ``min_duration`` ms long. heareval picks the post-processing
point of its grid that scores best on validation; ``FrameIndex`` groups a split's frames by
file once so that every model and validation check only pays for the numpy work.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

EVENT_POSTPROCESSING_GRID: dict[str, list[float]] = {
    "median_filter_ms": [250],
    "min_duration": [125, 250],
}

Postprocessing = tuple[tuple[str, float], ...]

DEFAULT_SETTINGS = {"median_filter_ms": 150.0, "min_duration": 60.0}  # heareval's defaults

GATHER_CHUNK_ELEMENTS = 1 << 22  # bounds the (frames, width, labels) block sorted at once


def postprocessing_points(grid: Mapping[str, Sequence[float]]) -> list[Postprocessing]:
    """Every point of the grid, in sklearn ParameterGrid's order: keys sorted, the last key
    varying fastest; an empty grid has one point, the empty one."""
    for key, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise ValueError(f"grid values of {key!r} must be a sequence, got {values!r}")
        if len(values) == 0:
            raise ValueError(f"grid values of {key!r} must be a non-empty sequence")
    keys = sorted(grid)
    return [
        tuple(zip(keys, combination))
        for combination in itertools.product(*(grid[key] for key in keys))
    ]


def reflected_indices(length: int, width: int) -> np.ndarray:
    """(length, width) frame indices of each frame's median window, mirrored at the edges.

    The window of frame i covers i - width // 2 ... i - width // 2 + width - 1 (scipy's
    centring, also for even widths); outside [0, length) indices reflect as
    ``d c b a | a b c d | d c b a``, which repeats with period 2 * length.
    """
    offsets = np.arange(width) - width // 2
    positions = np.mod(np.arange(length)[:, None] + offsets[None, :], 2 * length)
    return np.where(positions >= length, 2 * length - 1 - positions, positions)


def windowed_median(values: np.ndarray, gather: np.ndarray) -> np.ndarray:
    """Per row of ``gather`` (rows, width) the median of ``values`` (frames, labels) over the
    listed frames; for even widths the upper of the two middle values, as scipy takes it."""
    width = gather.shape[1]
    rows_per_chunk = max(1, GATHER_CHUNK_ELEMENTS // max(1, width * values.shape[1]))
    result = np.empty((gather.shape[0], values.shape[1]), dtype=values.dtype)
    for start in range(0, gather.shape[0], rows_per_chunk):
        window = values[gather[start : start + rows_per_chunk]]
        result[start : start + rows_per_chunk] = np.partition(window, width // 2, axis=1)[
            :, width // 2
        ]
    return result


def median_filter_frames(predictions: np.ndarray, width: int) -> np.ndarray:
    """Median filter along time of (frames, labels) predictions: scipy.ndimage.median_filter
    with size (width, 1) and mode "reflect", for any width >= 1."""
    values = np.asarray(predictions)
    if values.ndim != 2:
        raise ValueError(f"predictions must be (frames, labels), got shape {values.shape}")
    if width < 1:
        raise ValueError(f"median filter width must be >= 1, got {width}")
    if values.shape[0] == 0 or width == 1:
        return values.copy()
    return windowed_median(values, reflected_indices(values.shape[0], int(width)))


class FrameIndex:
    """Frames of one split grouped by file (built once per split, reused every validation)."""

    def __init__(self, filenames: Sequence[str], timestamps: np.ndarray) -> None:
        """``filenames``: one per frame (a path; the file key is its name); ``timestamps``: ms.

        Files keep their first-seen order and frames are sorted by timestamp; of frames that
        repeat a (file, timestamp) pair the last one counts, as in heareval's dictionaries.
        """
        times = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        if len(filenames) != times.size:
            raise ValueError(f"{len(filenames)} filenames for {times.size} timestamps")
        if np.isnan(times).any():
            raise ValueError("frame timestamps must not be NaN")
        file_ids: dict[str, int] = {}
        id_of_path: dict[str, int] = {}
        for name in dict.fromkeys(filenames):
            id_of_path[name] = file_ids.setdefault(Path(name).name, len(file_ids))
        frame_files = np.array([id_of_path[name] for name in filenames], dtype=np.intp)
        self.files: list[str] = list(file_ids)
        self.frame_count = times.size
        frame_numbers = np.arange(times.size)
        order = np.lexsort((frame_numbers, times, frame_files))
        sorted_files, sorted_times = frame_files[order], times[order]
        last_of_pair = np.ones(order.size, dtype=bool)
        last_of_pair[:-1] = (sorted_files[1:] != sorted_files[:-1]) | (
            sorted_times[1:] != sorted_times[:-1]
        )
        self.rows = order[last_of_pair]
        self.times = sorted_times[last_of_pair]
        kept_files = sorted_files[last_of_pair]
        self.bounds = np.searchsorted(kept_files, np.arange(len(self.files) + 1))
        self.hops = [
            float(np.mean(np.diff(self.times[start:end]))) if end - start > 1 else float("nan")
            for start, end in zip(self.bounds[:-1], self.bounds[1:])
        ]
        self.gather_cache: dict[float, list[tuple[np.ndarray, np.ndarray]]] = {}

    def filter_width(self, file_number: int, median_filter_ms: float) -> int:
        """heareval's width: round(median_filter_ms / mean hop); 0 means no filtering (and a
        file with a single frame is not filtered)."""
        hop = np.float64(self.hops[file_number])
        if not median_filter_ms or np.isnan(hop):
            return 0
        width = int(round(median_filter_ms / hop))
        if width < 0:
            raise ValueError(f"median_filter_ms must not be negative, got {median_filter_ms}")
        return width

    def median_gathers(self, median_filter_ms: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """(positions, window positions) of the sorted frames, one pair per filter width."""
        if median_filter_ms not in self.gather_cache:
            by_width: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = {}
            for number, (start, end) in enumerate(zip(self.bounds[:-1], self.bounds[1:])):
                width = self.filter_width(number, median_filter_ms)
                if width > 1:
                    positions, windows = by_width.setdefault(width, ([], []))
                    positions.append(np.arange(start, end))
                    windows.append(start + reflected_indices(int(end - start), width))
            self.gather_cache[median_filter_ms] = [
                (np.concatenate(positions), np.concatenate(windows))
                for positions, windows in by_width.values()
            ]
        return self.gather_cache[median_filter_ms]

    def events(
        self,
        predictions: np.ndarray,
        labels: Sequence[str],
        postprocessing: Postprocessing,
        threshold: float = 0.5,
    ) -> dict[str, list[dict]]:
        """File -> events ({"label", "start", "end"} in ms, sorted by start) for
        ``predictions`` (frames, labels) in the original frame order; as heareval's
        get_events_for_all_files with one post-processing point."""
        values = np.asarray(predictions)
        if values.ndim != 2 or values.shape[0] != self.frame_count:
            raise ValueError(
                f"predictions must be ({self.frame_count}, labels), got shape {values.shape}"
            )
        if values.shape[1] != len(labels):
            raise ValueError(f"{values.shape[1]} prediction columns for {len(labels)} labels")
        settings = {"threshold": threshold, **DEFAULT_SETTINGS}
        for key, value in postprocessing:
            if key not in settings:
                raise ValueError(f"unknown post-processing setting {key!r}; known: {settings}")
            settings[key] = value
        framewise = values[self.rows]
        filtered = framewise.copy()
        for positions, windows in self.median_gathers(settings["median_filter_ms"]):
            filtered[positions] = windowed_median(framewise, windows)
        return self.active_runs(filtered > settings["threshold"], labels, settings["min_duration"])

    def active_runs(
        self, active: np.ndarray, labels: Sequence[str], min_duration: float
    ) -> dict[str, list[dict]]:
        """Events from the runs of consecutive active frames (sorted frames, per file)."""
        file_starts, file_ends = self.bounds[:-1], self.bounds[1:] - 1
        previous_active = np.zeros_like(active)
        previous_active[1:] = active[:-1]
        previous_active[file_starts] = False
        next_active = np.zeros_like(active)
        next_active[:-1] = active[1:]
        next_active[file_ends] = False
        label_numbers, first_frames = np.nonzero((active & ~previous_active).T)
        _, last_frames = np.nonzero((active & ~next_active).T)
        starts, ends = self.times[first_frames], self.times[last_frames]
        kept = ends - starts >= min_duration
        label_numbers, first_frames = label_numbers[kept], first_frames[kept]
        starts, ends = starts[kept], ends[kept]
        file_numbers = np.searchsorted(self.bounds, first_frames, side="right") - 1
        by_start = np.argsort(starts, kind="stable")
        order = by_start[np.argsort(file_numbers[by_start], kind="stable")]
        result: dict[str, list[dict]] = {name: [] for name in self.files}
        for number, label, start, end in zip(
            file_numbers[order].tolist(),
            label_numbers[order].tolist(),
            starts[order].tolist(),
            ends[order].tolist(),
        ):
            result[self.files[number]].append({"label": labels[label], "start": start, "end": end})
        return result
