"""heareval's embeddings layout: the files its predictions runner reads, written and read.

One folder per task (``<embeddings>/<module>/<task>/``)::

    task_metadata.json, labelvocabulary.csv, <split>.json      copies of the task's files
    <split>/<file>.embedding.npy                                (D,) scene or (T, D) event, float32
    <split>/<file>.target-labels.json                           scene: [label]; event: [[label], ...] per timestamp
    <split>/<file>.timestamps.json                              event tasks: timestamps in ms
    <split>.embeddings.npy                                      every file's rows, raw float32 (no header)
    <split>.embedding-dimensions.json                           [rows, D]
    <split>.target-labels.pkl                                   a pickled list of label lists, one per row
    <split>.filename-timestamps.json                            event tasks: [[path, timestamp], ...] per row
    .done.embeddings                                            written last

Split-level rows follow heareval's order (file order shuffled by ``random.Random(0)``, one
generator per task over its splits in metadata order): its trainer does not shuffle, so
the order is part of the protocol. Pickles are read with :func:`safe_pickle_load`, which
admits only a list of label lists (lists or tuples of strings and numbers). Every file is
written atomically.
"""

from __future__ import annotations

import io
import json
import pickle
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hear_mn.atomic import atomic_write
from hear_mn.evaluation.tasks import HearTask, TaskError

__all__ = [
    "DONE_MARKER",
    "SplitEmbeddings",
    "frame_labels",
    "read_split",
    "safe_pickle_load",
    "split_order",
    "write_file_outputs",
    "write_labels",
    "write_split",
    "write_task_files",
]

DONE_MARKER = ".done.embeddings"


class _DataOnlyUnpickler(pickle.Unpickler):
    """Refuses every global: only built-in containers, strings and numbers can be rebuilt."""

    def find_class(self, module: str, name: str) -> object:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only data is admitted")


def _is_label_list(row: object) -> bool:
    """One row's labels: a list (or tuple) of strings or numbers."""
    return isinstance(row, (list, tuple)) and all(
        isinstance(label, (str, int, float)) and not isinstance(label, bool) for label in row
    )


def safe_pickle_load(path: Path) -> list:
    """A heareval ``.pkl`` of labels: a list of lists of strings or numbers, nothing else
    (no code runs: classes and functions are refused)."""
    try:
        value = _DataOnlyUnpickler(io.BytesIO(path.read_bytes())).load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise TaskError(f"{path} is not a labels pickle heareval wrote: {error}") from None
    if not isinstance(value, list) or not all(_is_label_list(row) for row in value):
        raise TaskError(f"{path} does not hold a list of label lists")
    return value


def _write_json(path: Path, value: object, indent: int | None = None) -> None:
    atomic_write(path, json.dumps(value, indent=indent).encode())


def _write_npy(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float32))
    atomic_write(path, buffer.getvalue())


def frame_labels(events: list[dict], timestamps: Sequence[float]) -> list[list[str]]:
    """The labels at each timestamp: those of the events with start <= t < end + 0.0001 ms,
    the rule heareval's embedding runner applies."""
    return [
        [event["label"] for event in events if event["start"] <= t < event["end"] + 0.0001]
        for t in timestamps
    ]


def write_labels(split_dir: Path, name: str, labels: object, timestamps: object | None) -> None:
    """One file's ``.target-labels.json`` (and, for events, ``.timestamps.json``).
    ``labels``: the file's labels (scene) or events (event tasks, turned into per-timestamp
    labels); ``timestamps``: the embedding's timestamps in ms (events), else None."""
    if timestamps is None:
        _write_json(split_dir / f"{name}.target-labels.json", labels)
        return
    stamps = np.asarray(timestamps).tolist()
    _write_json(split_dir / f"{name}.timestamps.json", stamps)
    _write_json(split_dir / f"{name}.target-labels.json", frame_labels(labels, stamps), indent=4)


def write_file_outputs(
    split_dir: Path, name: str, embedding: np.ndarray, labels: object, timestamps: object | None
) -> None:
    """One file's ``.embedding.npy`` and its labels (:func:`write_labels`)."""
    write_labels(split_dir, name, labels, timestamps)
    _write_npy(split_dir / f"{name}.embedding.npy", embedding)


def write_task_files(task: HearTask, task_dir: Path) -> None:
    """Copy the task's metadata, vocabulary and split files into its embeddings folder."""
    task_dir.mkdir(parents=True, exist_ok=True)
    names = ["task_metadata.json", "labelvocabulary.csv", *(f"{s}.json" for s in task.splits)]
    for name in names:
        atomic_write(task_dir / name, (task.path / name).read_bytes())


def split_order(task: HearTask) -> dict[str, list[str]]:
    """Per split, its files in the order of heareval's split-level files."""
    prng = random.Random(0)
    order = {}
    for split, files in task.splits.items():
        names = list(files)
        prng.shuffle(names)
        order[split] = names
    return order


def write_split(task: HearTask, task_dir: Path, split: str, order: list[str]) -> tuple[int, int]:
    """The split-level files of ``split`` from its per-file outputs (all present); returns
    ``(rows, width)``."""
    split_dir = task_dir / split
    event = task.embedding_type == "event"
    arrays, labels, stamps = [], [], []
    for name in order:
        embedding = np.load(split_dir / f"{name}.embedding.npy", allow_pickle=False)
        file_labels = json.loads((split_dir / f"{name}.target-labels.json").read_text())
        if event:
            times = json.loads((split_dir / f"{name}.timestamps.json").read_text())
            stamps += [(str(split_dir / name), t) for t in times]
            labels += file_labels
        else:
            labels.append(file_labels)
        arrays.append(np.atleast_2d(embedding).astype(np.float32, copy=False))
    matrix = np.concatenate(arrays)
    atomic_write(task_dir / f"{split}.embeddings.npy", matrix.tobytes())
    _write_json(task_dir / f"{split}.embedding-dimensions.json", list(matrix.shape))
    atomic_write(task_dir / f"{split}.target-labels.pkl", pickle.dumps(labels, protocol=4))
    if event:
        _write_json(task_dir / f"{split}.filename-timestamps.json", stamps, indent=4)
    return matrix.shape


@dataclass(frozen=True)
class SplitEmbeddings:
    """A split as the trainer sees it: rows of embeddings, their labels and (events) the file
    and timestamp of each row."""

    name: str
    embeddings: np.ndarray  # (rows, D) float32
    labels: list[list[str]]
    filenames: list[str] | None = None
    timestamps: np.ndarray | None = None


def read_split(task_dir: Path, split: str, event: bool) -> SplitEmbeddings:
    """Read a split's split-level files (ours or heareval's), checking they agree."""
    dims_path = task_dir / f"{split}.embedding-dimensions.json"
    data_path = task_dir / f"{split}.embeddings.npy"
    for path in (dims_path, data_path, task_dir / f"{split}.target-labels.pkl"):
        if not path.is_file():
            raise TaskError(
                f"{path} does not exist: {task_dir} does not hold complete embeddings "
                "(compute them again, e.g. with hear-mn evaluate)"
            )
    try:
        rows, width = (int(v) for v in json.loads(dims_path.read_text()))
    except (ValueError, TypeError):
        raise TaskError(f"{dims_path} must hold [rows, width]") from None
    data = np.fromfile(data_path, dtype=np.float32)
    if data.size != rows * width:
        raise TaskError(
            f"{data_path} holds {data.size} values but {dims_path.name} says {rows} x {width}: "
            "the embeddings are incomplete or stale; compute them again"
        )
    embeddings = data.reshape(rows, width)
    if not np.isfinite(embeddings).all():
        raise TaskError(f"{data_path} holds NaN or infinite values: the embedding model failed")
    labels = safe_pickle_load(task_dir / f"{split}.target-labels.pkl")
    if len(labels) != rows:
        raise TaskError(f"{split}.target-labels.pkl has {len(labels)} rows, the embeddings {rows}")
    labels = [[str(label) for label in row] for row in labels]
    if not event:
        return SplitEmbeddings(split, embeddings, labels)
    stamps_path = task_dir / f"{split}.filename-timestamps.json"
    if not stamps_path.is_file():
        raise TaskError(f"{stamps_path} does not exist (an event task needs it)")
    stamps = json.loads(stamps_path.read_text())
    if len(stamps) != rows:
        raise TaskError(f"{stamps_path.name} has {len(stamps)} rows, the embeddings {rows}")
    filenames = [str(name) for name, _ in stamps]
    timestamps = np.array([float(t) for _, t in stamps], dtype=np.float64)
    return SplitEmbeddings(split, embeddings, labels, filenames, timestamps)
