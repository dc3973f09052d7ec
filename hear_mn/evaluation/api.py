"""One call from HEAR task folders to scores: :func:`evaluate` (embed, then train and test),
and :func:`score_embeddings` (train and test embeddings already in heareval's layout)."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import torch

from hear_mn.batch import check_writable
from hear_mn.evaluation.downstream import score_task
from hear_mn.evaluation.embedders import Embedder, LibraryEmbedder, make_embedder
from hear_mn.evaluation.embedding import EmbeddingError, check_task_folder, embed_task
from hear_mn.evaluation.report import (
    SCORES_FILE,
    embeddings_fingerprint,
    task_report,
    write_summary,
    write_task_outputs,
)
from hear_mn.evaluation.scores import make_score
from hear_mn.evaluation.tasks import HearTask, TaskError, find_tasks, read_task
from hear_mn.model import EmbeddingModel

__all__ = ["EvaluationError", "evaluate", "score_embeddings"]

logger = logging.getLogger(__name__)


class EvaluationError(RuntimeError):
    """Some tasks could not be evaluated (``failures``: task -> why); ``results`` holds the
    reports of the others, which were saved."""

    def __init__(self, failures: dict[str, str], results: dict[str, dict]) -> None:
        listed = "\n".join(failures.values())
        super().__init__(f"{len(failures)} task(s) could not be evaluated:\n{listed}")
        self.failures = failures
        self.results = results


def _complexity(embedder: Embedder) -> dict[str, int | None]:
    """Parameters and MACs per 10 s (hear-mn configurations; parameters of torch modules)."""
    if isinstance(embedder, LibraryEmbedder):
        from hear_mn.complexity import known_complexity
        from hear_mn.registry import get_config

        try:
            params, macs = known_complexity(get_config(str(embedder.model.name)))
            return {"parameters": int(params), "macs_10s": int(macs)}
        except (ValueError, TypeError, RuntimeError):
            pass
    model = getattr(embedder, "model", None)
    if isinstance(model, torch.nn.Module):
        return {"parameters": int(sum(p.numel() for p in model.parameters())), "macs_10s": None}
    return {"parameters": None, "macs_10s": None}


def _reusable_report(task_dir: Path, protocol: dict, fingerprint: str) -> dict | None:
    try:
        report = json.loads((task_dir / SCORES_FILE).read_text())
    except (OSError, ValueError):
        return None
    if report.get("protocol") == protocol and report.get("embeddings_sha256") == fingerprint:
        return report
    return None


def _downstream(
    task: HearTask, task_dir: Path, protocol: dict, extra: dict, device: str | None
) -> dict:
    """Train and test one task's embeddings folder, or reuse a report of the same protocol
    computed from the same embeddings."""
    fingerprint = embeddings_fingerprint(task_dir, list(task.splits))
    report = _reusable_report(task_dir, protocol, fingerprint)
    if report is not None:
        logger.info("%s: scores of the same embeddings and protocol reused", task_dir)
        return report | extra
    scores = score_task(
        task_dir,
        grid=protocol["grid"],
        points=protocol["grid_points"],
        seed=protocol["seed"],
        device=device,
    )
    maximize = make_score(task.scores[0], task.labels).maximize
    settings = {
        "protocol": protocol,
        "embeddings_sha256": fingerprint,
        "maximize": maximize,
        **extra,
    }
    report = task_report(scores, settings)
    write_task_outputs(scores, task_dir, report, maximize)
    return report


def _protocol(grid: str, grid_points: int, seed: int) -> dict:
    from hear_mn.version import __version__

    return {
        "grid": grid,
        "grid_points": grid_points,
        "seed": seed,
        "evaluator": f"hear-mn {__version__}",
    }


def evaluate(
    tasks_dir: str | os.PathLike[str],
    model: str | EmbeddingModel = "mn04_all_b_mel_avgs",
    *,
    weights: str | os.PathLike[str] | None = None,
    options: Mapping[str, object] | None = None,
    tasks: str | Iterable[str] | None = None,
    out: str | os.PathLike[str] = "hear_evaluation",
    grid: str = "default",
    grid_points: int = 8,
    seed: int = 42,
    device: str | None = None,
    batch_size: int | None = None,
    overwrite: bool = False,
    ray_options: object | None = None,
    progress: bool | Callable[[Path, float], None] | None = None,
) -> dict[str, dict]:
    """Embed HEAR tasks with ``model`` and score them with heareval's downstream protocol.

    ``tasks_dir``: a folder of task folders (heareval's ``--tasks-dir``) or one task folder;
    ``tasks``: the names of the tasks to run (default all). ``model``: a hear-mn
    configuration name, a built model, or the import name of any HEAR-API module;
    ``weights``: its checkpoint file; ``options``: ``load_model`` keyword arguments (e.g.
    ``{"features": "e1_l_all_se"}``). Embeddings go to ``out/<module>/<task>/`` in heareval's
    layout (resumable; a folder of other settings is refused unless ``overwrite``), the
    scores beside them, and summary tables over every module in ``out``.

    ``grid`` (``default``, ``fast``, ``faster``: heareval's), ``grid_points`` (8) and
    ``seed`` (42) set the downstream search as heareval's options do; ``device``: where
    models run (default CUDA when available); ``batch_size``: clips per forward pass (default
    heareval's estimate from the task's clip duration); ``ray_options``: a
    :class:`~hear_mn.engines.ray_data.RayOptions` to embed on Ray; ``progress``: a bar over
    the seconds of audio (default: when stderr is a terminal), or a callback.

    Returns, per task folder name, the task's report: ``test`` and ``valid`` (score name ->
    value; for k-fold tasks the mean over folds, with ``test_std``/``test_folds`` and
    ``valid_std``/``valid_folds`` beside them), ``embedding_seconds``, ``audio_seconds``,
    ``downstream_seconds``, the chosen ``grid_point`` and ``postprocessing``, every grid
    point's validation result (``grid``) and each fold's model (``folds``). Raises
    :class:`~hear_mn.evaluation.tasks.TaskError` for a malformed task and
    :class:`~hear_mn.batch.OutputConflictError` for a task folder of other settings (unless
    ``overwrite``), both before any compute, and :class:`EvaluationError` (with the other tasks' ``results``) when files of a task
    could not be embedded.
    """
    from hear_mn.progress import AudioProgress

    task_list = [read_task(path) for path in find_tasks(tasks_dir, tasks)]
    embedder = make_embedder(model, weights=weights, options=options, device=device)
    files = [
        path
        for task in task_list
        for pairs in task.audio_files(embedder.sample_rate).values()
        for _, path in pairs
    ]
    out = check_writable(out)
    for task in task_list:  # a folder of other settings is refused before any task is computed
        check_task_folder(task, embedder, out, overwrite)
    if callable(progress):
        bar, callback = None, progress
    else:
        import sys

        enabled = sys.stderr.isatty() if progress is None else bool(progress)
        bar = AudioProgress(f"evaluate {embedder.folder}", files, enabled)
        callback = bar.done
    protocol = _protocol(grid, grid_points, seed)
    complexity = _complexity(embedder)
    results, failures = {}, {}
    try:
        for task in task_list:
            start = time.perf_counter()
            try:
                stage = embed_task(
                    task,
                    embedder,
                    out,
                    overwrite=overwrite,
                    batch_size=batch_size,
                    progress=callback,
                    ray_options=ray_options,
                )
            except EmbeddingError as error:
                failures[task.name] = str(error)
                continue
            logger.info(
                "%s: %d file(s) embedded, %d reused in %.1f s",
                task.name,
                stage.computed,
                stage.reused,
                time.perf_counter() - start,
            )
            extra = {
                "module": embedder.folder,
                "model": embedder.description,
                "embedding_seconds": stage.seconds,
                "audio_seconds": stage.audio_seconds,
                **complexity,
            }
            results[task.name] = _downstream(task, stage.task_dir, protocol, extra, device)
    finally:
        if bar is not None:
            bar.close()
        write_summary(out)
    if failures:
        raise EvaluationError(failures, results)
    return results


def _task_dirs(path: Path) -> list[Path]:
    def is_task(folder: Path) -> bool:
        return (folder / "task_metadata.json").is_file() and any(
            folder.glob("*.embedding-dimensions.json")
        )

    if is_task(path):
        return [path]
    found = sorted(p for p in path.iterdir() if p.is_dir() and is_task(p)) if path.is_dir() else []
    if not found:
        raise TaskError(
            f"no task embeddings in {path}: give a task's embeddings folder (with "
            "task_metadata.json and <split>.embeddings.npy) or a module's folder of them"
        )
    return found


def score_embeddings(
    embeddings: str | os.PathLike[str],
    *,
    grid: str = "default",
    grid_points: int = 8,
    seed: int = 42,
    device: str | None = None,
) -> dict[str, dict]:
    """Train and test the downstream models on embeddings already in heareval's layout
    (written by :func:`evaluate` or by heareval's embeddings runner): one task's folder or a
    module's folder of task folders. Writes the same files as :func:`evaluate` there and
    returns the same per-task reports (without embedding times, unless a report of the same
    embeddings and protocol is there to reuse: it is returned as saved)."""
    protocol = _protocol(grid, grid_points, seed)
    results = {}
    for task_dir in _task_dirs(Path(embeddings)):
        task = read_task(task_dir)
        extra = {"module": task_dir.parent.name}
        results[task.name] = _downstream(task, task_dir, protocol, extra, device)
    return results
