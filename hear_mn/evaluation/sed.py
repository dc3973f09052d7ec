"""Sound event detection metrics: the two sed_eval families the HEAR benchmark reports.

Event-based (``event_onset_*_fms``): a system event is correct when a reference event of the
same label has its onset within a collar (and, optionally, its offset within
``max(collar, percentage_of_length * reference length)``); correct events are counted as the
size of a maximum one-to-one matching per file. Segment-based (``segment_1s_er``): both event
lists are rasterised into fixed segments and the error rate counts substitutions, deletions
and insertions per segment. Counts are summed over files, then turned into overall scores,
with sed_eval's conventions for empty inputs (NaN precision without system events, an error
rate divided by ``Nref + eps``). Times are in seconds here.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Optional

import numpy as np

EPSILON = float(np.spacing(1))  # sed_eval's guard against an empty reference

NormalisedLabel = Optional[str]


def normalise_label(label: object) -> NormalisedLabel:
    """The label as dcase_util keeps it: text stripped of white space; '' or 'none' -> None."""
    text = str(label).strip()
    if text == "" or text.lower() == "none":
        return None
    return text


class EventList:
    """The events of one file: normalised labels, onsets and offsets in seconds."""

    def __init__(self, events: Iterable[tuple[object, float, float]] = ()) -> None:
        """``events``: (label, onset, offset) triples; labels go through ``normalise_label``."""
        rows = list(events)
        self.labels: list[NormalisedLabel] = [normalise_label(label) for label, _, _ in rows]
        self.onsets = np.array([onset for _, onset, _ in rows], dtype=np.float64)
        self.offsets = np.array([offset for _, _, offset in rows], dtype=np.float64)
        members: dict[NormalisedLabel, list[int]] = {}
        for index, label in enumerate(self.labels):
            members.setdefault(label, []).append(index)
        self.indices_by_label = {
            label: np.array(indices, dtype=np.intp) for label, indices in members.items()
        }

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def max_offset(self) -> float:
        """The latest offset, 0 when there is none later than 0 (NaN offsets are skipped)."""
        later = self.offsets[self.offsets > 0]
        return float(later.max()) if later.size else 0.0


def maximum_matching_size(hits: np.ndarray) -> int:
    """Size of a maximum matching in the bipartite graph of a boolean (rows, columns) matrix.

    Augmenting paths found breadth-first from every row in turn (Kuhn's method): a row that
    finds no augmenting path when it is tried never gains one later, so one pass is enough.
    """
    row_count, column_count = hits.shape
    if row_count == 0 or column_count == 0:
        return 0
    neighbours = [np.flatnonzero(row).tolist() for row in hits]
    column_owner = [-1] * column_count
    row_partner = [-1] * row_count
    size = 0
    for root in range(row_count):
        if not neighbours[root]:
            continue
        reached_from: dict[int, int] = {}
        queue = deque([root])
        free_column = -1
        while queue and free_column < 0:
            row = queue.popleft()
            for column in neighbours[row]:
                if column in reached_from:
                    continue
                reached_from[column] = row
                if column_owner[column] < 0:
                    free_column = column
                    break
                queue.append(column_owner[column])
        if free_column < 0:
            continue
        column = free_column
        while column >= 0:
            row = reached_from[column]
            previous_column = row_partner[row]
            column_owner[column] = row
            row_partner[row] = column
            column = previous_column
        size += 1
    return size


def precision(true_positives: float, system_count: float) -> float:
    """Ntp / Nsys; NaN without system events."""
    return math.nan if system_count == 0 else float(true_positives / float(system_count))


def recall(true_positives: float, reference_count: float) -> float:
    """Ntp / Nref; NaN without reference events."""
    return math.nan if reference_count == 0 else float(true_positives / float(reference_count))


def f_measure(precision_value: float, recall_value: float) -> float:
    """Harmonic mean of precision and recall: 0 when both are 0, NaN when either is NaN."""
    if precision_value == 0 and recall_value == 0:
        return 0.0
    return float(2.0 * precision_value * recall_value / (precision_value + recall_value))


class EventBasedCounts:
    """Accumulates sed_eval's event-based counts (Nref, Nsys, Ntp) over files."""

    def __init__(
        self,
        t_collar: float = 0.2,
        evaluate_onset: bool = True,
        evaluate_offset: bool = False,
        percentage_of_length: float = 0.5,
    ) -> None:
        """Collar in seconds; the offset condition also accepts ``percentage_of_length``
        times the reference event's length when that is larger than the collar."""
        if not evaluate_onset and not evaluate_offset:
            raise ValueError("evaluate_onset and evaluate_offset cannot both be False")
        if not t_collar > 0:
            raise ValueError(f"t_collar must be > 0 seconds, got {t_collar!r}")
        if not 0 <= percentage_of_length <= 1:
            raise ValueError(
                f"percentage_of_length must be in [0, 1], got {percentage_of_length!r}"
            )
        self.t_collar = float(t_collar)
        self.evaluate_onset = evaluate_onset
        self.evaluate_offset = evaluate_offset
        self.percentage_of_length = float(percentage_of_length)
        self.reference_count = 0
        self.system_count = 0
        self.true_positives = 0

    def hit_matrix(
        self, reference: EventList, estimated: EventList, label: NormalisedLabel
    ) -> np.ndarray:
        """Which (reference, system) pairs of one label satisfy the onset/offset conditions."""
        ref_index = reference.indices_by_label[label]
        est_index = estimated.indices_by_label[label]
        hits = np.ones((ref_index.size, est_index.size), dtype=bool)
        if self.evaluate_onset:
            onset_gap = np.abs(
                reference.onsets[ref_index][:, None] - estimated.onsets[est_index][None, :]
            )
            hits &= onset_gap <= self.t_collar
        if self.evaluate_offset:
            ref_offsets = reference.offsets[ref_index]
            length_share = self.percentage_of_length * (ref_offsets - reference.onsets[ref_index])
            tolerance = np.where(length_share > self.t_collar, length_share, self.t_collar)
            offset_gap = np.abs(ref_offsets[:, None] - estimated.offsets[est_index][None, :])
            hits &= offset_gap <= tolerance[:, None]
        return hits

    def add_file(self, reference: EventList, estimated: EventList) -> None:
        """Counts one file's events; only same-label pairs can match."""
        self.reference_count += len(reference)
        self.system_count += len(estimated)
        for label in reference.indices_by_label:
            if label in estimated.indices_by_label:
                hits = self.hit_matrix(reference, estimated, label)
                self.true_positives += maximum_matching_size(hits)

    def results(self) -> dict[str, float]:
        """Overall f_measure, precision and recall (sed_eval's NaN rules for empty counts)."""
        precision_value = precision(self.true_positives, self.system_count)
        recall_value = recall(self.true_positives, self.reference_count)
        return {
            "f_measure": f_measure(precision_value, recall_value),
            "precision": precision_value,
            "recall": recall_value,
        }


def segment_bounds(onset: float, offset: float, time_resolution: float) -> tuple[int, int]:
    """First segment (onset floored) and end segment, exclusive (offset ceiled), of an event."""
    if not (math.isfinite(onset) and math.isfinite(offset)):
        raise ValueError(f"segment-based scores need finite event times, got {onset}..{offset}")
    return math.floor(onset * 1 / time_resolution), math.ceil(offset * 1 / time_resolution)


def event_roll(
    events: EventList, label_index: Mapping[str, int], time_resolution: float
) -> np.ndarray:
    """Boolean activity (segments, labels) covering the file up to its latest offset.

    Every event label must be in ``label_index``: sed_eval cannot place others in the roll.
    """
    if not np.all(np.isfinite(events.offsets)):
        raise ValueError("segment-based scores need finite event times")
    segments = int(math.ceil(events.max_offset * 1 / time_resolution))
    roll = np.zeros((segments, len(label_index)), dtype=bool)
    for label, onset, offset in zip(events.labels, events.onsets, events.offsets):
        if label not in label_index:
            raise ValueError(
                f"event label {label!r} is not in the label vocabulary "
                f"{sorted(label_index)}; segment-based scores need a known label"
            )
        first, end = segment_bounds(float(onset), float(offset), time_resolution)
        roll[first:end, label_index[label]] = True
    return roll


class SegmentBasedCounts:
    """Accumulates sed_eval's segment-based substitutions, deletions and insertions."""

    def __init__(self, labels: Sequence[str], time_resolution: float = 1.0) -> None:
        """``labels``: the vocabulary (as given, not stripped); segment length in seconds."""
        if not time_resolution > 0:
            raise ValueError(f"time_resolution must be > 0 seconds, got {time_resolution!r}")
        self.label_index: dict[str, int] = {}
        for index, label in enumerate(labels):
            self.label_index.setdefault(label, index)
        self.label_count = len(labels)
        self.time_resolution = float(time_resolution)
        self.reference_count = 0
        self.substitutions = 0
        self.deletions = 0
        self.insertions = 0

    def padded_roll(self, events: EventList, segments: int) -> np.ndarray:
        """The file's event roll, zero-padded to ``segments`` segments."""
        roll = event_roll(events, self.label_index, self.time_resolution)
        padded = np.zeros((segments, self.label_count), dtype=bool)
        padded[: roll.shape[0], : roll.shape[1]] = roll[:segments]
        return padded

    def add_file(self, reference: EventList, estimated: EventList) -> None:
        """Counts one file over segments up to the later of the two latest offsets."""
        evaluated_seconds = max(reference.max_offset, estimated.max_offset)
        segments = int(math.ceil(evaluated_seconds * 1 / self.time_resolution))
        reference_roll = self.padded_roll(reference, segments)
        system_roll = self.padded_roll(estimated, segments)
        reference_active = reference_roll.sum(axis=1)
        system_active = system_roll.sum(axis=1)
        both_active = (reference_roll & system_roll).sum(axis=1)
        self.reference_count += int(reference_active.sum())
        self.substitutions += int((np.minimum(reference_active, system_active) - both_active).sum())
        self.deletions += int(np.maximum(0, reference_active - system_active).sum())
        self.insertions += int(np.maximum(0, system_active - reference_active).sum())

    def error_rate(self) -> float:
        """(S + D + I) / Nref as sed_eval sums it: three rates, each over Nref + eps."""
        denominator = self.reference_count + EPSILON
        return float(
            self.substitutions / denominator
            + self.deletions / denominator
            + self.insertions / denominator
        )
