"""Labelled audio for the classifier tests, rendered by the tests: three classes (a low tone,
a high tone, noise) of 1 s clips from tests/support/hear_tasks.py, as class sub-folders, CSVs or a
HEAR task of the same files; and spoken words (espeak-ng, tests/support/render_speech.py) as a HEAR
scene task."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf

from support.hear_tasks import PARAM_GRID, SynthTask, make_scene_task

# A grid that learns these classes in a second (heareval's default grid takes minutes).
FAST_PARAMS = PARAM_GRID

WORDS = ("yes", "no", "stop", "go")
# Voices of each word in each split (each word is said by 16 voices: names, pitches, rates).
WORD_SPLITS = {"train": 8, "valid": 4, "test": 4}
# One grid point still, trained longer than FAST_PARAMS: the MobileNet fixture's random
# weights give embeddings that FAST_PARAMS's 30 steps at 1e-2 do not fit (train accuracy
# 0.69, valid 0.75); 100 epochs at 3e-3 fit them (valid about 0.9), in a few seconds.
WORD_PARAMS = {**FAST_PARAMS, "lr": [3e-3], "max_epochs": [100], "patience": [30]}


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


def tones_task(root: Path, sample_rate: int) -> SynthTask:
    """The tones as a HEAR scene task: 5, 3 and 3 clips of each class in train, valid, test."""
    return make_scene_task(root, (sample_rate,), {"train": 5, "valid": 3, "test": 3})


def spoken_words_task(
    root: Path, sample_rate: int, splits: dict[str, int] = WORD_SPLITS
) -> SynthTask:
    """:data:`WORDS` spoken by espeak-ng as a HEAR scene task (``hearmn_words``, 1 s clips at
    ``sample_rate``, the grid :data:`WORD_PARAMS`): every word's voices are shuffled once
    (seed 0) and dealt to the splits, ``splits`` voices each, so that a split holds several
    voice names, pitches and rates."""
    from hear_mn.audio_io import load_audio
    from support.render_speech import render_words

    rendered = render_words(root / "speech", WORDS, sum(splits.values()))
    task = SynthTask(
        root / "hearmn_words",
        {
            "task_name": "hearmn_words",
            "version": "hear-mn-test-1",
            "embedding_type": "scene",
            "prediction_type": "multiclass",
            "split_mode": "trainvaltest",
            "sample_duration": 1.0,
            "evaluation": ["top1_acc"],
            "splits": list(splits),
            "evaluation_params": {"task_specific_param_grid": WORD_PARAMS},
        },
    )
    task.path.mkdir(parents=True)
    (task.path / "task_metadata.json").write_text(json.dumps(task.metadata, indent=2))
    (task.path / "labelvocabulary.csv").write_text(
        "idx,label\n" + "".join(f"{i},{w}\n" for i, w in enumerate(WORDS))
    )
    task.labels = {split: {} for split in splits}
    for word, files in rendered.items():
        names = sorted(files)
        random.Random(0).shuffle(names)
        for split, count in splits.items():
            for name in names[:count]:
                audio = load_audio(root / "speech" / word / name, sample_rate)
                target = task.audio_path(sample_rate, split, name)
                target.parent.mkdir(parents=True, exist_ok=True)
                sf.write(str(target), np.clip(audio, -1, 1), sample_rate, "PCM_16")
                task.labels[split][name] = [word]
            names = names[count:]
    for split, files in task.labels.items():
        (task.path / f"{split}.json").write_text(json.dumps(files, indent=2))
    return task
