"""The HEAR evaluator around the downstream models: task reading and its refusals, the
embedding stage (heareval's layout, the resume rule), the safe unpickler, the reports and
summary, the Python API's returned reports and ``hear-mn evaluate``.

The trainer and the scores have their own tests (test_evaluation_trainer.py,
test_evaluation_scores.py). Tasks are the tiny ones of ``hear_tasks.py``, rendered once per
module (tests that change a task copy it first); the model is ``kwmlp`` (weights shipped
with the package), and a HEAR module unrelated to hear_mn (``RANDOM_MODULE_SOURCE``) shows
that any HEAR-API module can be evaluated.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import pickle
import random
import re
import shutil
import statistics
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import soundfile as sf
import torch
from support.hear_tasks import (
    EVENT_TASK,
    KFOLD_FOLDS,
    KFOLD_TASK,
    PARAM_GRID,
    RANDOM_MODULE_NAME,
    RANDOM_MODULE_SOURCE,
    SCENE_LABELS,
    SCENE_TASK,
    make_tasks,
)
from support.runs import run_cli

import hear_mn
from hear_mn.batch import OutputConflictError
from hear_mn.evaluation import EvaluationError, TaskError
from hear_mn.evaluation.embedders import LibraryEmbedder, make_embedder
from hear_mn.evaluation.embedding import RECORD, embed_task
from hear_mn.evaluation.layout import DONE_MARKER, frame_labels, safe_pickle_load
from hear_mn.evaluation.report import SCORES_FILE
from hear_mn.evaluation.tasks import data_splits, find_tasks, read_task

KWMLP = "hear_mn.kwmlp"
KWMLP_WIDTHS = {"scene": 1024, "event": 64}
RANDOM_WIDTH = 32
ALL_TASKS = (EVENT_TASK, KFOLD_TASK, SCENE_TASK)  # sorted, as find_tasks lists them
SCORING: dict = {"grid": "faster", "grid_points": 1, "device": "cpu"}  # a small, quick protocol
FAST: dict = {**SCORING, "progress": False}
UMASK = 0o027  # the module's evaluation runs under it: files 0o640, folders 0o750
HEAREVAL_FOLD_KEYS = {"test_loss", "test_score", "validation_score", "epoch", "time_in_min"}
REPORT_KEYS = {
    "test",
    "valid",
    "embedding_seconds",
    "audio_seconds",
    "downstream_seconds",
    "grid_point",
    "postprocessing",
    "grid",
    "folds",
}
ORIGINAL_EMBED = LibraryEmbedder.embed


# ----------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Evaluated:
    """The module's evaluation: every task with kwmlp and with the random HEAR module (48
    kHz, one clip a forward pass) into one output folder, under ``UMASK``."""

    tasks: Path
    out: Path
    kwmlp: dict[str, dict]
    foreign: dict[str, dict]
    module: ModuleType

    def task_dir(self, task: str, module: str = KWMLP) -> Path:
        return self.out / module / task

    def copy(self, out: Path, *tasks: str) -> Path:
        """Copies of kwmlp's folders of ``tasks`` in ``out``, as a finished run leaves them
        (a run on ``self.tasks`` into ``out`` reuses them); returns the first task's."""
        for task in tasks:
            shutil.copytree(self.task_dir(task), out / KWMLP / task)
        return out / KWMLP / tasks[0]


@dataclass
class EmbedCalls:
    """What hear-mn's embedder was asked for while patched by :func:`watch_embedder`."""

    calls: int = 0
    clips: int = 0


def watch_embedder(monkeypatch: pytest.MonkeyPatch, interrupt_at: int | None = None) -> EmbedCalls:
    """Count the clips :class:`LibraryEmbedder` embeds; with ``interrupt_at``, its call of
    that number raises KeyboardInterrupt (Ctrl-C) instead."""
    seen = EmbedCalls()

    def embed(self: LibraryEmbedder, clips: list[np.ndarray], event: bool) -> list:
        seen.calls += 1
        if seen.calls == interrupt_at:
            raise KeyboardInterrupt
        seen.clips += len(clips)
        return ORIGINAL_EMBED(self, clips, event)

    monkeypatch.setattr(LibraryEmbedder, "embed", embed)
    return seen


def read_json(path: Path) -> object:
    return json.loads(path.read_text())


def edit_json(path: Path, edit: Callable[[dict], None]) -> None:
    value = read_json(path)
    edit(value)
    path.write_text(json.dumps(value))


def same_json(a: object, b: object) -> bool:
    """Equal as JSON (NaN equal to NaN, tuples as lists)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def copy_task(tasks: Path, name: str, root: Path, rates: tuple[int, ...] = (16000,)) -> Path:
    """A copy of task ``name`` under ``root`` with the audio of ``rates`` only."""
    source = tasks / name

    def ignore(folder: str, names: list[str]) -> list[str]:
        if Path(folder) != source:
            return []
        return [n for n in names if n.isdigit() and int(n) not in rates]

    return Path(shutil.copytree(source, root / name, ignore=ignore))


def split_files(task: Path) -> dict[str, list[str]]:
    """Per split (metadata order), its files in its JSON's order, read without hear_mn."""
    splits = read_json(task / "task_metadata.json")["splits"]
    return {split: list(read_json(task / f"{split}.json")) for split in splits}


def heareval_order(task: Path) -> dict[str, list[str]]:
    """heareval's row order: one random.Random(0) per task shuffles each split's files."""
    prng = random.Random(0)
    order = {}
    for split, names in split_files(task).items():
        prng.shuffle(names)
        order[split] = names
    return order


def fold_names(task: str) -> list[str]:
    """The test folds of a task: heareval names each result by its test split(s)."""
    return list(KFOLD_FOLDS) if task == KFOLD_TASK else ["test"]


def expected_layout(task: Path, folds: list[str]) -> set[str]:
    """Every file an evaluated task folder holds: heareval's layout, our record and reports."""
    event = read_json(task / "task_metadata.json")["embedding_type"] == "event"
    per_file = [".embedding.npy", ".target-labels.json"] + [".timestamps.json"] * event
    split_level = [".embeddings.npy", ".embedding-dimensions.json", ".target-labels.pkl"]
    split_level += [".filename-timestamps.json"] * event
    files = {"task_metadata.json", "labelvocabulary.csv", DONE_MARKER, RECORD, SCORES_FILE}
    files.add("test.predicted-scores.json")
    for split, names in split_files(task).items():
        files |= {f"{split}.json"} | {split + suffix for suffix in split_level}
        files |= {f"{split}/{name}{suffix}" for name in names for suffix in per_file}
    for fold in folds:
        files |= {f"{fold}.predictions.npz"} | (
            {f"{fold}.predicted-events.json"} if event else set()
        )
    return files


def relative_files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def folder_bytes(folder: Path, relocated: bool = True) -> dict[str, bytes]:
    """Every file's content but the record's; with ``relocated`` the folder's path inside
    files reads <dir>, to compare folders written in different places."""
    contents = {n: (folder / n).read_bytes() for n in relative_files(folder) if n != RECORD}
    if relocated:
        contents = {n: c.replace(str(folder).encode(), b"<dir>") for n, c in contents.items()}
    return contents


def mtimes(folder: Path) -> dict[str, int]:
    return {name: (folder / name).stat().st_mtime_ns for name in relative_files(folder)}


def replace_audio(target: Path, source: Path) -> None:
    """Give ``target`` the content of ``source``, one second newer (as a later edit is)."""
    later = target.stat().st_mtime_ns + 10**9
    target.write_bytes(source.read_bytes())
    os.utime(target, ns=(later, later))


def file_embedding(task_dir: Path, split: str, name: str) -> np.ndarray:
    return np.load(task_dir / split / f"{name}.embedding.npy")


def assert_no_outputs(out: Path) -> None:
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))


def reusable_copy(evaluated: Evaluated, root: Path) -> tuple[Path, Path]:
    """A copy of the scene task (16 kHz, files' times kept) under root/tasks and of kwmlp's
    finished folder of it under root/out: a run on the copy reuses every output."""
    task = copy_task(evaluated.tasks, SCENE_TASK, root / "tasks")
    return task, evaluated.copy(root / "out", SCENE_TASK)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def _module_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """For the module's shared fixtures too: an isolated weights cache (as conftest gives
    each test), and one torch thread: faster than two for these tiny models and steady on a
    busy machine (two threads wait for each other when another process holds a core)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HEAR_MN_HOME", str(tmp_path_factory.mktemp("hear_mn_home")))
        patch.delenv("HEAR_MN_WEIGHTS_DIR", raising=False)
        yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def tasks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scene, event and k-fold tasks at 16, 32 and 48 kHz (read only)."""
    root = tmp_path_factory.mktemp("tasks")
    make_tasks(root, kfold=True)
    return root


def install_module(patch: pytest.MonkeyPatch, folder: Path, name: str, source: str) -> None:
    """Module ``name`` of ``source`` importable (afresh) while ``patch`` lasts."""
    (folder / f"{name}.py").write_text(source)
    patch.syspath_prepend(str(folder))
    patch.delitem(sys.modules, name, raising=False)


@pytest.fixture(scope="module")
def evaluated(tasks: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Evaluated]:
    """Every task evaluated with kwmlp and with the random HEAR module (see Evaluated)."""
    out = tmp_path_factory.mktemp("evaluated") / "out"
    previous = os.umask(UMASK)
    try:
        with pytest.MonkeyPatch.context() as patch:
            modules = tmp_path_factory.mktemp("modules")
            install_module(patch, modules, RANDOM_MODULE_NAME, RANDOM_MODULE_SOURCE)
            kwmlp = hear_mn.evaluate(tasks, "kwmlp", out=out, **FAST)
            foreign = hear_mn.evaluate(tasks, RANDOM_MODULE_NAME, out=out, batch_size=1, **FAST)
            module = sys.modules[RANDOM_MODULE_NAME]
            yield Evaluated(tasks, out, kwmlp, foreign, module)
    finally:
        os.umask(previous)


@pytest.fixture(scope="module")
def embedder() -> LibraryEmbedder:
    embedder = make_embedder("kwmlp", device="cpu")
    assert isinstance(embedder, LibraryEmbedder)
    return embedder


# ----------------------------------------------------------------------------- task reading


def test_a_rendered_task_reads_with_its_labels_splits_and_audio(tasks: Path) -> None:
    """read_task gives the metadata, vocabulary and per-split labels in JSON order;
    audio_files finds every listed file at a rate the task has."""
    scene = read_task(tasks / SCENE_TASK)
    assert (scene.name, scene.embedding_type, scene.prediction_type) == (
        SCENE_TASK,
        "scene",
        "multiclass",
    )
    assert scene.labels == SCENE_LABELS and scene.scores == ("top1_acc",)
    assert {split: list(files) for split, files in scene.splits.items()} == split_files(
        tasks / SCENE_TASK
    )
    assert scene.splits["valid"]["noise_valid_1.wav"] == ["noise"]
    assert scene.sample_rates() == [16000, 32000, 48000]
    audio = scene.audio_files(48000)
    assert [name for name, _ in audio["test"]] == split_files(tasks / SCENE_TASK)["test"]
    assert audio["test"][0][1] == tasks / SCENE_TASK / "48000" / "test" / audio["test"][0][0]
    event = read_task(tasks / EVENT_TASK)
    assert event.scores == ("event_onset_200ms_fms", "segment_1s_er")
    first = event.splits["train"]["clip_train_0.wav"][0]
    assert set(first) == {"label", "start", "end"} and first["start"] < first["end"]


def _metadata(key: str, value: object) -> Callable[[Path], None]:
    def edit(task: Path) -> None:
        edit_json(task / "task_metadata.json", lambda metadata: metadata.update({key: value}))

    return edit


def _first_file_labels(split: str, labels: list) -> Callable[[Path], None]:
    def edit(task: Path) -> None:
        def change(content: dict) -> None:
            content[next(iter(content))] = labels

        edit_json(task / f"{split}.json", change)

    return edit


def _write(name: str, text: str) -> Callable[[Path], None]:
    return lambda task: (task / name).write_text(text)


MALFORMED = [
    pytest.param(
        SCENE_TASK,
        lambda task: (task / "valid.json").unlink(),
        ["{task}/valid.json does not exist"],
        id="missing-split-json",
    ),
    pytest.param(
        SCENE_TASK,
        _first_file_labels("train", ["violin"]),
        ["{task}/train.json: low_train_0.wav has label 'violin'", "labelvocabulary.csv"],
        id="label-not-in-vocabulary",
    ),
    pytest.param(
        SCENE_TASK,
        lambda task: (task / "16000" / "test" / "high_test_1.wav").unlink(),
        ["{task}/test.json lists high_test_1.wav", "{task}/16000/test/high_test_1.wav does not"],
        id="listed-audio-absent",
    ),
    pytest.param(
        SCENE_TASK, _write("test.json", "{}"), ["{task}/test.json lists no files"], id="empty-split"
    ),
    pytest.param(
        SCENE_TASK,
        _metadata("embedding_type", "clip"),
        ["{task}/task_metadata.json: embedding_type must be one of scene, event, got 'clip'"],
        id="bad-embedding-type",
    ),
    pytest.param(
        SCENE_TASK,
        _metadata("prediction_type", "regression"),
        ["{task}/task_metadata.json: prediction_type", "got 'regression'"],
        id="bad-prediction-type",
    ),
    pytest.param(
        SCENE_TASK,
        _metadata("split_mode", "bootstrap"),
        ["{task}/task_metadata.json: split_mode", "got 'bootstrap'"],
        id="bad-split-mode",
    ),
    pytest.param(
        SCENE_TASK,
        _metadata("evaluation", ["top1_acc", "f1"]),
        ["{task}/task_metadata.json: unknown score 'f1'"],
        id="unknown-score",
    ),
    pytest.param(
        SCENE_TASK,
        _metadata("evaluation", ["event_onset_200ms_fms"]),
        ["{task}/task_metadata.json: score event_onset_200ms_fms does not apply to scene tasks"],
        id="event-score-on-scene-task",
    ),
    pytest.param(
        SCENE_TASK,
        _first_file_labels("train", ["low", "high"]),
        ["{task}/train.json: low_train_0.wav has 2 labels", "exactly one"],
        id="multiclass-two-labels",
    ),
    pytest.param(
        EVENT_TASK,
        _first_file_labels("valid", [{"label": "beep", "start": 900.0, "end": 400.0}]),
        ["{task}/valid.json: an event of clip_valid_0.wav needs start <= end", "900.0..400.0"],
        id="event-start-after-end",
    ),
    pytest.param(
        KFOLD_TASK,
        _metadata("splits", ["fold00", "fold01"]),
        ["{task}/task_metadata.json: a k-fold task needs at least 3 folds"],
        id="two-folds",
    ),
    pytest.param(
        SCENE_TASK,
        _write("labelvocabulary.csv", "idx,label\n0,low\n1,high\n1,noise\n"),
        ["{task}/labelvocabulary.csv: idx 1 appears twice"],
        id="duplicate-vocabulary-idx",
    ),
    pytest.param(
        SCENE_TASK,
        lambda task: (task / "16000").rename(task / "22050"),
        ["task hearmn_tones has no audio at 16000 Hz", "{task}/16000", "the task has: 22050 Hz"],
        id="no-folder-at-the-model-rate",
    ),
]


@pytest.mark.parametrize(("name", "spoil", "fragments"), MALFORMED)
def test_a_malformed_task_is_refused_before_any_compute(
    tasks: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    spoil: Callable[[Path], None],
    fragments: list[str],
) -> None:
    """Each malformed task raises TaskError naming the file (or value) at fault, from the
    reader and from evaluate, which then has embedded nothing and written no file."""
    task = copy_task(tasks, name, tmp_path / "tasks")
    spoil(task)
    expected = [fragment.format(task=task) for fragment in fragments]
    with pytest.raises(TaskError) as raised:
        read_task(task).audio_files(16000)
    assert all(fragment in str(raised.value) for fragment in expected), str(raised.value)
    seen = watch_embedder(monkeypatch)
    with pytest.raises(TaskError) as raised:
        hear_mn.evaluate(tmp_path / "tasks", "kwmlp", out=tmp_path / "out", **FAST)
    assert all(fragment in str(raised.value) for fragment in expected), str(raised.value)
    assert seen.calls == 0
    assert_no_outputs(tmp_path / "out")


def test_find_tasks_takes_a_task_a_folder_of_tasks_and_names(tasks: Path, tmp_path: Path) -> None:
    """One task folder is itself; a folder of tasks lists them sorted; names select (in
    their order, a single name as a string too); an unknown name lists the tasks there."""
    assert find_tasks(tasks / SCENE_TASK) == [tasks / SCENE_TASK]
    assert find_tasks(tasks) == [tasks / name for name in ALL_TASKS]
    assert find_tasks(tasks, [SCENE_TASK, EVENT_TASK]) == [tasks / SCENE_TASK, tasks / EVENT_TASK]
    assert find_tasks(tasks, SCENE_TASK) == [tasks / SCENE_TASK]
    assert find_tasks(tasks / SCENE_TASK, [SCENE_TASK]) == [tasks / SCENE_TASK]
    with pytest.raises(
        TaskError, match=re.escape(f"no task named nsynth in {tasks} (tasks there: hearmn_b")
    ):
        find_tasks(tasks, ["nsynth"])
    with pytest.raises(TaskError, match="no HEAR task in"):
        find_tasks(tmp_path)
    with pytest.raises(TaskError, match="does not exist or is not a folder"):
        find_tasks(tmp_path / "absent")


def test_data_splits_rotate_folds_as_heareval() -> None:
    """trainvaltest is one split; with k folds (sorted) fold i tests, fold i+1 validates and
    the others train in sorted order."""
    assert data_splits({"split_mode": "trainvaltest", "splits": ["test", "train", "valid"]}) == [
        {"train": ["train"], "valid": ["valid"], "test": ["test"]}
    ]
    three = {"split_mode": "new_split_kfold", "splits": ["fold02", "fold00", "fold01"]}
    assert data_splits(three) == [
        {"train": ["fold02"], "valid": ["fold01"], "test": ["fold00"]},
        {"train": ["fold00"], "valid": ["fold02"], "test": ["fold01"]},
        {"train": ["fold01"], "valid": ["fold00"], "test": ["fold02"]},
    ]
    five = {"split_mode": "presplit_kfold", "splits": [f"fold0{i}" for i in (4, 2, 0, 3, 1)]}
    assert [s["train"] for s in data_splits(five)][3:] == [
        ["fold00", "fold01", "fold02"],
        ["fold01", "fold02", "fold03"],
    ]


# ----------------------------------------------------------------------------- layout


LAYOUT_CASES = [(module, task) for module in (KWMLP, RANDOM_MODULE_NAME) for task in ALL_TASKS]


@pytest.mark.parametrize(("module", "task"), LAYOUT_CASES)
def test_task_folders_hold_exactly_heareval_s_files(
    evaluated: Evaluated, module: str, task: str
) -> None:
    """out/<module>/<task>/ holds heareval's files, our record and reports, nothing else (no
    temporary file); the task's files are byte copies."""
    task_dir = evaluated.task_dir(task, module)
    source = evaluated.tasks / task
    assert relative_files(task_dir) == expected_layout(source, fold_names(task))
    for name in [
        "task_metadata.json",
        "labelvocabulary.csv",
        *(f"{s}.json" for s in split_files(source)),
    ]:
        assert (task_dir / name).read_bytes() == (source / name).read_bytes()
    assert (task_dir / DONE_MARKER).read_bytes() == b""


def test_the_output_folder_holds_the_modules_and_the_summary(evaluated: Evaluated) -> None:
    """out/ holds a folder per module with a folder per task, and the summary files only."""
    expected = {KWMLP, RANDOM_MODULE_NAME, "summary.md", "summary.csv"}
    expected |= {"summary.png"} if importlib.util.find_spec("matplotlib") else set()
    assert {p.name for p in evaluated.out.iterdir()} == expected
    for module in (KWMLP, RANDOM_MODULE_NAME):
        assert sorted(p.name for p in (evaluated.out / module).iterdir()) == list(ALL_TASKS)


@pytest.mark.parametrize(("module", "task"), LAYOUT_CASES)
def test_split_files_are_the_file_embeddings_in_heareval_s_order(
    evaluated: Evaluated, module: str, task: str
) -> None:
    """<split>.embeddings.npy is raw float32 (no npy header) of the per-file embeddings,
    float32 (D,) or (T, D), in heareval's shuffled order; dimensions, labels (and for
    events file-timestamps) follow the same rows."""
    task_dir = evaluated.task_dir(task, module)
    event = task == EVENT_TASK
    width = KWMLP_WIDTHS["event" if event else "scene"] if module == KWMLP else RANDOM_WIDTH
    source_labels = {
        split: read_json(evaluated.tasks / task / f"{split}.json")
        for split in split_files(evaluated.tasks / task)
    }
    for split, names in heareval_order(evaluated.tasks / task).items():
        rows, columns = read_json(task_dir / f"{split}.embedding-dimensions.json")
        raw = (task_dir / f"{split}.embeddings.npy").read_bytes()
        assert columns == width and len(raw) == rows * width * 4
        assert not raw.startswith(b"\x93NUMPY")
        embeddings = [file_embedding(task_dir, split, name) for name in names]
        assert {(e.dtype, e.ndim, e.shape[-1]) for e in embeddings} == {
            (np.dtype(np.float32), 2 if event else 1, width)
        }
        matrix = np.frombuffer(raw, dtype=np.float32).reshape(rows, width)
        np.testing.assert_array_equal(
            matrix, np.concatenate([np.atleast_2d(e) for e in embeddings])
        )
        per_file = [read_json(task_dir / split / f"{name}.target-labels.json") for name in names]
        labels = pickle.loads((task_dir / f"{split}.target-labels.pkl").read_bytes())
        if not event:
            assert per_file == [source_labels[split][name] for name in names]
            assert labels == per_file
            continue
        assert labels == [frame for file_labels in per_file for frame in file_labels]
        stamps = [read_json(task_dir / split / f"{name}.timestamps.json") for name in names]
        assert [len(s) for s in stamps] == [len(e) for e in embeddings]
        assert read_json(task_dir / f"{split}.filename-timestamps.json") == [
            [str(task_dir / split / name), t] for name, times in zip(names, stamps) for t in times
        ]


def test_event_frame_labels_follow_heareval_s_interval_rule(evaluated: Evaluated) -> None:
    """An event labels the timestamps t with start <= t < end + 0.0001 ms, per file."""
    task_dir = evaluated.task_dir(EVENT_TASK)
    labelled = 0
    for split in split_files(task_dir):
        for name, events in read_json(task_dir / f"{split}.json").items():
            stamps = read_json(task_dir / split / f"{name}.timestamps.json")
            expected = [
                [e["label"] for e in events if e["start"] <= t < e["end"] + 0.0001] for t in stamps
            ]
            assert read_json(task_dir / split / f"{name}.target-labels.json") == expected
            labelled += sum(map(bool, expected))
    assert labelled > 100  # the rule was exercised, not vacuously met
    events = [
        {"label": "a", "start": 100.0, "end": 200.0},
        {"label": "b", "start": 150, "end": 150},
    ]
    stamps = [99.99, 100.0, 150.0, 199.9, 200.0, 200.0001]
    assert frame_labels(events, stamps) == [[], ["a"], ["a", "b"], ["a"], ["a"], []]


def test_outputs_follow_the_umask(evaluated: Evaluated) -> None:
    """Every file and folder the evaluation wrote (under umask 027) is 0640 or 0750."""
    modes = {
        p.relative_to(evaluated.out).as_posix(): p.stat().st_mode & 0o777
        for p in evaluated.out.rglob("*")
    }
    assert len(modes) > 400
    wrong = {
        name: oct(mode)
        for name, mode in modes.items()
        if mode != (0o750 if (evaluated.out / name).is_dir() else 0o640)
    }
    assert wrong == {}


# ----------------------------------------------------------------------------- reports


@pytest.mark.parametrize("task", ALL_TASKS)
def test_the_returned_report_is_the_scores_file(evaluated: Evaluated, task: str) -> None:
    """evaluate returns per task test/valid scores (name -> float), times, the grid point
    (the task's own grid), post-processing, grid and folds; hear-mn.scores.json holds it."""
    report = evaluated.kwmlp[task]
    assert REPORT_KEYS <= set(report)
    primary = read_json(evaluated.tasks / task / "task_metadata.json")["evaluation"][0]
    for part in ("test", "valid"):
        assert primary in report[part]
        assert all(isinstance(v, float) for v in report[part].values())
    assert 0.0 <= report["test"][primary] <= 1.0
    assert report["audio_seconds"] == {SCENE_TASK: 24.0, EVENT_TASK: 24.0, KFOLD_TASK: 36.0}[task]
    assert report["embedding_seconds"] > 0 and report["downstream_seconds"] > 0
    assert {k: report["grid_point"][k] for k in PARAM_GRID} == {
        k: v[0] for k, v in PARAM_GRID.items()
    }
    assert len(report["grid"]) == 1
    assert report["grid"][0]["hyper_parameters"] == report["grid_point"]
    assert [fold["test"] for fold in report["folds"]] == [[f] for f in fold_names(task)]
    if task == EVENT_TASK:
        assert [name for name, _ in report["postprocessing"]] == [
            "median_filter_ms",
            "min_duration",
        ]
    else:
        assert report["postprocessing"] is None
    assert (report["module"], report["model"]) == (KWMLP, "kwmlp")
    assert same_json(read_json(evaluated.task_dir(task) / SCORES_FILE), report)


def test_a_k_fold_report_gives_each_fold_and_their_mean(evaluated: Evaluated) -> None:
    """For k folds, test/valid are the means of test_folds/valid_folds (fold00...), with
    their sample standard deviations, and one model per rotation."""
    report = evaluated.kwmlp[KFOLD_TASK]
    for part in ("test", "valid"):
        folds = report[f"{part}_folds"]
        assert list(folds) == list(KFOLD_FOLDS)
        for score in ("top1_acc", "mAP"):
            values = [folds[f][score] for f in KFOLD_FOLDS]
            assert report[part][score] == pytest.approx(statistics.fmean(values), rel=1e-12)
            assert report[f"{part}_std"][score] == pytest.approx(statistics.stdev(values), rel=1e-9)
    assert [(f["train"], f["valid"]) for f in report["folds"]] == [
        (["fold02"], ["fold01"]),
        (["fold00"], ["fold02"]),
        (["fold01"], ["fold00"]),
    ]
    for task in (SCENE_TASK, EVENT_TASK):
        assert not {"test_std", "test_folds", "valid_std", "valid_folds"} & set(
            evaluated.kwmlp[task]
        )


@pytest.mark.parametrize("task", ALL_TASKS)
def test_heareval_s_scores_file_has_its_structure(evaluated: Evaluated, task: str) -> None:
    """test.predicted-scores.json: per test fold test_<score>, test_score, test_loss,
    validation_score, epoch, time_in_min; k folds: aggregated _mean/_std; hparams,
    postprocessing, score_mode."""
    report = evaluated.kwmlp[task]
    scores = read_json(evaluated.task_dir(task) / "test.predicted-scores.json")
    folds = fold_names(task)
    common = {"hparams", "postprocessing", "score_mode", "embedding_path"}
    assert set(scores) == set(folds) | common | ({"aggregated_scores"} if len(folds) > 1 else set())
    primary = report["scores"][0]
    for index, fold in enumerate(folds):
        entry = scores[fold]
        assert set(entry) == HEAREVAL_FOLD_KEYS | {f"test_{k}" for k in report["test"]}
        test = report["test_folds"][fold] if len(folds) > 1 else report["test"]
        assert entry["test_score"] == entry[f"test_{primary}"] == test[primary]
        assert entry["epoch"] == report["folds"][index]["epoch"]
        assert entry["test_loss"] == report["folds"][index]["test_loss"]
    if len(folds) > 1:
        aggregated = scores["aggregated_scores"]
        keys = set(scores[folds[0]])
        assert set(aggregated) == {f"{k}_mean" for k in keys} | {f"{k}_std" for k in keys}
        assert aggregated["test_score_mean"] == pytest.approx(report["test"][primary])
    assert scores["hparams"] == report["grid_point"]
    assert scores["postprocessing"] == (report["postprocessing"] or [])
    assert scores["score_mode"] == "max"
    assert scores["embedding_path"] == str(evaluated.task_dir(task))


@pytest.mark.parametrize("task", ALL_TASKS)
def test_test_predictions_are_saved_per_fold(evaluated: Evaluated, task: str) -> None:
    """<fold>.predictions.npz: target (the test rows' labels), prediction (probabilities),
    prediction_logit (+ timestamp for events); events also <fold>.predicted-events.json."""
    task_dir = evaluated.task_dir(task)
    labels = [
        line.split(",")[1] for line in (task_dir / "labelvocabulary.csv").read_text().split()[1:]
    ]
    for fold in fold_names(task):
        with np.load(task_dir / f"{fold}.predictions.npz", allow_pickle=False) as saved:
            arrays = dict(saved)
        rows = read_json(task_dir / f"{fold}.embedding-dimensions.json")[0]
        expected_keys = {"target", "prediction", "prediction_logit"}
        assert set(arrays) == expected_keys | ({"timestamp"} if task == EVENT_TASK else set())
        assert {arrays[k].shape for k in expected_keys} == {(rows, len(labels))}
        rows_labels = pickle.loads((task_dir / f"{fold}.target-labels.pkl").read_bytes())
        targets = [[labels[i] for i in np.flatnonzero(row)] for row in arrays["target"]]
        assert targets == [sorted(r, key=labels.index) for r in rows_labels]
        assert np.all((arrays["prediction"] >= 0) & (arrays["prediction"] <= 1))
        if task != EVENT_TASK:
            np.testing.assert_allclose(arrays["prediction"].sum(axis=1), 1.0, rtol=1e-5)
            continue
        stamps = read_json(task_dir / f"{fold}.filename-timestamps.json")
        np.testing.assert_array_equal(arrays["timestamp"], [t for _, t in stamps])
        events = read_json(task_dir / f"{fold}.predicted-events.json")
        assert set(events) == {"predicted_events", "target_events"}
        assert events["target_events"] == read_json(task_dir / f"{fold}.json")
        assert set(events["predicted_events"]) <= set(events["target_events"])


def test_the_summary_lists_every_module_with_a_column_per_task(evaluated: Evaluated) -> None:
    """summary.csv and summary.md: one row per module evaluated into out, one column per task
    holding its primary test score."""
    with open(evaluated.out / "summary.csv", newline="") as handle:
        rows = {row["module"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {KWMLP, RANDOM_MODULE_NAME}
    markdown = (evaluated.out / "summary.md").read_text().splitlines()
    for module, results in ((KWMLP, evaluated.kwmlp), (RANDOM_MODULE_NAME, evaluated.foreign)):
        assert any(line.startswith(f"| {module} |") for line in markdown)
        for task, report in results.items():
            primary = report["scores"][0]
            column = f"{task} ({primary})"
            assert column in markdown[0]
            assert same_json(float(rows[module][column]), report["test"][primary])
    assert int(rows[KWMLP]["parameters"]) == evaluated.kwmlp[SCENE_TASK]["parameters"] > 100_000
    assert rows[RANDOM_MODULE_NAME]["parameters"] == "1"  # the random module's one scale


# ----------------------------------------------------------------------------- the foreign module


def test_a_foreign_hear_module_is_evaluated_by_import_name(evaluated: Evaluated) -> None:
    """The random HEAR module (48 kHz) gets a folder of its name; its per-file embeddings
    and timestamps are what its own functions return for the clip."""
    module = evaluated.module
    model = module.load_model()
    assert set(evaluated.foreign) == set(ALL_TASKS)
    record = read_json(evaluated.task_dir(SCENE_TASK, RANDOM_MODULE_NAME) / RECORD)
    assert record["settings"]["embedder"] == "hear_module"
    assert record["settings"]["module"] == RANDOM_MODULE_NAME
    for task, split, name in (
        (SCENE_TASK, "test", "noise_test_1.wav"),
        (EVENT_TASK, "valid", "clip_valid_2.wav"),
    ):
        audio, rate = sf.read(evaluated.tasks / task / "48000" / split / name, dtype="float32")
        assert rate == 48000
        clip = torch.from_numpy(audio)[None]
        task_dir = evaluated.task_dir(task, RANDOM_MODULE_NAME)
        saved = file_embedding(task_dir, split, name)
        if task == SCENE_TASK:
            np.testing.assert_array_equal(
                saved, module.get_scene_embeddings(clip, model)[0].numpy()
            )
            continue
        embeddings, stamps = module.get_timestamp_embeddings(clip, model)
        assert saved.shape == (81, RANDOM_WIDTH)
        np.testing.assert_array_equal(saved, embeddings[0].numpy())
        assert read_json(task_dir / split / f"{name}.timestamps.json") == stamps[0].tolist()


# ----------------------------------------------------------------------------- resume rule


def test_a_second_identical_run_computes_and_writes_nothing(
    evaluated: Evaluated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder: LibraryEmbedder
) -> None:
    """Rerunning with the same settings (a built model as its name) embeds no file,
    rewrites no file and returns the saved report (its downstream time too: no model was
    trained again)."""
    out = tmp_path / "out"
    evaluated.copy(out, SCENE_TASK, KFOLD_TASK)
    before = mtimes(out / KWMLP)
    seen = watch_embedder(monkeypatch)
    for model in ("kwmlp", embedder.model):
        again = hear_mn.evaluate(
            evaluated.tasks, model, tasks=[KFOLD_TASK, SCENE_TASK], out=out, **FAST
        )
        assert seen.calls == 0
        assert same_json(again, {t: evaluated.kwmlp[t] for t in (KFOLD_TASK, SCENE_TASK)})
        assert mtimes(out / KWMLP) == before
    stage = embed_task(read_task(evaluated.tasks / SCENE_TASK), embedder, out)
    assert (stage.computed, stage.reused) == (0, 24)
    assert stage.task_dir == out / KWMLP / SCENE_TASK
    assert stage.audio_seconds == 24.0


def test_an_audio_file_replaced_is_embedded_again_alone(
    evaluated: Evaluated, tmp_path: Path, embedder: LibraryEmbedder
) -> None:
    """A file whose content changed (same name) is the only one embedded again, and its
    outputs become the new audio's."""
    task, task_dir = reusable_copy(evaluated, tmp_path)
    out = tmp_path / "out"
    old = file_embedding(task_dir, "train", "low_train_0.wav")
    replace_audio(task / "16000/train/low_train_0.wav", task / "16000/train/high_train_0.wav")
    stage = embed_task(read_task(task), embedder, out)
    assert (stage.computed, stage.reused) == (1, 23)
    new = file_embedding(task_dir, "train", "low_train_0.wav")
    assert not np.allclose(new, old)
    np.testing.assert_allclose(
        new, file_embedding(task_dir, "train", "high_train_0.wav"), atol=1e-6
    )
    rows = np.fromfile(task_dir / "train.embeddings.npy", dtype=np.float32).reshape(-1, 1024)
    row = heareval_order(task)["train"].index("low_train_0.wav")
    np.testing.assert_array_equal(rows[row], new)


def test_an_interrupted_run_resumes_to_the_uninterrupted_outputs(
    tasks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder: LibraryEmbedder
) -> None:
    """Ctrl-C after 6 files (two batches of 3) keeps those 6 (no marker, no temporary
    file); the rerun embeds the other 6 only, and every file then equals an uninterrupted
    run's. Both runs report each file's seconds once (the reused ones' too)."""
    task = read_task(tasks / EVENT_TASK)
    heard: list[dict[Path, float]] = [{}, {}]
    reference = embed_task(
        task, embedder, tmp_path / "reference", batch_size=3, progress=heard[0].__setitem__
    )
    watch_embedder(monkeypatch, interrupt_at=3)
    with pytest.raises(KeyboardInterrupt):
        embed_task(task, embedder, tmp_path / "out", batch_size=3)
    task_dir = tmp_path / "out" / KWMLP / EVENT_TASK
    assert len(list(task_dir.glob("*/*.embedding.npy"))) == 6
    assert not (task_dir / DONE_MARKER).exists() and not list(task_dir.rglob("*.tmp"))
    assert read_json(task_dir / RECORD)["complete"] is False
    seen = watch_embedder(monkeypatch)
    stage = embed_task(
        task, embedder, tmp_path / "out", batch_size=3, progress=heard[1].__setitem__
    )
    assert (stage.computed, stage.reused, seen.clips) == (6, 6, 6)
    assert folder_bytes(task_dir) == folder_bytes(reference.task_dir)
    files = set((tasks / EVENT_TASK / "16000").glob("*/*.wav"))
    assert heard == [dict.fromkeys(files, 2.0)] * 2
    assert stage.audio_seconds == reference.audio_seconds == 24.0


def test_a_file_changed_before_an_interrupted_run_is_never_reused(
    evaluated: Evaluated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder: LibraryEmbedder
) -> None:
    """Audio changed, then a run interrupted before embedding it: its old outputs are gone,
    and the next run embeds the new audio."""
    task, task_dir = reusable_copy(evaluated, tmp_path)
    out = tmp_path / "out"
    old = file_embedding(task_dir, "valid", "noise_valid_0.wav")
    replace_audio(task / "16000/valid/noise_valid_0.wav", task / "16000/valid/low_valid_1.wav")
    watch_embedder(monkeypatch, interrupt_at=1)
    with pytest.raises(KeyboardInterrupt):
        embed_task(read_task(task), embedder, out)
    assert not (task_dir / "valid" / "noise_valid_0.wav.embedding.npy").exists()
    seen = watch_embedder(monkeypatch)
    stage = embed_task(read_task(task), embedder, out)
    assert (stage.computed, seen.clips) == (1, 1)
    new = file_embedding(task_dir, "valid", "noise_valid_0.wav")
    np.testing.assert_allclose(new, file_embedding(task_dir, "valid", "low_valid_1.wav"), atol=1e-6)
    assert not np.allclose(new, old)


def _record_settings(task_dir: Path, **changes: object) -> None:
    edit_json(task_dir / RECORD, lambda record: record["settings"].update(changes))


def test_a_folder_of_other_settings_is_refused_before_any_task_is_computed(
    evaluated: Evaluated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task folder written with other weights raises OutputConflictError naming the
    difference before any task (not only that one) is embedded; overwrite replaces it."""
    out = tmp_path / "out"
    task_dir = evaluated.copy(out, SCENE_TASK)
    both = {"tasks": [SCENE_TASK, EVENT_TASK], "out": out, **FAST}
    right = read_json(task_dir / RECORD)["settings"]["weights_sha256"]
    _record_settings(task_dir, weights_sha256="0" * 64)
    before = mtimes(task_dir)
    seen = watch_embedder(monkeypatch)
    with pytest.raises(
        OutputConflictError, match=f"weights_sha256: '0{{64}}' there, '{right}' now"
    ):
        hear_mn.evaluate(evaluated.tasks, "kwmlp", **both)
    assert seen.calls == 0
    assert not (out / KWMLP / EVENT_TASK).exists()
    assert mtimes(task_dir) == before
    results = hear_mn.evaluate(evaluated.tasks, "kwmlp", overwrite=True, **both)
    assert set(results) == {SCENE_TASK, EVENT_TASK}
    assert seen.clips == 24 + 12
    assert read_json(task_dir / RECORD)["settings"]["weights_sha256"] == right


def test_a_folder_heareval_wrote_is_refused_and_can_be_scored(
    evaluated: Evaluated, tmp_path: Path, embedder: LibraryEmbedder
) -> None:
    """A task folder in heareval's layout without our record is not ours to resume or
    replace: refused (nothing computed); score_embeddings scores it."""
    task_dir = evaluated.copy(tmp_path, SCENE_TASK)
    for name in (RECORD, SCORES_FILE, "test.predicted-scores.json", "test.predictions.npz"):
        (task_dir / name).unlink()
    before = mtimes(task_dir)
    with pytest.raises(OutputConflictError, match="embeddings that hear-mn did not write"):
        embed_task(read_task(evaluated.tasks / SCENE_TASK), embedder, tmp_path)
    assert mtimes(task_dir) == before
    results = hear_mn.score_embeddings(task_dir, **SCORING)
    assert results[SCENE_TASK]["test"] == evaluated.kwmlp[SCENE_TASK]["test"]
    assert (task_dir / SCORES_FILE).is_file()


def test_an_embedding_of_the_wrong_width_is_embedded_again(
    evaluated: Evaluated, tmp_path: Path, embedder: LibraryEmbedder
) -> None:
    """In an unfinished folder, an embedding whose width is not the model's is not reused."""
    task_dir = evaluated.copy(tmp_path, SCENE_TASK)
    (task_dir / DONE_MARKER).unlink()
    path = task_dir / "test" / "high_test_0.wav.embedding.npy"
    good = np.load(path)
    np.save(path, np.zeros(1000, dtype=np.float32))
    stage = embed_task(read_task(evaluated.tasks / SCENE_TASK), embedder, tmp_path)
    assert (stage.computed, stage.reused) == (1, 23)
    np.testing.assert_allclose(np.load(path), good, atol=1e-6)


def test_split_files_deleted_or_truncated_are_written_again(
    evaluated: Evaluated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A finished folder missing a split-level file (or holding a truncated one) is not
    taken as finished: the rerun writes them again from the per-file outputs, embedding
    nothing, and the saved report (same embeddings) is reused."""
    task_dir = evaluated.copy(tmp_path, SCENE_TASK)
    (task_dir / "valid.embeddings.npy").unlink()
    (task_dir / "train.target-labels.pkl").unlink()
    test_data = task_dir / "test.embeddings.npy"
    test_data.write_bytes(test_data.read_bytes()[:-4])
    seen = watch_embedder(monkeypatch)
    results = hear_mn.evaluate(evaluated.tasks, "kwmlp", tasks=[SCENE_TASK], out=tmp_path, **FAST)
    assert seen.calls == 0
    expected = folder_bytes(evaluated.task_dir(SCENE_TASK), relocated=False)
    assert folder_bytes(task_dir, relocated=False) == expected
    reused = {k: v for k, v in results[SCENE_TASK].items() if k != "embedding_seconds"}
    assert same_json(reused, {k: evaluated.kwmlp[SCENE_TASK][k] for k in reused})


def test_changed_labels_rewrite_the_label_files_without_embedding(
    evaluated: Evaluated, tmp_path: Path, embedder: LibraryEmbedder
) -> None:
    """A label edited in a split's JSON (audio unchanged) embeds nothing but rewrites the
    file's labels, the split's labels and the copy of the JSON."""
    task, task_dir = reusable_copy(evaluated, tmp_path)
    _first_file_labels("train", ["high"])(task)
    stage = embed_task(read_task(task), embedder, tmp_path / "out")
    assert (stage.computed, stage.reused) == (0, 24)
    assert read_json(task_dir / "train" / "low_train_0.wav.target-labels.json") == ["high"]
    row = heareval_order(task)["train"].index("low_train_0.wav")
    assert pickle.loads((task_dir / "train.target-labels.pkl").read_bytes())[row] == ["high"]
    assert (task_dir / "train.json").read_bytes() == (task / "train.json").read_bytes()


def test_splits_of_different_widths_are_refused_by_the_downstream_stage(
    evaluated: Evaluated, tmp_path: Path
) -> None:
    """Split-level files of different widths (two models) raise TaskError naming each
    split's width."""
    task_dir = evaluated.copy(tmp_path, SCENE_TASK)
    rows = read_json(task_dir / "valid.embedding-dimensions.json")[0]
    (task_dir / "valid.embeddings.npy").write_bytes(np.ones((rows, 1000), np.float32).tobytes())
    (task_dir / "valid.embedding-dimensions.json").write_text(json.dumps([rows, 1000]))
    with pytest.raises(TaskError, match="different widths .train 1024, valid 1000, test 1024"):
        hear_mn.score_embeddings(task_dir, **SCORING)


def test_a_split_file_of_the_wrong_size_is_refused(evaluated: Evaluated, tmp_path: Path) -> None:
    """<split>.embeddings.npy holding fewer values than its dimensions say is a TaskError."""
    task_dir = evaluated.copy(tmp_path, SCENE_TASK)
    data = task_dir / "test.embeddings.npy"
    data.write_bytes(data.read_bytes()[:-4])
    with pytest.raises(TaskError, match=r"test.embeddings.npy holds 6143 values but .* 6 x 1024"):
        hear_mn.score_embeddings(task_dir, **SCORING)


# ----------------------------------------------------------------------------- failures


def test_a_corrupt_audio_file_fails_its_task_only_and_is_embedded_after_a_fix(
    tasks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A corrupt wav: EvaluationError naming it, with the other task's report in .results;
    the task's other files are saved; after the fix the rerun embeds that file only."""
    root = tmp_path / "tasks"
    for name in (SCENE_TASK, EVENT_TASK):
        copy_task(tasks, name, root)
    bad = root / SCENE_TASK / "16000" / "train" / "noise_train_2.wav"
    good = bad.read_bytes()
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(range(64)))
    out = tmp_path / "out"
    with pytest.raises(EvaluationError) as raised:
        hear_mn.evaluate(root, "kwmlp", out=out, **FAST)
    assert str(bad) in str(raised.value)
    assert set(raised.value.failures) == {SCENE_TASK}
    assert set(raised.value.results) == {EVENT_TASK}
    assert "event_onset_200ms_fms" in raised.value.results[EVENT_TASK]["test"]
    task_dir = out / KWMLP / SCENE_TASK
    assert len(list(task_dir.glob("*/*.embedding.npy"))) == 23
    assert not (task_dir / DONE_MARKER).exists()
    assert EVENT_TASK in (out / "summary.md").read_text()
    bad.write_bytes(good)
    seen = watch_embedder(monkeypatch)
    results = hear_mn.evaluate(root, "kwmlp", out=out, **FAST)
    assert seen.clips == 1
    assert set(results) == {SCENE_TASK, EVENT_TASK}
    assert same_json(results[EVENT_TASK], raised.value.results[EVENT_TASK])


NAN_MODULE_SOURCE = """\
import torch


class Model(torch.nn.Module):
    sample_rate = 16000
    scene_embedding_size = timestamp_embedding_size = 8


def load_model(model_file_path="", **options):
    return Model()


def get_timestamp_embeddings(audio, model):
    stamps = torch.arange(5.0).expand(len(audio), 5) * 100
    return torch.full((len(audio), 5, 8), float("nan")), stamps


def get_scene_embeddings(audio, model):
    return torch.full((len(audio), 8), float("nan"))
"""


def test_a_foreign_module_s_nan_embeddings_are_failures_not_outputs(
    tasks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A HEAR module returning NaN fails those files (as heareval asserts, and as hear-mn
    models never return NaN): EvaluationError naming them; no embedding is written."""
    install_module(monkeypatch, tmp_path, "hear_nan_module", NAN_MODULE_SOURCE)
    out = tmp_path / "out"
    with pytest.raises(EvaluationError) as raised:
        hear_mn.evaluate(tasks, "hear_nan_module", tasks=[EVENT_TASK, SCENE_TASK], out=out, **FAST)
    assert set(raised.value.failures) == {EVENT_TASK, SCENE_TASK}
    wav = tasks / SCENE_TASK / "16000" / "train" / "low_train_0.wav"
    assert f"{wav}: hear_nan_module returned NaN or infinite values" in str(raised.value)
    assert not list(out.glob("*/*/*/*.embedding.npy")) and not list(out.glob(f"*/*/{DONE_MARKER}"))


# ----------------------------------------------------------------------------- safe unpickler


LABEL_LISTS = [[["dog"], ["cat", "bird"], []], [[1, 2], [3.5]], [("a", "b")]]


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_the_safe_unpickler_reads_heareval_s_label_lists(tmp_path: Path, protocol: int) -> None:
    """Lists of label lists (strings or numbers) load, in every pickle protocol."""
    for labels in LABEL_LISTS:
        path = tmp_path / "labels.pkl"
        path.write_bytes(pickle.dumps(labels, protocol=protocol))
        assert [list(row) for row in safe_pickle_load(path)] == [list(row) for row in labels]


class _RunsCode:
    """Unpickled by plain pickle, this would run ``command`` through os.system."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple:
        return (os.system, (self.command,))


def test_the_safe_unpickler_runs_no_code(tmp_path: Path) -> None:
    """A pickle that would call os.system is refused with TaskError; nothing ran."""
    marker = tmp_path / "ran"
    path = tmp_path / "train.target-labels.pkl"
    for value in (_RunsCode(f"touch {marker}"), [["dog"], _RunsCode(f"touch {marker}")]):
        path.write_bytes(pickle.dumps(value))
        with pytest.raises(TaskError, match="refusing to load (posix|os).system"):
            safe_pickle_load(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"a": ["dog"]}, "does not hold a list of label lists"),
        ([{"dog"}], "does not hold a list of label lists"),
        ([["dog"], {"label": "cat"}], "does not hold a list of label lists"),
        (["dog", "cat"], "does not hold a list of label lists"),
        ([[["dog"]]], "does not hold a list of label lists"),
        ([[b"dog"]], "does not hold a list of label lists"),
        ([[True]], "does not hold a list of label lists"),
        (b"not a pickle", "is not a labels pickle heareval wrote"),
    ],
    ids=["dict", "set", "dict-row", "flat-strings", "nested", "bytes", "bool", "garbage"],
)
def test_the_safe_unpickler_refuses_what_is_not_a_label_list(
    tmp_path: Path, value: object, reason: str
) -> None:
    """Data that is not a list of label lists (or not a pickle) is a TaskError."""
    path = tmp_path / "labels.pkl"
    path.write_bytes(value if isinstance(value, bytes) else pickle.dumps(value))
    with pytest.raises(TaskError, match=re.escape(f"{path} {reason}")):
        safe_pickle_load(path)


# ----------------------------------------------------------------------------- score_embeddings


def test_score_embeddings_scores_a_module_folder_and_a_task_folder(
    evaluated: Evaluated, tmp_path: Path
) -> None:
    """On a module's folder every task is trained and tested again (another protocol), the
    reports are written there; on one task's folder, that task only."""
    module_dir = evaluated.copy(tmp_path, EVENT_TASK, SCENE_TASK).parent
    results = hear_mn.score_embeddings(module_dir, **{**SCORING, "grid_points": 2})
    assert set(results) == {EVENT_TASK, SCENE_TASK}
    for task, report in results.items():
        assert report["protocol"]["grid_points"] == 2 and report["module"] == KWMLP
        assert "embedding_seconds" not in report
        assert same_json(read_json(module_dir / task / SCORES_FILE), report)
        primary = report["scores"][0]
        assert set(report["test"]) == set(evaluated.kwmlp[task]["test"])
        assert 0.0 <= report["test"][primary] <= 1.0
    one = hear_mn.score_embeddings(module_dir / SCENE_TASK, **{**SCORING, "grid_points": 2})
    assert list(one) == [SCENE_TASK]
    assert same_json(one[SCENE_TASK], results[SCENE_TASK])


def test_score_embeddings_without_embeddings_is_a_task_error(
    evaluated: Evaluated, tmp_path: Path
) -> None:
    """A folder of tasks (not embeddings), an empty or absent folder: TaskError."""
    for folder in (evaluated.tasks, evaluated.tasks / SCENE_TASK, tmp_path, tmp_path / "absent"):
        with pytest.raises(TaskError, match=re.escape(f"no task embeddings in {folder}")):
            hear_mn.score_embeddings(folder)


# ----------------------------------------------------------------------------- CLI


def _cli_evaluate(tasks: Path, out: Path, *more: object) -> list[object]:
    return ["evaluate", tasks, "--model", "kwmlp", "--grid", "faster", "--grid-points", "1",
            "--device", "cpu", "--threads", "1", "--out", out, *more]  # fmt: skip


def test_cli_evaluates_tasks_and_writes_the_summary(
    tasks: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """hear-mn evaluate TASKS --model kwmlp ... -q exits 0, prints nothing and writes the
    summary; without -q (a rerun, all reused) it prints each task's scores."""
    out = tmp_path / "out"
    argv = _cli_evaluate(tasks, out, "--task", SCENE_TASK)
    assert run_cli(capsys, *argv, "-q") == (0, "", "")
    assert f"| {KWMLP} |" in (out / "summary.md").read_text()
    report = read_json(out / KWMLP / SCENE_TASK / SCORES_FILE)
    code, stdout, _ = run_cli(capsys, *argv)
    assert code == 0
    test, valid = report["test"]["top1_acc"], report["valid"]["top1_acc"]
    assert f"  {SCENE_TASK}: top1_acc test {test:.4f}, valid {valid:.4f}" in stdout
    assert f"summary in {out}: summary.md, summary.csv" in stdout


USAGE_ERRORS = [
    pytest.param(
        ["--model", "kwmlp"],
        "give TASKS_DIR (a folder of HEAR tasks) or --embeddings",
        id="no-tasks",
    ),
    pytest.param(["{tasks}"], "give at least one --model NAME", id="no-model"),
    pytest.param(
        ["{tasks}", "--model", "kwmlp", "--weights", "a.pt", "--weights", "b.pt"],
        "2 --weights for 1 --model",
        id="weights-count",
    ),
    pytest.param(
        ["--embeddings", "{tasks}", "--model", "kwmlp"],
        "leave out --model",
        id="embeddings-and-model",
    ),
    pytest.param(["--embeddings", "{tasks}"], "no task embeddings in", id="embeddings-absent"),
    pytest.param(
        ["{tasks}", "--model", "no_such_model_xyz"],
        "unknown model 'no_such_model_xyz'",
        id="unknown-model",
    ),
    pytest.param(
        ["{tasks}", "--model", "kwmlp", "--model", "no_such_model_xyz"],
        "unknown model 'no_such_model_xyz'",
        id="unknown-second-model",
    ),
    pytest.param(
        ["{tasks}", "--model", "kwmlp", "--task", "nsynth"],
        "no task named nsynth",
        id="unknown-task",
    ),
    pytest.param(
        ["{tasks}", "--model", "kwmlp", "--engine", "local", "--actors", "2"],
        "--actors work(s) with --engine ray only",
        id="ray-flag-local",
    ),
    pytest.param(
        ["{tasks}", "--model", "kwmlp", "--threads-per-actor", "2"],
        "--threads-per-actor work(s) with --engine ray only",
        id="ray-flag-default-engine",
    ),
]


@pytest.mark.parametrize(("argv", "message"), USAGE_ERRORS)
def test_cli_usage_errors_exit_2_with_one_line(
    tasks: Path, tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str], message: str
) -> None:
    """Each usage error exits 2 with a one-line message, before anything is written (a
    second --model unknown too: found before the first is evaluated)."""
    argv = [a.format(tasks=tasks) for a in argv]
    code, stdout, stderr = run_cli(capsys, "evaluate", *argv, "--out", tmp_path / "out")
    assert (code, stdout) == (2, "")
    assert stderr.startswith("hear-mn evaluate: error: ") and message in stderr
    assert stderr.count("\n") == 1
    assert_no_outputs(tmp_path / "out")


def test_cli_refuses_a_malformed_task_naming_its_file(
    tasks: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A malformed task is a usage error (2) whose line names the file; nothing written."""
    task = copy_task(tasks, SCENE_TASK, tmp_path / "tasks")
    _metadata("split_mode", "bootstrap")(task)
    code, _, stderr = run_cli(capsys, *_cli_evaluate(task, tmp_path / "out"))
    assert code == 2 and f"{task}/task_metadata.json: split_mode" in stderr
    assert stderr.count("\n") == 1
    assert_no_outputs(tmp_path / "out")


def test_cli_refuses_other_settings_unless_overwrite(
    evaluated: Evaluated, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """An output folder of other settings: exit 2 naming it; with --overwrite, 0."""
    out = tmp_path / "out"
    evaluated.copy(out, SCENE_TASK)
    argv = _cli_evaluate(evaluated.tasks, out, "--task", SCENE_TASK, "-q")
    _record_settings(out / KWMLP / SCENE_TASK, timestamp_embedding_size=1)
    code, _, stderr = run_cli(capsys, *argv)
    assert code == 2 and "embeddings of other settings (timestamp_embedding_size: 1 there" in stderr
    assert run_cli(capsys, *argv, "--overwrite")[0] == 0
    assert (
        read_json(out / KWMLP / SCENE_TASK / RECORD)["settings"]["timestamp_embedding_size"] == 64
    )


def test_cli_scores_existing_embeddings(
    evaluated: Evaluated, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """--embeddings DIR scores a task's embeddings folder (exit 0), with the protocol asked
    for, and prints its score."""
    task_dir = evaluated.copy(tmp_path, SCENE_TASK)
    protocol = ["--grid", "faster", "--grid-points", "1", "--seed", "7", "--threads", "1"]
    code, stdout, _ = run_cli(capsys, "evaluate", "--embeddings", task_dir, *protocol)
    assert code == 0
    report = read_json(task_dir / SCORES_FILE)
    assert report["protocol"]["seed"] == 7
    test, valid = report["test"]["top1_acc"], report["valid"]["top1_acc"]
    assert stdout.startswith(f"scored {task_dir}\n  {SCENE_TASK}: top1_acc test {test:.4f}, ")
    assert f"valid {valid:.4f}" in stdout


def test_cli_exits_1_naming_a_corrupt_audio_file(
    tasks: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A file that cannot be decoded fails its task: exit 1, the file named on stderr."""
    task = copy_task(tasks, SCENE_TASK, tmp_path / "tasks")
    bad = task / "16000" / "test" / "low_test_1.wav"
    bad.write_bytes(b"garbage, not a wav file")
    code, _, stderr = run_cli(capsys, *_cli_evaluate(task, tmp_path / "out", "-q"))
    assert code == 1
    assert "1 task(s) could not be evaluated" in stderr and str(bad) in stderr


def test_cli_evaluate_help(capsys: pytest.CaptureFixture) -> None:
    """hear-mn evaluate --help prints the usage and the examples, exit 0."""
    code, stdout, _ = run_cli(capsys, "evaluate", "--help")
    assert code == 0
    assert "TASKS_DIR" in stdout and "--embeddings DIR" in stdout and "--grid-points" in stdout
