"""The downstream stage: a task's embeddings -> trained models -> validation and test scores.

heareval's protocol (read from heareval 2021.1.3; our code): the grid points
(:mod:`~hear_mn.evaluation.grid`) are trained on the first train/valid/test split and the
best by validation score is chosen (ties: the earlier point); for k-fold tasks that point is
trained again on every other fold rotation; each split's model is then tested. Event tasks
turn frame probabilities into events (:mod:`~hear_mn.evaluation.events`) with the
post-processing that scored best at the model's best validation. For k folds, scores are
averaged over folds with their standard deviation (sample, ddof=1, as pandas computes it).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hear_mn.evaluation.events import EVENT_POSTPROCESSING_GRID, FrameIndex, postprocessing_points
from hear_mn.evaluation.grid import HyperParameters, grid_points
from hear_mn.evaluation.layout import SplitEmbeddings, read_split
from hear_mn.evaluation.scores import ScoreFunction, make_score
from hear_mn.evaluation.tasks import HearTask, TaskError, data_splits, read_task
from hear_mn.evaluation.trainer import TrainedModel, activation, logit_loss, train_grid

__all__ = ["FoldResult", "TaskData", "TaskScores", "score_task"]

logger = logging.getLogger(__name__)


@dataclass
class TaskData:
    """A task's embeddings in memory: every split's rows and targets, on ``device``."""

    task: HearTask
    splits: dict[str, SplitEmbeddings]
    targets: dict[str, torch.Tensor]
    embeddings: dict[str, torch.Tensor]

    @property
    def event(self) -> bool:
        return self.task.embedding_type == "event"

    @property
    def multiclass(self) -> bool:
        return self.task.prediction_type == "multiclass"

    def rows(self, names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The embeddings and targets of ``names`` (splits) concatenated in that order."""
        return (
            torch.cat([self.embeddings[n] for n in names]),
            torch.cat([self.targets[n] for n in names]),
        )

    def frames(self, names: list[str]) -> FrameIndex:
        return FrameIndex(
            [f for n in names for f in self.splits[n].filenames],
            np.concatenate([self.splits[n].timestamps for n in names]),
        )

    def target_events(self, names: list[str]) -> dict[str, list]:
        return {file: events for n in names for file, events in self.task.splits[n].items()}


def load_task_data(task_dir: Path, device: torch.device) -> TaskData:
    """Read a task's embeddings folder (ours or heareval's) and check it is consistent."""
    task = read_task(task_dir)
    event = task.embedding_type == "event"
    index = {label: i for i, label in enumerate(task.labels)}
    splits, targets, embeddings, widths = {}, {}, {}, {}
    for split in task.splits:
        data = read_split(task_dir, split, event)
        y = np.zeros((len(data.labels), len(task.labels)), dtype=np.float32)
        for row, labels in enumerate(data.labels):
            unknown = [label for label in labels if label not in index]
            if unknown:
                raise TaskError(
                    f"{task_dir}: {split} has label {unknown[0]!r}, not in labelvocabulary.csv"
                )
            y[row, [index[label] for label in labels]] = 1.0
        if task.prediction_type == "multiclass" and not (y.sum(axis=1) == 1).all():
            raise TaskError(
                f"{task_dir}: {split} has rows without exactly one label; a multiclass task needs one per row"
            )
        splits[split], widths[split] = data, data.embeddings.shape[1]
        targets[split] = torch.from_numpy(y).to(device)
        embeddings[split] = torch.from_numpy(data.embeddings).to(device)
    if len(set(widths.values())) > 1:
        shown = ", ".join(f"{split} {width}" for split, width in widths.items())
        raise TaskError(
            f"{task_dir}: the splits' embeddings have different widths ({shown}): they were "
            "written by different models; compute them again into an empty folder"
        )
    return TaskData(task, splits, targets, embeddings)


class Scorer:
    """The task's scores on one split's predictions, with event post-processing."""

    def __init__(self, data: TaskData, names: list[str], postprocessing_grid: dict) -> None:
        self.data = data
        self.scores: list[ScoreFunction] = [
            make_score(n, data.task.labels) for n in data.task.scores
        ]
        self.targets = data.rows(names)[1].cpu().numpy()
        self.frames = data.frames(names) if data.event else None
        self.events = data.target_events(names) if data.event else None
        self.postprocessing = postprocessing_points(postprocessing_grid) if data.event else [None]

    def all_scores(
        self, probabilities: np.ndarray, postprocessing: object
    ) -> tuple[dict, dict | None]:
        """Every score of the task (``name``, and ``name_sub`` for event sub-scores), and
        the predicted events (event tasks)."""
        if not self.data.event:
            scores = {
                k: v for score in self.scores for k, v in score(probabilities, self.targets).items()
            }
            return scores, None
        predicted = self.frames.events(probabilities, self.data.task.labels, postprocessing)
        scores = {k: v for score in self.scores for k, v in score(predicted, self.events).items()}
        return scores, predicted

    def best_postprocessing(self, probabilities: np.ndarray) -> tuple[object, float]:
        """The post-processing with the best primary score (NaN counts as 0; ties go to the
        larger parameters, as heareval sorts) and that score."""
        primary = self.scores[0]
        if not self.data.event:
            return None, next(iter(primary(probabilities, self.targets).values()))
        ranked = []
        for postprocessing in self.postprocessing:
            predicted = self.frames.events(probabilities, self.data.task.labels, postprocessing)
            value = next(iter(primary(predicted, self.events).values()))
            ranked.append((0.0 if math.isnan(value) else value, postprocessing, value))
        ranked.sort(key=lambda item: (item[0], item[1]), reverse=True)
        return ranked[0][1], ranked[0][2]


@dataclass
class FoldResult:
    """One train/valid/test split's model and its scores."""

    split: dict[str, list[str]]
    model: TrainedModel
    valid: dict[str, float]
    test: dict[str, float]
    test_loss: float
    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    predicted_events: dict | None = None


@dataclass
class TaskScores:
    """A task's outcome: the grid's validation results, the chosen point, every fold."""

    task: HearTask
    grid: list[TrainedModel]
    best: HyperParameters
    folds: list[FoldResult]
    seconds: float


def _evaluate(
    data: TaskData, model: TrainedModel, names: list[str], grid: dict
) -> tuple[dict, float, dict, dict | None]:
    """A model's scores on the splits ``names``, its loss, its predictions (arrays) and, for
    event tasks, its predicted events."""
    x, y = data.rows(names)
    logits = model.logits(x)
    loss = float(logit_loss(logits, y, data.multiclass))
    probabilities = activation(logits, data.multiclass).cpu().numpy()
    scorer = Scorer(data, names, grid)
    postprocessing = model.postprocessing
    if data.event and postprocessing is None:
        postprocessing = scorer.postprocessing[0]
    scores, events = scorer.all_scores(probabilities, postprocessing)
    arrays = {
        "prediction": probabilities,
        "prediction_logit": logits.cpu().numpy(),
        "target": y.cpu().numpy(),
    }
    if data.event:
        arrays["timestamp"] = np.concatenate([data.splits[n].timestamps for n in names])
    return scores, loss, arrays, events


def _train(
    data: TaskData,
    confs: list[HyperParameters],
    split: dict,
    grid: dict,
    generator: torch.Generator,
    by_loss: bool,
) -> list[TrainedModel]:
    scorer = Scorer(data, split["valid"], grid)
    maximize = not by_loss and scorer.scores[0].maximize

    def validate(probabilities: np.ndarray, loss: float) -> tuple[float, object]:
        if by_loss:
            return loss, scorer.postprocessing[0]
        postprocessing, value = scorer.best_postprocessing(probabilities)
        return value, postprocessing

    return train_grid(
        confs,
        data.rows(split["train"]),
        data.rows(split["valid"]),
        multiclass=data.multiclass,
        validate=validate,
        maximize=maximize,
        seed=generator,
    )


def score_task(
    task_dir: str | Path,
    *,
    grid: str = "default",
    points: int = 8,
    seed: int = 42,
    device: str | torch.device | None = None,
) -> TaskScores:
    """Train and test a task's downstream models on its embeddings folder (heareval's
    layout, written by us or by heareval's embeddings runner)."""
    start = time.perf_counter()
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    data = load_task_data(Path(task_dir), device)
    metadata = data.task.metadata
    params = metadata.get("evaluation_params") or {}
    post_grid = params.get("event_postprocessing_grid", EVENT_POSTPROCESSING_GRID)
    by_loss = not metadata.get("use_scoring_for_early_stopping", True)
    if by_loss and data.event and len(postprocessing_points(post_grid)) != 1:
        raise TaskError(
            f"{task_dir}: without scoring for early stopping an event task needs one post-processing"
        )
    splits = data_splits(metadata)
    confs = grid_points(metadata, grid, points, seed)
    # One generator for the task: the folds after the first draw on from where the grid
    # search left it, as heareval's runs draw on from torch's seeded generator.
    generator = torch.Generator(device=device).manual_seed(seed)
    trained = _train(data, confs, splits[0], post_grid, generator, by_loss)
    maximize = not by_loss and make_score(data.task.scores[0], data.task.labels).maximize
    order = sorted(range(len(trained)), key=lambda i: trained[i].validation_score, reverse=maximize)
    best = trained[order[0]]
    models = [best] + [
        _train(data, [best.conf], split, post_grid, generator, by_loss)[0] for split in splits[1:]
    ]
    folds = []
    for split, model in zip(splits, models):
        valid = _evaluate(data, model, split["valid"], post_grid)[0]
        test, test_loss, arrays, events = _evaluate(data, model, split["test"], post_grid)
        folds.append(FoldResult(split, model, valid, test, test_loss, arrays, events))
    return TaskScores(data.task, trained, best.conf, folds, time.perf_counter() - start)
