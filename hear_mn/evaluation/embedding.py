"""The embedding stage: a task's audio -> heareval's embeddings layout, resumable.

Per task folder ``<out>/<embedder folder>/<task>/`` (:mod:`hear_mn.evaluation.layout`):
files are decoded with the library's audio I/O, grouped by length into forward passes
(:func:`hear_mn.batch.length_groups`), embedded, and written atomically one file at a time;
then the split-level files and ``.done.embeddings``. ``hear-mn.embeddings.json`` records
the settings the outputs depend on (model, features, weights, scene or timestamps) and each
audio file's size and modification time, so that a rerun reuses exactly the outputs whose
settings and audio are unchanged (an interrupted run resumes; a changed file is embedded
again) and refuses a folder written with other settings (or by another tool) unless told
to overwrite it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hear_mn.atomic import atomic_write
from hear_mn.audio_io import AudioReadError, load_audio
from hear_mn.batch import OutputConflictError, length_groups
from hear_mn.evaluation.embedders import Embedder, LibraryEmbedder
from hear_mn.evaluation.layout import (
    DONE_MARKER,
    split_order,
    write_file_outputs,
    write_labels,
    write_split,
    write_task_files,
)
from hear_mn.evaluation.tasks import HearTask

__all__ = [
    "EmbeddingError",
    "EmbeddingStage",
    "RECORD",
    "check_task_folder",
    "embed_task",
    "task_batch_size",
    "task_folder",
]

logger = logging.getLogger(__name__)

RECORD = "hear-mn.embeddings.json"
RECORD_VERSION = 1


class EmbeddingError(RuntimeError):
    """Some files of a task could not be embedded; the others were written (a rerun
    computes only what is missing)."""


@dataclass
class EmbeddingStage:
    """What the stage did for one task: its folder, files computed and reused, the seconds
    spent computing (summed over the runs that computed them) and of audio embedded."""

    task_dir: Path
    computed: int
    reused: int
    seconds: float
    audio_seconds: float


@dataclass(frozen=True)
class _Job:
    split: str
    name: str
    path: Path

    @property
    def key(self) -> str:
        return f"{self.split}/{self.name}"


def task_batch_size(task: HearTask, sample_rate: int) -> int:
    """Clips per forward pass, as heareval's embeddings runner estimates it from the task's
    clip duration (about 84 s of 16 kHz audio a batch)."""
    duration = task.metadata.get("sample_duration")
    if not duration:
        return 1
    return max(1, int(0.7 * (120 / float(duration)) * (16000 / sample_rate)))


def _identity(path: Path) -> list[int]:
    stat = path.stat()
    return [int(stat.st_size), int(stat.st_mtime_ns)]


def _read_record(task_dir: Path) -> dict | None:
    try:
        record = json.loads((task_dir / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("version") == RECORD_VERSION else None


def _write_record(task_dir: Path, record: dict) -> None:
    atomic_write(task_dir / RECORD, json.dumps(record, indent=1, sort_keys=True).encode())


def _differences(recorded: dict, asked: dict) -> str:
    keys = sorted(k for k in set(recorded) | set(asked) if recorded.get(k) != asked.get(k))
    shown = [f"{k}: {recorded.get(k)!r} there, {asked.get(k)!r} now" for k in keys[:3]]
    return "; ".join(shown)


def _claim_folder(task_dir: Path, settings: dict, overwrite: bool) -> dict | None:
    """The folder's record when its outputs may be reused; refuses a folder of other
    settings or another tool (or clears it with ``overwrite``)."""
    record = _read_record(task_dir)
    occupied = task_dir.is_dir() and any(task_dir.iterdir())
    if record is not None and record.get("settings") == settings:
        return record
    if not occupied:
        return None
    if overwrite:
        logger.info("removing %s (overwrite)", task_dir)
        shutil.rmtree(task_dir)
        return None
    if record is None:
        why = "embeddings that hear-mn did not write (e.g. heareval's embeddings runner)"
    else:
        why = f"embeddings of other settings ({_differences(record['settings'], settings)})"
    raise OutputConflictError(
        f"{task_dir} holds {why}; nothing was computed. Choose another output folder, or "
        "overwrite it (--overwrite, overwrite=True); to score embeddings that are already "
        "there use hear-mn evaluate --embeddings"
    )


def task_folder(task: HearTask, embedder: Embedder, out: Path) -> Path:
    """The task's embeddings folder: ``out/<embedder folder>/<task>/``."""
    return Path(out) / embedder.folder / task.name


def check_task_folder(task: HearTask, embedder: Embedder, out: Path, overwrite: bool) -> None:
    """Raise :class:`~hear_mn.batch.OutputConflictError` now, before any task is computed,
    when the task's folder holds embeddings of other settings or of another tool (and
    ``overwrite`` is not set); changes nothing."""
    if not overwrite:
        event = task.embedding_type == "event"
        _claim_folder(task_folder(task, embedder, out), embedder.settings(event), False)


def _reusable(task_dir: Path, job: _Job, event: bool, width: int | None) -> bool:
    """Whether a file's outputs are complete and of the expected shape."""
    split_dir = task_dir / job.split
    try:
        embedding = np.load(split_dir / f"{job.name}.embedding.npy", mmap_mode="r")
        if embedding.dtype != np.float32 or embedding.ndim != (2 if event else 1):
            return False
        if width is not None and embedding.shape[-1] != width:
            logger.warning(
                "%s has width %d, not %d: embedding it again", job.name, embedding.shape[-1], width
            )
            return False
        if event:
            stamps = json.loads((split_dir / f"{job.name}.timestamps.json").read_text())
            return len(stamps) == embedding.shape[0]
        return True
    except (OSError, ValueError):
        return False


def _splits_written(task: HearTask, task_dir: Path) -> bool:
    """Whether every split-level file is there, the embeddings of the size their dimensions
    give (a deleted or truncated one is then written again from the per-file outputs)."""
    others = [".target-labels.pkl"]
    others += [".filename-timestamps.json"] if task.embedding_type == "event" else []
    for split in task.splits:
        try:
            rows, width = json.loads((task_dir / f"{split}.embedding-dimensions.json").read_text())
            expected = 4 * int(rows) * int(width)
            size = (task_dir / f"{split}.embeddings.npy").stat().st_size
        except (OSError, ValueError, TypeError):
            return False
        if size != expected:
            return False
        if not all((task_dir / f"{split}{suffix}").is_file() for suffix in others):
            return False
    return True


# What a computation yields per file: the job, its arrays or why it failed, seconds of audio.
_Result = tuple[_Job, "dict[str, np.ndarray] | str", float]


def _local_results(
    embedder: Embedder, jobs: list[_Job], event: bool, batch_size: int
) -> Iterator[_Result]:
    """Files decoded by the library's audio I/O and embedded in groups of equal length."""

    def decoded() -> Iterator[tuple[_Job, np.ndarray]]:
        for job in jobs:
            try:
                yield job, load_audio(job.path, embedder.sample_rate)
            except AudioReadError as error:
                failed.append((job, str(error), 0.0))

    failed: list[_Result] = []
    for group in length_groups(decoded(), lambda item: len(item[1]), batch_size):
        yield from failed
        failed.clear()
        results = embedder.embed([audio for _, audio in group], event)
        for (job, audio), result in zip(group, results):
            reason = f"{job.path}: {result}" if isinstance(result, str) else result
            yield job, reason, len(audio) / embedder.sample_rate
    yield from failed


def _ray_results(
    embedder: Embedder, jobs: list[_Job], event: bool, batch_size: int, ray_options: object
) -> Iterator[_Result]:
    """Files embedded by a pool of Ray actors (the same batches as locally)."""
    from hear_mn.engines.ray_data import dataset_of_inputs

    if not isinstance(embedder, LibraryEmbedder):
        raise ValueError(
            "the ray engine runs hear-mn models only; use the local engine for HEAR modules"
        )
    by_path = {str(job.path): job for job in jobs}
    rows = dataset_of_inputs(
        [job.path for job in jobs],
        embedder.model,
        ray_options,
        timestamps=event,
        batch_size=batch_size,
    )
    for row in rows.iter_rows():
        result = row["error"] or {
            "embedding": np.asarray(row["embedding"]),
            "timestamps": np.asarray(row["timestamps"]),
        }
        yield by_path[row["path"]], result, float(row["seconds"])


def _write_results(
    task: HearTask, task_dir: Path, results: Iterator[_Result], done: Callable[[_Job, float], None]
) -> list[str]:
    """Write each file's outputs as its result arrives; returns why the others failed."""
    event = task.embedding_type == "event"
    failures = []
    for job, result, seconds in results:
        if isinstance(result, str):
            failures.append(result)
        else:
            labels = task.splits[job.split][job.name]
            stamps = result.get("timestamps") if event else None
            write_file_outputs(task_dir / job.split, job.name, result["embedding"], labels, stamps)
        done(job, seconds)
    return failures


def _refresh_labels(task: HearTask, task_dir: Path, jobs: list[_Job], event: bool) -> None:
    """Rewrite the label files of reused outputs from the task's current labels."""
    for job in jobs:
        split_dir = task_dir / job.split
        stamps = None
        if event:
            stamps = json.loads((split_dir / f"{job.name}.timestamps.json").read_text())
        write_labels(split_dir, job.name, task.splits[job.split][job.name], stamps)


def _task_fingerprint(task: HearTask) -> str:
    """SHA-256 of the task's metadata, vocabulary and split files (labels can change while
    the audio does not: the label files are then written again)."""
    digest = hashlib.sha256()
    for name in ["task_metadata.json", "labelvocabulary.csv", *(f"{s}.json" for s in task.splits)]:
        digest.update(name.encode() + b"\0" + (task.path / name).read_bytes())
    return digest.hexdigest()


def _progress_reused(jobs: list[_Job], durations: dict, progress: Callable | None) -> None:
    if progress is not None:
        for job in jobs:
            progress(job.path, durations.get(job.key, 0.0))


def embed_task(
    task: HearTask,
    embedder: Embedder,
    out: Path,
    *,
    overwrite: bool = False,
    batch_size: int | None = None,
    progress: Callable[[Path, float], None] | None = None,
    ray_options: object | None = None,
) -> EmbeddingStage:
    """Embed every file of ``task`` into ``out/<embedder.folder>/<task>/`` (heareval's
    layout), reusing outputs of the same settings and unchanged audio. Raises
    :class:`~hear_mn.batch.OutputConflictError` before any work for a folder of other
    settings (unless ``overwrite``), :class:`EmbeddingError` after writing the rest when
    some files fail. ``progress(path, seconds)`` is called per file."""
    event = task.embedding_type == "event"
    task_dir = task_folder(task, embedder, out)
    settings = embedder.settings(event)
    jobs = [
        _Job(split, name, path)
        for split, pairs in task.audio_files(embedder.sample_rate).items()
        for name, path in pairs
    ]
    inputs = {job.key: _identity(job.path) for job in jobs}
    fingerprint = _task_fingerprint(task)
    record = _claim_folder(task_dir, settings, overwrite) or {}
    durations = dict(record.get("durations", {}))
    if (
        record.get("complete")
        and record.get("inputs") == inputs
        and record.get("task_sha256") == fingerprint
        and (task_dir / DONE_MARKER).exists()
        and _splits_written(task, task_dir)
    ):
        _progress_reused(jobs, durations, progress)
        return EmbeddingStage(task_dir, 0, len(jobs), record["seconds"], record["audio_seconds"])
    previous = record.get("inputs", {})
    width = embedder.expected_width(event)
    reused = [
        job
        for job in jobs
        if previous.get(job.key) == inputs[job.key] and _reusable(task_dir, job, event, width)
    ]
    reused_keys = {job.key for job in reused}
    todo = [job for job in jobs if job.key not in reused_keys]
    seconds = float(record.get("seconds", 0.0)) if reused else 0.0
    (task_dir / DONE_MARKER).unlink(missing_ok=True)
    for job in todo:  # stale outputs must never pass for the current audio's
        (task_dir / job.split / f"{job.name}.embedding.npy").unlink(missing_ok=True)
    write_task_files(task, task_dir)
    record = {
        "version": RECORD_VERSION,
        "settings": settings,
        "inputs": inputs,
        "task_sha256": fingerprint,
        "durations": durations,
        "seconds": seconds,
        "complete": False,
    }
    _write_record(task_dir, record)
    _progress_reused(reused, durations, progress)

    def done(job: _Job, audio_seconds: float) -> None:
        durations[job.key] = audio_seconds
        if progress is not None:
            progress(job.path, audio_seconds)

    start = time.perf_counter()
    embedder.start_job()
    size = batch_size or task_batch_size(task, embedder.sample_rate)
    if ray_options is None:
        results = _local_results(embedder, todo, event, size)
    else:
        results = _ray_results(embedder, todo, event, size, ray_options)
    try:
        failures = _write_results(task, task_dir, results, done)
    finally:
        record["seconds"] = seconds + time.perf_counter() - start
        _write_record(task_dir, record)
    if failures:
        listed = "\n  ".join(failures[:10])
        more = f"\n  ... and {len(failures) - 10} more" if len(failures) > 10 else ""
        raise EmbeddingError(
            f"task {task.name}: {len(failures)} file(s) could not be embedded (the others were "
            f"saved in {task_dir}; a rerun computes only what is missing):\n  {listed}{more}"
        )
    _refresh_labels(task, task_dir, reused, event)
    order = split_order(task)
    for split in task.splits:
        write_split(task, task_dir, split, order[split])
    record["complete"] = True
    record["audio_seconds"] = float(sum(durations.get(key, 0.0) for key in inputs))
    _write_record(task_dir, record)
    atomic_write(task_dir / DONE_MARKER, b"")
    return EmbeddingStage(
        task_dir, len(todo), len(reused), record["seconds"], record["audio_seconds"]
    )
