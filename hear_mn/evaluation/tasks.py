"""HEAR 2021 tasks on disk: reading them and refusing malformed ones before any compute.

A task folder, as the HEAR 2021 data sets and ``heareval`` lay it out::

    <task>/task_metadata.json     embedding_type, prediction_type, split_mode, splits, evaluation, ...
    <task>/labelvocabulary.csv    idx,label
    <task>/<split>.json           scene: file -> [label, ...]; event: file -> [{label, start, end}] (ms)
    <task>/<sample_rate>/<split>/<file>

:func:`read_task` checks all of it (and :meth:`HearTask.audio_files` that every listed file
exists at a sample rate) and raises :class:`TaskError` naming the file at fault.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hear_mn.evaluation.scores import SCORE_NAMES, make_score

__all__ = [
    "HearTask",
    "TaskError",
    "data_splits",
    "find_tasks",
    "read_task",
]

EMBEDDING_TYPES = ("scene", "event")
PREDICTION_TYPES = ("multiclass", "multilabel")
SPLIT_MODES = ("trainvaltest", "new_split_kfold", "presplit_kfold")
TRAINVALTEST = ("train", "valid", "test")


class TaskError(ValueError):
    """A HEAR task folder is missing a file or holds one that does not follow the format."""


@dataclass(frozen=True)
class HearTask:
    """A task read from disk: its metadata, label vocabulary and per-split labels.

    ``splits`` maps each split of ``metadata["splits"]`` to its files, in the order of its
    JSON file, and their labels: a list of labels (scene tasks) or of events
    ``{"label", "start", "end"}`` in milliseconds (event tasks). Labels are strings.
    """

    path: Path
    metadata: dict
    labels: tuple[str, ...]
    splits: dict[str, dict[str, list]]

    @property
    def name(self) -> str:
        """The task folder's name (e.g. ``speech_commands-v0.0.2-5h``)."""
        return self.path.name

    @property
    def embedding_type(self) -> str:
        return str(self.metadata["embedding_type"])

    @property
    def prediction_type(self) -> str:
        return str(self.metadata["prediction_type"])

    @property
    def scores(self) -> tuple[str, ...]:
        """The task's evaluation scores; the first one selects models."""
        return tuple(self.metadata["evaluation"])

    def sample_rates(self) -> list[int]:
        """The sample rates the task has audio folders for."""
        return sorted(
            int(entry.name)
            for entry in self.path.iterdir()
            if entry.is_dir() and entry.name.isdigit()
        )

    def audio_files(self, sample_rate: int) -> dict[str, list[tuple[str, Path]]]:
        """Per split, ``(file, path)`` of every listed file at ``sample_rate``; a missing
        rate folder or file is a :class:`TaskError` (before anything is computed)."""
        root = self.path / str(sample_rate)
        if not root.is_dir():
            rates = ", ".join(f"{rate} Hz" for rate in self.sample_rates()) or "none"
            raise TaskError(
                f"task {self.name} has no audio at {sample_rate} Hz, the model's sample rate "
                f"(no folder {root}; the task has: {rates}); render the task at {sample_rate} Hz "
                "or choose a model of another sample rate"
            )
        found: dict[str, list[tuple[str, Path]]] = {}
        for split, files in self.splits.items():
            paths = [(name, root / split / name) for name in files]
            missing = [path for _, path in paths if not path.is_file()]
            if missing:
                more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
                raise TaskError(
                    f"task {self.name}: {self.path / f'{split}.json'} lists {missing[0].name} "
                    f"but {missing[0]} does not exist{more}"
                )
            found[split] = paths
        return found


def find_tasks(
    tasks_dir: str | os.PathLike[str], names: str | Iterable[str] | None = None
) -> list[Path]:
    """Task folders: ``tasks_dir`` itself when it is one (it holds task_metadata.json), else
    its sub-folders that are (sorted by name), keeping those in ``names`` (one name or
    several) when given."""
    if isinstance(names, str):  # one name, not its characters
        names = [names]
    root = Path(tasks_dir)
    if not root.is_dir():
        raise TaskError(f"tasks folder {root} does not exist or is not a folder")
    if (root / "task_metadata.json").is_file():
        found = [root]
    else:
        found = sorted(p for p in root.iterdir() if (p / "task_metadata.json").is_file())
    if names is not None:
        wanted = list(dict.fromkeys(names))
        by_name = {path.name: path for path in found}
        unknown = [name for name in wanted if name not in by_name]
        if unknown:
            known = ", ".join(sorted(by_name)) or "none"
            raise TaskError(f"no task named {', '.join(unknown)} in {root} (tasks there: {known})")
        found = [by_name[name] for name in wanted]
    if not found:
        raise TaskError(
            f"no HEAR task in {root}: a task is a folder with a task_metadata.json "
            "(give a folder of task folders, as heareval's --tasks-dir, or one task folder)"
        )
    return found


def _load_json(path: Path) -> object:
    if not path.is_file():
        raise TaskError(f"{path} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise TaskError(f"{path} is not readable JSON: {error}") from None


def _check_choice(path: Path, metadata: dict, key: str, choices: tuple[str, ...]) -> None:
    if metadata.get(key) not in choices:
        raise TaskError(
            f"{path}: {key} must be one of {', '.join(choices)}, got {metadata.get(key)!r}"
        )


def _read_metadata(path: Path) -> dict:
    metadata = _load_json(path)
    if not isinstance(metadata, dict):
        raise TaskError(f"{path} must hold a JSON object")
    _check_choice(path, metadata, "embedding_type", EMBEDDING_TYPES)
    _check_choice(path, metadata, "prediction_type", PREDICTION_TYPES)
    _check_choice(path, metadata, "split_mode", SPLIT_MODES)
    splits = metadata.get("splits")
    if not isinstance(splits, list) or not all(isinstance(s, str) and s for s in splits):
        raise TaskError(f"{path}: splits must be a list of split names, got {splits!r}")
    if len(set(splits)) != len(splits):
        raise TaskError(f"{path}: splits are not unique: {splits}")
    if metadata["split_mode"] == "trainvaltest" and sorted(splits) != sorted(TRAINVALTEST):
        raise TaskError(
            f"{path}: a trainvaltest task has the splits train, valid and test, not {splits}"
        )
    if metadata["split_mode"] != "trainvaltest" and len(splits) < 3:
        raise TaskError(
            f"{path}: a k-fold task needs at least 3 folds (one to test, one to validate, the "
            f"rest to train), got {splits}"
        )
    scores = metadata.get("evaluation")
    if not isinstance(scores, list) or not scores:
        raise TaskError(f"{path}: evaluation must be a non-empty list of score names")
    for name in scores:
        if name not in SCORE_NAMES:
            raise TaskError(f"{path}: unknown score {name!r}; known: {', '.join(SCORE_NAMES)}")
        if make_score(name, ()).events != (metadata["embedding_type"] == "event"):
            kind = "event" if metadata["embedding_type"] == "event" else "scene"
            raise TaskError(f"{path}: score {name} does not apply to {kind} tasks")
    metadata.setdefault("task_name", path.parent.name)
    return metadata


def _read_vocabulary(path: Path) -> tuple[str, ...]:
    if not path.is_file():
        raise TaskError(f"{path} does not exist")
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise TaskError(f"{path} is not a readable CSV file: {error}") from None
    if not rows or not {"idx", "label"} <= set(rows[0]):
        raise TaskError(f"{path} must have the columns idx,label and at least one row")
    labels: dict[int, str] = {}
    for row in rows:
        try:
            index = int(row["idx"])
        except (TypeError, ValueError):
            raise TaskError(f"{path}: idx {row['idx']!r} is not an integer") from None
        if index in labels:
            raise TaskError(f"{path}: idx {index} appears twice")
        labels[index] = str(row["label"])
    if sorted(labels) != list(range(len(labels))):
        raise TaskError(f"{path}: idx must run from 0 to {len(labels) - 1} without gaps")
    if len(set(labels.values())) != len(labels):
        raise TaskError(f"{path}: a label appears twice")
    return tuple(labels[i] for i in range(len(labels)))


def _scene_labels(
    path: Path, name: str, value: object, vocabulary: set[str], multiclass: bool
) -> list:
    if not isinstance(value, list):
        raise TaskError(f"{path}: the labels of {name} must be a list, got {value!r}")
    labels = [str(label) for label in value]
    unknown = [label for label in labels if label not in vocabulary]
    if unknown:
        raise TaskError(
            f"{path}: {name} has label {unknown[0]!r}, which is not in labelvocabulary.csv"
        )
    if multiclass and len(labels) != 1:
        raise TaskError(
            f"{path}: {name} has {len(labels)} labels; a multiclass task needs exactly one per file"
        )
    return labels


def _events(path: Path, name: str, value: object, vocabulary: set[str]) -> list:
    if not isinstance(value, list):
        raise TaskError(f"{path}: the events of {name} must be a list, got {value!r}")
    events = []
    for event in value:
        if not isinstance(event, dict) or not {"label", "start", "end"} <= set(event):
            raise TaskError(f"{path}: an event of {name} is not {{label, start, end}}: {event!r}")
        label, start, end = str(event["label"]), event["start"], event["end"]
        if label not in vocabulary:
            raise TaskError(
                f"{path}: {name} has label {label!r}, which is not in labelvocabulary.csv"
            )
        numbers = all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in (start, end))
        if not numbers or not all(math.isfinite(t) for t in (start, end)) or start > end:
            raise TaskError(
                f"{path}: an event of {name} needs start <= end in milliseconds, got {start!r}..{end!r}"
            )
        events.append({**event, "label": label})
    return events


def _read_split(path: Path, metadata: dict, vocabulary: set[str]) -> dict[str, list]:
    content = _load_json(path)
    if not isinstance(content, dict):
        raise TaskError(f"{path} must hold a JSON object: file name -> labels")
    if not content:
        raise TaskError(f"{path} lists no files: every split needs at least one")
    event = metadata["embedding_type"] == "event"
    multiclass = metadata["prediction_type"] == "multiclass"
    return {
        str(name): _events(path, name, value, vocabulary)
        if event
        else _scene_labels(path, name, value, vocabulary, multiclass)
        for name, value in content.items()
    }


def read_task(path: str | os.PathLike[str]) -> HearTask:
    """Read and check the task folder ``path`` (metadata, vocabulary, every split's labels);
    raises :class:`TaskError` naming the file at fault. Audio is checked by
    :meth:`HearTask.audio_files`."""
    root = Path(path)
    metadata = _read_metadata(root / "task_metadata.json")
    labels = _read_vocabulary(root / "labelvocabulary.csv")
    vocabulary = set(labels)
    splits = {
        split: _read_split(root / f"{split}.json", metadata, vocabulary)
        for split in metadata["splits"]
    }
    return HearTask(root, metadata, labels, splits)


def data_splits(metadata: dict) -> list[dict[str, list[str]]]:
    """The train/valid/test splits each model is trained on, heareval's rotation: one for a
    trainvaltest task; for k folds (sorted), fold i tests, fold i+1 (cyclically) validates
    and the others train, in sorted order."""
    if metadata["split_mode"] == "trainvaltest":
        return [{"train": ["train"], "valid": ["valid"], "test": ["test"]}]
    folds = sorted(metadata["splits"])
    rotation = []
    for index, test in enumerate(folds):
        valid = folds[(index + 1) % len(folds)]
        rotation.append(
            {
                "train": [f for f in folds if f not in (test, valid)],
                "valid": [valid],
                "test": [test],
            }
        )
    return rotation
