"""The HEAR scores, defined as heareval 2021.1.3 computes them, in numpy alone.

Scene scores take (examples, classes) arrays: class probabilities and 0/1 targets. Ranking
scores are macro averages over classes: average precision (sklearn's step-wise sum; 0 for a
class without positives), ROC AUC (NaN for a class with a single target value) and d' =
sqrt(2) * Phi^-1(AUC). Event scores take file -> [{"label", "start", "end"}] dictionaries in
milliseconds, evaluate the files of the predictions one by one and report overall sed_eval
metrics (see ``sed``). Where heareval raises, these raise ValueError; where it returns NaN,
so do these. Inputs heareval would score only by accident raise ValueError too: scene arrays
of different shapes (sklearn scores the common columns) and targets other than 0/1 (sklearn
then guesses the target type).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from hear_mn.evaluation.sed import EventBasedCounts, EventList, SegmentBasedCounts

SCORE_NAMES: tuple[str, ...] = (
    "top1_acc",
    "pitch_acc",
    "chroma_acc",
    "mAP",
    "d_prime",
    "aucroc",
    "event_onset_200ms_fms",
    "event_onset_50ms_fms",
    "event_onset_offset_50ms_20perc_fms",
    "segment_1s_er",
)

EVENT_BASED_SETTINGS: dict[str, dict[str, object]] = {
    "event_onset_200ms_fms": {"t_collar": 0.2, "evaluate_offset": False},
    "event_onset_50ms_fms": {"t_collar": 0.05, "evaluate_offset": False},
    "event_onset_offset_50ms_20perc_fms": {
        "t_collar": 0.05,
        "evaluate_offset": True,
        "percentage_of_length": 0.2,
    },
}

SEGMENT_TIME_RESOLUTION: dict[str, float] = {"segment_1s_er": 1.0}

STANDARD_NORMAL = NormalDist()


def scene_arrays(predictions: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs as 2-D arrays of the same (examples, classes) shape, with at least one
    example and one class (heareval divides by the example count and takes argmaxes)."""
    predictions, targets = np.asarray(predictions), np.asarray(targets)
    if predictions.ndim != 2 or targets.ndim != 2:
        raise ValueError(
            f"scene scores need (examples, classes) arrays, got predictions of shape "
            f"{predictions.shape} and targets of shape {targets.shape}"
        )
    if predictions.shape != targets.shape:
        raise ValueError(
            f"predictions {predictions.shape} and targets {targets.shape} differ in shape"
        )
    if predictions.shape[0] == 0 or predictions.shape[1] == 0:
        raise ValueError(f"scene scores need examples and classes, got {predictions.shape}")
    return predictions, targets


def top1_accuracy(predictions: np.ndarray, targets: np.ndarray) -> float:
    """Share of examples whose highest-scored class is the target's argmax (first on ties)."""
    predictions, targets = scene_arrays(predictions, targets)
    correct = np.argmax(predictions, axis=1) == np.argmax(targets, axis=1)
    return int(np.count_nonzero(correct)) / targets.shape[0]


def chroma_accuracy(predictions: np.ndarray, targets: np.ndarray) -> float:
    """Top-1 accuracy of pitch classes modulo 12: octave errors count as correct."""
    predictions, targets = scene_arrays(predictions, targets)
    predicted_chroma = np.argmax(predictions, axis=1) % 12
    correct = predicted_chroma == np.argmax(targets, axis=1) % 12
    return int(np.count_nonzero(correct)) / targets.shape[0]


class RankedColumns:
    """Each class's scores sorted in ascending order, with their tie groups and positives.

    sklearn's curves step only where the score changes, so tied examples share one
    operating point: each example's group start and end (positions in the sorted column)
    are all the curve needs.
    """

    def __init__(self, scores: np.ndarray, positives: np.ndarray) -> None:
        example_count = scores.shape[0]
        order = np.argsort(scores, axis=0, kind="stable")
        sorted_scores = np.take_along_axis(scores, order, axis=0)
        self.positives = np.take_along_axis(positives, order, axis=0)
        positions = np.broadcast_to(np.arange(example_count)[:, None], scores.shape)
        new_group = np.ones(scores.shape, dtype=bool)
        new_group[1:] = sorted_scores[1:] != sorted_scores[:-1]
        group_last = np.ones(scores.shape, dtype=bool)
        group_last[:-1] = new_group[1:]
        self.group_start = np.maximum.accumulate(np.where(new_group, positions, 0), axis=0)
        reversed_ends = np.where(group_last, positions, example_count)[::-1]
        self.group_end = np.minimum.accumulate(reversed_ends, axis=0)[::-1]
        self.example_count = example_count
        self.positive_count = self.positives.sum(axis=0)
        positives_before = np.cumsum(self.positives, axis=0) - self.positives
        self.positives_below_group = np.take_along_axis(positives_before, self.group_start, 0)

    def average_precision(self) -> np.ndarray:
        """Per class: mean over positives of the precision at their score's threshold."""
        retrieved = self.example_count - self.group_start
        precision = (self.positive_count - self.positives_below_group) / retrieved
        totals = np.where(self.positives, precision, 0.0).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.positive_count > 0, totals / self.positive_count, 0.0)

    def roc_auc(self) -> np.ndarray:
        """Per class: Mann-Whitney AUC (ties count half), NaN without both target values."""
        rank_sums_twice = np.where(self.positives, self.group_start + self.group_end + 2, 0)
        positive_count = self.positive_count.astype(np.int64)
        negative_count = self.example_count - positive_count
        pair_wins_twice = rank_sums_twice.sum(axis=0) - positive_count * (positive_count + 1)
        defined = (positive_count > 0) & (negative_count > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = pair_wins_twice / (2.0 * positive_count * negative_count)
        return np.where(defined, auc, np.nan)


def ranked_columns(predictions: np.ndarray, targets: np.ndarray) -> RankedColumns | None:
    """The ranking of valid inputs; None where sklearn cannot rank (no examples or classes,
    non-finite scores), which heareval reports as an error (mAP) or NaN (AUC, d')."""
    predictions, targets = np.asarray(predictions), np.asarray(targets)
    if predictions.ndim != 2 or targets.ndim != 2 or predictions.shape != targets.shape:
        raise ValueError(
            f"ranking scores need (examples, classes) arrays of one shape, got predictions "
            f"{predictions.shape} and targets {targets.shape}"
        )
    if not np.isin(targets, (0, 1)).all():
        raise ValueError("ranking scores need 0/1 targets")
    scores = predictions.astype(np.float64)
    if scores.size == 0 or not np.isfinite(scores).all():
        return None
    return RankedColumns(scores, targets == 1)


def mean_average_precision(predictions: np.ndarray, targets: np.ndarray) -> float:
    """Macro average precision, as sklearn's average_precision_score(average="macro")."""
    ranking = ranked_columns(predictions, targets)
    if ranking is None:
        raise ValueError(
            "mAP needs at least one example and one class and finite predictions "
            f"(got shape {np.shape(predictions)}); heareval fails here too"
        )
    return float(np.mean(ranking.average_precision()))


def class_roc_auc(predictions: np.ndarray, targets: np.ndarray) -> np.ndarray | None:
    """Per-class ROC AUC, or None where heareval's call to sklearn fails."""
    ranking = ranked_columns(predictions, targets)
    return None if ranking is None else ranking.roc_auc()


def roc_auc_macro(predictions: np.ndarray, targets: np.ndarray) -> float:
    """Macro ROC AUC; NaN when any class lacks positives or negatives, as in heareval."""
    auc = class_roc_auc(predictions, targets)
    return math.nan if auc is None else float(np.mean(auc))


def normal_quantile(probability: float) -> float:
    """Phi^-1(p) of the standard normal: -inf at 0, +inf at 1, NaN for NaN."""
    if math.isnan(probability):
        return math.nan
    if probability <= 0:
        return -math.inf
    if probability >= 1:
        return math.inf
    return STANDARD_NORMAL.inv_cdf(probability)


def d_prime(predictions: np.ndarray, targets: np.ndarray) -> float:
    """Mean over classes of sqrt(2) * Phi^-1(AUC); NaN if any class AUC is undefined."""
    auc = class_roc_auc(predictions, targets)
    if auc is None:
        return math.nan
    quantiles = np.array([normal_quantile(value) for value in auc.tolist()])
    with np.errstate(invalid="ignore"):
        return float(np.mean(quantiles * np.sqrt(2.0)))


SCENE_SCORES = {
    "top1_acc": top1_accuracy,
    "pitch_acc": top1_accuracy,
    "chroma_acc": chroma_accuracy,
    "mAP": mean_average_precision,
    "d_prime": d_prime,
    "aucroc": roc_auc_macro,
}


def dcase_file_key(filename: object) -> object:
    """The file name dcase_util stores: relative paths normalised to POSIX form."""
    if isinstance(filename, str) and not os.path.isabs(filename):
        return os.path.normpath(filename).replace("\\", "/")
    return filename


def event_in_seconds(event: Mapping) -> tuple[object, float, float]:
    """(label, onset, offset) of an event given in milliseconds, converted as heareval does."""
    try:
        return event["label"], float(event["start"] / 1000.0), float(event["end"] / 1000.0)
    except (KeyError, TypeError) as error:
        raise ValueError(
            f"an event needs 'label', and numeric 'start' and 'end' in ms; got {event!r}"
        ) from error


def event_lists(events_by_file: Mapping[str, Sequence[Mapping]]) -> dict[object, EventList]:
    """File -> EventList, keyed as dcase_util files them (which a file name must match)."""
    if not isinstance(events_by_file, Mapping):
        raise ValueError(f"event scores need file -> events mappings, got {type(events_by_file)}")
    grouped: dict[object, list[tuple[object, float, float]]] = {}
    for filename, events in events_by_file.items():
        rows = grouped.setdefault(dcase_file_key(filename), [])
        rows.extend(event_in_seconds(event) for event in events)
    return {filename: EventList(rows) for filename, rows in grouped.items()}


def evaluate_files(
    counts: EventBasedCounts | SegmentBasedCounts, predictions: Mapping, targets: Mapping
) -> None:
    """Adds every file of ``predictions`` to ``counts`` (no events where a side has none)."""
    estimated, reference = event_lists(predictions), event_lists(targets)
    no_events = EventList()
    for filename in predictions:
        counts.add_file(reference.get(filename, no_events), estimated.get(filename, no_events))


@dataclass(frozen=True)
class ScoreFunction:
    """One HEAR score over a label vocabulary; call it with predictions and targets."""

    name: str
    labels: tuple[str, ...]
    maximize: bool = True
    events: bool = False

    def __post_init__(self) -> None:
        if self.name not in SCORE_NAMES:
            raise ValueError(f"unknown score {self.name!r}; known scores: {', '.join(SCORE_NAMES)}")

    def __call__(
        self, predictions: np.ndarray | Mapping, targets: np.ndarray | Mapping
    ) -> dict[str, float]:
        """{name: value} for scene scores; for event scores the primary value first, then
        heareval's sub-scores ``{name}_{sub-score}``."""
        if self.name in SCENE_SCORES:
            return {self.name: float(SCENE_SCORES[self.name](predictions, targets))}
        if self.name in EVENT_BASED_SETTINGS:
            counts = EventBasedCounts(**EVENT_BASED_SETTINGS[self.name])
            evaluate_files(counts, predictions, targets)
            results = counts.results()
            primary = {self.name: results["f_measure"]}
            return {**primary, **{f"{self.name}_{key}": value for key, value in results.items()}}
        segments = SegmentBasedCounts(self.labels, SEGMENT_TIME_RESOLUTION[self.name])
        evaluate_files(segments, predictions, targets)
        error_rate = segments.error_rate()
        return {self.name: error_rate, f"{self.name}_error_rate": error_rate}


def make_score(name: str, labels: Sequence[str]) -> ScoreFunction:
    """The score called ``name`` (one of SCORE_NAMES) over the label vocabulary ``labels``."""
    return ScoreFunction(
        name=name,
        labels=tuple(str(label) for label in labels),
        maximize=name not in SEGMENT_TIME_RESOLUTION,
        events=name in EVENT_BASED_SETTINGS or name in SEGMENT_TIME_RESOLUTION,
    )
