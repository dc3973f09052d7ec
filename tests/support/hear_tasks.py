"""Tiny tasks in the HEAR on-disk format, synthesized for the tests of the official HEAR tools.

A task directory, as ``heareval`` reads it::

    <task>/task_metadata.json        name, embedding and prediction type, splits, scores
    <task>/labelvocabulary.csv       idx,label
    <task>/<split>.json              scene: file -> [label]; event: file -> [{label, start, end}] (ms)
    <task>/<sample_rate>/<split>/<file>.wav

Every clip is written at each of ``SAMPLE_RATES`` from the same recipe (tones are
computed analytically at each rate; noise is drawn per rate from a fixed seed), as 16-bit
PCM WAV like the HEAR 2021 tasks. Everything is deterministic.

``RANDOM_MODULE_SOURCE`` is a HEAR module that has nothing to do with hear_mn (random
embeddings): running heareval with it shows whether a failure is heareval's or ours.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SAMPLE_RATES = (16000, 32000, 48000)

SCENE_TASK = "hearmn_tones"
EVENT_TASK = "hearmn_beeps"
KFOLD_TASK = "hearmn_chords"
NOTES_TASK = "hearmn_notes"
NOTES_LABELS = tuple(f"n{i:02d}" for i in range(12))
NOTES_DURATION = 4.0  # seconds

SCENE_LABELS = ("low", "high", "noise")
EVENT_LABELS = ("beep", "buzz")

# Clips per label (scene) or clips (event) in each split.
SCENE_SPLITS = {"train": 4, "valid": 2, "test": 2}
EVENT_SPLITS = {"train": 6, "valid": 3, "test": 3}

# k-fold task: folds of clips per label.
KFOLD_LABELS = ("c", "e", "g", "b")
KFOLD_FOLDS = ("fold00", "fold01", "fold02")
KFOLD_PER_FOLD = 3

SCENE_DURATION = 1.0  # seconds
EVENT_DURATION = 2.0  # seconds

# heareval's predictions runner lets a task override its hyper-parameter grid
# (evaluation_params.task_specific_param_grid). Its grids train at most 1e-3 for few
# epochs, which learns nothing from a dozen clips (one batch, one step an epoch); these
# settings learn the tasks in seconds (one grid point).
PARAM_GRID = {
    "lr": [1e-2],
    "max_epochs": [30],
    "patience": [10],
    "check_val_every_n_epoch": [1],
    "hidden_layers": [1],
    "hidden_dim": [128],
}


@dataclass
class SynthTask:
    """What was written: the task directory and, per split, the labels of every file."""

    path: Path
    metadata: dict
    labels: dict[str, dict[str, list]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    def audio_path(self, sample_rate: int, split: str, filename: str) -> Path:
        return self.path / str(sample_rate) / split / filename

    def files(self, split: str) -> list[str]:
        return sorted(self.labels[split])


def _time(duration: float, sample_rate: int) -> np.ndarray:
    return np.arange(round(duration * sample_rate)) / sample_rate


def _fade(n: int, sample_rate: int, ms: float = 10.0) -> np.ndarray:
    """A raised-cosine fade in and out, so that bursts have no clicks."""
    ramp = min(n // 2, int(sample_rate * ms / 1000))
    envelope = np.ones(n)
    if ramp > 0:
        rise = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
        envelope[:ramp] = rise
        envelope[n - ramp :] = rise[::-1]
    return envelope


def _scene_clip(label: str, k: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    t = _time(SCENE_DURATION, sample_rate)
    if label == "low":
        signal = np.sin(2 * np.pi * (250.0 + 40.0 * k) * t)
    elif label == "high":
        signal = np.sin(2 * np.pi * (2500.0 + 300.0 * k) * t)
    else:
        signal = rng.uniform(-1.0, 1.0, t.shape)
    return 0.5 * signal * _fade(t.size, sample_rate)


def _burst(label: str, duration: float, sample_rate: int) -> np.ndarray:
    t = _time(duration, sample_rate)
    if label == "beep":
        signal = np.sin(2 * np.pi * 1000.0 * t)
    else:  # a 150 Hz square-ish buzz: odd harmonics up to 3 kHz
        signal = sum(np.sin(2 * np.pi * 150.0 * h * t) / h for h in range(1, 21, 2))
    return 0.6 * signal / np.abs(signal).max() * _fade(t.size, sample_rate)


def _write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(audio, -1.0, 1.0).astype(np.float32), sample_rate, "PCM_16")


@dataclass(frozen=True)
class EventClip:
    """One clip of an event task: its events' sounds over faint noise, written at each rate."""

    task: SynthTask
    split: str
    filename: str
    seed: int
    duration: float
    noise: float

    def write(self, events: list[dict], sample_rates: tuple[int, ...], sound) -> None:
        """``sound(label, samples, sample_rate)`` is each event's signal."""
        for sample_rate in sample_rates:
            rng = np.random.default_rng([self.seed, sample_rate])
            audio = self.noise * rng.standard_normal(round(self.duration * sample_rate))
            for event in events:
                a, b = (round(event[key] / 1000 * sample_rate) for key in ("start", "end"))
                audio[a:b] += sound(event["label"], b - a, sample_rate)
            _write_wav(
                self.task.audio_path(sample_rate, self.split, self.filename), audio, sample_rate
            )


def _note(label: str, samples: int, sample_rate: int) -> np.ndarray:
    """A faded sine at the label's pitch (12 semitones from 220 Hz)."""
    pitch = 220.0 * 2 ** (NOTES_LABELS.index(label) / 12)
    t = np.arange(samples) / sample_rate
    return 0.2 * np.sin(2 * np.pi * pitch * t) * _fade(samples, sample_rate)


def _write_common(task_dir: Path, metadata: dict, labels: tuple[str, ...]) -> None:
    task_dir.mkdir(parents=True, exist_ok=True)
    (task_dir / "task_metadata.json").write_text(json.dumps(metadata, indent=2))
    with open(task_dir / "labelvocabulary.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["idx", "label"])
        writer.writerows(enumerate(labels))


def _metadata(
    name: str,
    embedding_type: str,
    split_mode: str,
    duration: float,
    evaluation: list[str],
    splits: list[str],
    grid: dict | None,
    prediction_type: str = "multiclass",
) -> dict:
    """A task_metadata.json; ``grid``: the task's own grid (None: heareval's grid applies)."""
    return {
        "task_name": name,
        "version": "hear-mn-test-1",
        "embedding_type": embedding_type,
        "prediction_type": prediction_type,
        "split_mode": split_mode,
        "sample_duration": duration,
        "evaluation": evaluation,
        "splits": splits,
        "evaluation_params": {"task_specific_param_grid": grid} if grid is not None else {},
    }


def make_scene_task(
    root: Path,
    sample_rates: tuple[int, ...] = SAMPLE_RATES,
    splits: dict[str, int] = SCENE_SPLITS,
    grid: dict | None = PARAM_GRID,
    name: str = SCENE_TASK,
) -> SynthTask:
    """A multiclass scene task (top1_acc): low tone, high tone or noise, 1 s clips;
    ``splits``: clips per label in each split; ``grid``: the task's own grid (None: heareval's)."""
    metadata = _metadata(
        name, "scene", "trainvaltest", SCENE_DURATION, ["top1_acc"], list(splits), grid
    )
    task = SynthTask(root / name, metadata)
    _write_common(task.path, metadata, SCENE_LABELS)
    for split_index, (split, per_label) in enumerate(splits.items()):
        split_labels: dict[str, list] = {}
        for label_index, label in enumerate(SCENE_LABELS):
            for k in range(per_label):
                filename = f"{label}_{split}_{k}.wav"
                split_labels[filename] = [label]
                seed = 1000 * split_index + 100 * label_index + k
                for sample_rate in sample_rates:
                    rng = np.random.default_rng([seed, sample_rate])
                    audio = _scene_clip(label, k + per_label * split_index, sample_rate, rng)
                    _write_wav(task.audio_path(sample_rate, split, filename), audio, sample_rate)
        task.labels[split] = split_labels
        (task.path / f"{split}.json").write_text(json.dumps(split_labels, indent=2))
    return task


def make_event_task(
    root: Path,
    sample_rates: tuple[int, ...] = SAMPLE_RATES,
    splits: dict[str, int] = EVENT_SPLITS,
    grid: dict | None = PARAM_GRID,
    name: str = EVENT_TASK,
) -> SynthTask:
    """A multilabel event task (event_onset_200ms_fms): beeps and buzzes in faint noise, 2 s clips.

    Each clip holds one or two non-overlapping events of 250-600 ms; onsets and offsets are
    whole milliseconds.
    """
    metadata = _metadata(
        name,
        "event",
        "trainvaltest",
        EVENT_DURATION,
        ["event_onset_200ms_fms", "segment_1s_er"],
        list(splits),
        grid,
        prediction_type="multilabel",
    )
    task = SynthTask(root / name, metadata)
    _write_common(task.path, metadata, EVENT_LABELS)
    rng_layout = np.random.default_rng(7)
    for split_index, (split, n_files) in enumerate(splits.items()):
        split_labels: dict[str, list] = {}
        for k in range(n_files):
            filename = f"clip_{split}_{k}.wav"
            events = []
            # First event in [100, 700) ms, a second one (other label) after it when it fits.
            first = EVENT_LABELS[(k + split_index) % 2]
            start = int(rng_layout.integers(100, 700))
            end = start + int(rng_layout.integers(250, 600))
            events.append({"label": first, "start": float(start), "end": float(end)})
            if k % 3 != 2:
                second = EVENT_LABELS[(k + split_index + 1) % 2]
                start2 = end + int(rng_layout.integers(150, 300))
                end2 = min(start2 + int(rng_layout.integers(250, 500)), 1900)
                events.append({"label": second, "start": float(start2), "end": float(end2)})
            split_labels[filename] = events
            clip = EventClip(
                task, split, filename, 2000 + 100 * split_index + k, EVENT_DURATION, 0.02
            )
            clip.write(events, sample_rates, lambda label, n, rate: _burst(label, n / rate, rate))
        task.labels[split] = split_labels
        (task.path / f"{split}.json").write_text(json.dumps(split_labels, indent=2))
    return task


def _chord_clip(label_index: int, k: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A tone at one of four close pitches (a semitone apart around 440 Hz) with a random
    second partial and loud noise: learnable, but not perfectly, from a dozen clips."""
    t = _time(SCENE_DURATION, sample_rate)
    pitch = 440.0 * 2 ** ((label_index + 0.3 * rng.uniform(-1, 1)) / 12)
    signal = np.sin(2 * np.pi * pitch * t) + rng.uniform(0.2, 0.8) * np.sin(
        2 * np.pi * 2 * pitch * t
    )
    noise = rng.standard_normal(t.size) * rng.uniform(0.6, 1.4)
    return 0.25 * (signal + noise) * _fade(t.size, sample_rate)


def make_kfold_task(
    root: Path,
    sample_rates: tuple[int, ...] = SAMPLE_RATES,
    per_fold: int = KFOLD_PER_FOLD,
    grid: dict | None = PARAM_GRID,
    name: str = KFOLD_TASK,
) -> SynthTask:
    """A multiclass scene task in three folds (new_split_kfold; top1_acc, then mAP): four
    close pitches in noise, 1 s clips."""
    metadata = _metadata(
        name,
        "scene",
        "new_split_kfold",
        SCENE_DURATION,
        ["top1_acc", "mAP"],
        list(KFOLD_FOLDS),
        grid,
    )
    task = SynthTask(root / name, metadata)
    _write_common(task.path, metadata, KFOLD_LABELS)
    for fold_index, fold in enumerate(KFOLD_FOLDS):
        fold_labels: dict[str, list] = {}
        for label_index, label in enumerate(KFOLD_LABELS):
            for k in range(per_fold):
                filename = f"{label}_{fold}_{k}.wav"
                fold_labels[filename] = [label]
                for sample_rate in sample_rates:
                    rng = np.random.default_rng(
                        [3000 + 100 * fold_index + 10 * label_index + k, sample_rate]
                    )
                    audio = _chord_clip(label_index, k, sample_rate, rng)
                    _write_wav(task.audio_path(sample_rate, fold, filename), audio, sample_rate)
        task.labels[fold] = fold_labels
        (task.path / f"{fold}.json").write_text(json.dumps(fold_labels, indent=2))
    return task


def make_notes_task(
    root: Path,
    sample_rates: tuple[int, ...] = SAMPLE_RATES,
    splits: dict[str, int] | None = None,
    grid: dict | None = PARAM_GRID,
    name: str = NOTES_TASK,
) -> SynthTask:
    """A dense multilabel event task (event_onset_50ms_fms, then segment_1s_er): 4 s clips
    of about 20 notes each (12 pitches, 100-400 ms, overlapping) in faint noise."""
    splits = splits or {"train": 12, "valid": 6, "test": 6}
    metadata = _metadata(
        name,
        "event",
        "trainvaltest",
        NOTES_DURATION,
        ["event_onset_50ms_fms", "segment_1s_er"],
        list(splits),
        grid,
        prediction_type="multilabel",
    )
    task = SynthTask(root / name, metadata)
    _write_common(task.path, metadata, NOTES_LABELS)
    layout = np.random.default_rng(11)
    for split_index, (split, n_files) in enumerate(splits.items()):
        split_labels: dict[str, list] = {}
        for k in range(n_files):
            filename = f"notes_{split}_{k}.wav"
            starts = np.sort(layout.integers(0, 3600, 20))
            events = [
                {
                    "label": NOTES_LABELS[int(layout.integers(12))],
                    "start": float(a),
                    "end": float(a + layout.integers(100, 400)),
                }
                for a in starts
            ]
            split_labels[filename] = events
            clip = EventClip(
                task, split, filename, 4000 + 100 * split_index + k, NOTES_DURATION, 0.01
            )
            clip.write(events, sample_rates, _note)
        task.labels[split] = split_labels
        (task.path / f"{split}.json").write_text(json.dumps(split_labels, indent=2))
    return task


def make_tasks(root: Path, kfold: bool = False) -> dict[str, SynthTask]:
    """The scene and event tasks (and with ``kfold`` the k-fold task) under ``root`` (a
    heareval ``--tasks-dir``)."""
    tasks = {SCENE_TASK: make_scene_task(root), EVENT_TASK: make_event_task(root)}
    if kfold:
        tasks[KFOLD_TASK] = make_kfold_task(root)
    return tasks


# A HEAR module independent of hear_mn (written to a file by the tests and imported by the
# HEAR tools as ``hear_random_module``): 32-d random embeddings every 25 ms. It takes 48 kHz
# audio, so that heareval reads the tasks' 48 kHz copies too.
RANDOM_MODULE_NAME = "hear_random_module"
RANDOM_MODULE_SOURCE = '''\
"""A trivial HEAR module: random 32-d embeddings every 25 ms (48 kHz). For tests only."""

import torch


class RandomModel(torch.nn.Module):
    sample_rate = 48000
    scene_embedding_size = 32
    timestamp_embedding_size = 32

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))


def load_model(model_file_path="", **options):
    return RandomModel()


def get_timestamp_embeddings(audio, model):
    n_sounds, n_samples = audio.shape
    n = n_samples // 1200 + 1
    generator = torch.Generator().manual_seed(n_sounds * 100003 + n_samples)
    embeddings = torch.rand(n_sounds, n, 32, generator=generator).to(audio.device)
    timestamps = torch.arange(n, device=audio.device, dtype=torch.float32) * 25.0
    return embeddings * model.scale.detach(), timestamps.expand(n_sounds, n)


def get_scene_embeddings(audio, model):
    return get_timestamp_embeddings(audio, model)[0].mean(dim=1)
'''


# heareval 2021.1.3 scores the test split at the best validation epoch by assigning
# `trainer.fit_loop.current_epoch = best_epoch` before `trainer.test(...)`. pytorch-lightning
# 1.5 had a setter for that property; 1.6 removed it (the epoch is now
# `fit_loop.epoch_progress.current.completed`), so on every Lightning release heareval accepts
# (>= 1.6) the assignment is silently ignored, the test step looks up the epoch count after
# training instead of the best epoch, and event tasks fail with KeyError in
# `epoch_best_postprocessing_or_default`. Run as `python -c LIGHTNING_EPOCH_SHIM <runner args>`,
# this restores the setter and then runs heareval's predictions runner unchanged.
LIGHTNING_EPOCH_SHIM = """\
import pytorch_lightning.loops as loops
loops.FitLoop.current_epoch = property(
    lambda self: self.epoch_progress.current.completed,
    lambda self, epoch: setattr(self.epoch_progress.current, "completed", epoch),
)
from heareval.predictions.runner import runner
runner()
"""
