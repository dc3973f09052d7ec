"""Labelled audio for the classifier tests, rendered by the tests: three classes (a low tone,
a high tone, noise) of 1 s clips from tests/hear_tasks.py, as class sub-folders, CSVs or a
HEAR task of the same files."""

from __future__ import annotations

import shutil
from pathlib import Path

from hear_tasks import PARAM_GRID, make_scene_task

# A grid that learns these classes in a second (heareval's default grid takes minutes).
FAST_PARAMS = PARAM_GRID


def class_folders(root: Path, sample_rate: int, per_class: int = 8) -> Path:
    """``root/sounds/<class>/<file>.wav``: ``per_class`` clips of each class."""
    task = make_scene_task(root / "render", (sample_rate,), {"all": per_class}, grid=None)
    sounds = root / "sounds"
    for name, labels in task.labels["all"].items():
        target = sounds / labels[0] / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(task.audio_path(sample_rate, "all", name), target)
    return sounds


def split_csvs(
    task_path: Path, labels: dict[str, dict[str, list]], sample_rate: int
) -> dict[str, Path]:
    """One ``file,label`` CSV per split of a rendered HEAR task (paths relative to the task)."""
    csvs = {}
    for split, files in labels.items():
        rows = [
            f"{sample_rate}/{split}/{name},{file_labels[0]}" for name, file_labels in files.items()
        ]
        csvs[split] = task_path / f"{split}.csv"
        csvs[split].write_text("file,label\n" + "\n".join(rows) + "\n")
    return csvs
