"""What the evaluator writes: per task a JSON report, heareval's scores file and the test
predictions; over every module of an output folder, summary tables and a plot.

Per task, in its embeddings folder:

- ``hear-mn.scores.json``: the task's result (what :func:`hear_mn.evaluation.evaluate`
  returns for it): ``test`` and ``valid`` scores (k folds: their means, with ``*_std`` and
  ``*_folds`` beside them), the chosen grid point and post-processing, every grid point's
  validation result, each fold's model, times, and the settings it was computed with;
- ``test.predicted-scores.json``: the same scores in heareval's structure (per test fold
  ``test_<score>``, ``validation_score``, ``epoch``, ``time_in_min``; ``aggregated_scores``
  for k folds; ``hparams``, ``postprocessing``, ``score_mode``), for tools that read heareval's;
- ``<fold>.predictions.npz`` (``target``, ``prediction``, ``prediction_logit``, and for
  event tasks ``timestamp``), and for event tasks ``<fold>.predicted-events.json``
  (``predicted_events``, ``target_events``): heareval pickles these; we write no pickles.

In the output folder: ``summary.md``, ``summary.csv`` and ``summary.png`` (when matplotlib is
installed): one row per module, the primary test score per task, their mean (over scores
where higher is better), parameters, MACs per 10 s, embedding time, real-time factor and
downstream time.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import statistics
from pathlib import Path

import numpy as np

from hear_mn.atomic import atomic_write
from hear_mn.evaluation.downstream import FoldResult, TaskScores

__all__ = [
    "SCORES_FILE",
    "embeddings_fingerprint",
    "read_results",
    "task_report",
    "write_summary",
    "write_task_outputs",
]

logger = logging.getLogger(__name__)

SCORES_FILE = "hear-mn.scores.json"


def embeddings_fingerprint(task_dir: Path, splits: list[str]) -> str:
    """SHA-256 of what the downstream stage reads: the task's files and split-level files."""
    digest = hashlib.sha256()
    names = ["task_metadata.json", "labelvocabulary.csv"]
    for split in splits:
        names += [
            f"{split}.json",
            f"{split}.embedding-dimensions.json",
            f"{split}.embeddings.npy",
            f"{split}.target-labels.pkl",
            f"{split}.filename-timestamps.json",
        ]
    for name in names:
        path = task_dir / name
        if path.is_file():
            digest.update(name.encode() + b"\0")
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def _fold_name(fold: FoldResult) -> str:
    return "|".join(fold.split["test"])


def _mean_std(values: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    keys = [k for k in values[0] if all(k in v for v in values)]
    mean = {k: float(np.mean([v[k] for v in values])) for k in keys}
    std = {
        k: float(statistics.stdev([v[k] for v in values])) if len(values) > 1 else 0.0 for k in keys
    }
    return mean, std


def _postprocessing(value: object) -> list | None:
    return [list(pair) for pair in value] if value else None


def task_report(scores: TaskScores, settings: dict) -> dict:
    """The task's result as :func:`~hear_mn.evaluation.evaluate` returns it."""
    folds = scores.folds
    report: dict = {"task": scores.task.name, "scores": list(scores.task.scores)}
    for part in ("test", "valid"):
        values = [getattr(fold, part) for fold in folds]
        mean, std = _mean_std(values)
        report[part] = mean
        if len(folds) > 1:
            report[f"{part}_std"] = std
            report[f"{part}_folds"] = {_fold_name(f): v for f, v in zip(folds, values)}
    report["grid_point"] = scores.best.as_dict()
    report["postprocessing"] = _postprocessing(folds[0].model.postprocessing)
    report["grid"] = [
        {
            "hyper_parameters": model.conf.as_dict(),
            "validation_score": model.validation_score,
            "epoch": model.epoch,
            "postprocessing": _postprocessing(model.postprocessing),
        }
        for model in scores.grid
    ]
    report["folds"] = [
        {
            **fold.split,
            "validation_score": fold.model.validation_score,
            "epoch": fold.model.epoch,
            "test_loss": fold.test_loss,
            "train_seconds": fold.model.seconds,
        }
        for fold in folds
    ]
    report["downstream_seconds"] = scores.seconds
    report.update(settings)
    return report


def _heareval_scores(scores: TaskScores, task_dir: Path, maximize: bool) -> dict:
    """The task's scores in the structure of heareval's ``test.predicted-scores.json``."""
    result: dict = {}
    for fold in scores.folds:
        primary = fold.test[scores.task.scores[0]]
        entry = {"test_loss": fold.test_loss, "test_score": primary}
        entry.update({f"test_{k}": v for k, v in fold.test.items()})
        entry.update(
            validation_score=fold.model.validation_score,
            epoch=fold.model.epoch,
            time_in_min=fold.model.seconds / 60,
        )
        result[_fold_name(fold)] = entry
    if len(scores.folds) > 1:
        mean, std = _mean_std(list(result.values()))
        result["aggregated_scores"] = {
            **{f"{k}_mean": v for k, v in mean.items()},
            **{f"{k}_std": v for k, v in std.items()},
        }
    result["hparams"] = scores.best.as_dict()
    result["postprocessing"] = _postprocessing(scores.folds[0].model.postprocessing) or []
    result["score_mode"] = "max" if maximize else "min"
    result["embedding_path"] = str(task_dir)
    return result


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, indent=4, allow_nan=True).encode()


def write_task_outputs(scores: TaskScores, task_dir: Path, report: dict, maximize: bool) -> None:
    """Write the task's report, heareval's scores file and the test predictions."""
    for fold in scores.folds:
        name = _fold_name(fold)
        buffer = io.BytesIO()
        np.savez(buffer, **fold.predictions)
        atomic_write(task_dir / f"{name}.predictions.npz", buffer.getvalue())
        if fold.predicted_events is not None:
            events = {
                "predicted_events": fold.predicted_events,
                "target_events": {
                    f: scores.task.splits[s][f]
                    for s in fold.split["test"]
                    for f in scores.task.splits[s]
                },
            }
            atomic_write(task_dir / f"{name}.predicted-events.json", _json_bytes(events))
    atomic_write(
        task_dir / "test.predicted-scores.json",
        _json_bytes(_heareval_scores(scores, task_dir, maximize)),
    )
    atomic_write(task_dir / SCORES_FILE, _json_bytes(report))


def read_results(out: Path) -> dict[str, dict[str, dict]]:
    """Every task report under ``out`` (``out/<module>/<task>/hear-mn.scores.json``), by
    module and task."""
    results: dict[str, dict[str, dict]] = {}
    for path in sorted(Path(out).glob(f"*/*/{SCORES_FILE}")):
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError):
            logger.warning("%s is not readable; left out of the summary", path)
            continue
        results.setdefault(path.parent.parent.name, {})[path.parent.name] = report
    return results


def _format(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def summary_rows(results: dict[str, dict[str, dict]]) -> tuple[list[str], list[dict]]:
    """(columns, one row per module) of the summary table."""
    tasks = sorted({task for reports in results.values() for task in reports})
    score_of = {}
    for reports in results.values():
        for task, report in reports.items():
            score_of.setdefault(task, report["scores"][0])
    columns = ["module", "parameters", "macs_10s"] + [f"{t} ({score_of[t]})" for t in tasks]
    columns += ["mean", "embedding_s", "realtime_factor", "downstream_s"]
    rows = []
    for module, reports in sorted(results.items()):
        some = next(iter(reports.values()))
        row = {
            "module": module,
            "parameters": some.get("parameters"),
            "macs_10s": some.get("macs_10s"),
        }
        higher = []
        for task in tasks:
            report = reports.get(task)
            value = report["test"].get(report["scores"][0]) if report else None
            row[f"{task} ({score_of[task]})"] = value
            if report and value is not None and report.get("maximize", True):
                higher.append(value)
        row["mean"] = float(np.mean(higher)) if higher else None
        embedding = sum(r.get("embedding_seconds", 0.0) for r in reports.values())
        audio = sum(r.get("audio_seconds", 0.0) for r in reports.values())
        row["embedding_s"] = embedding
        row["realtime_factor"] = audio / embedding if embedding > 0 else None
        row["downstream_s"] = sum(r.get("downstream_seconds", 0.0) for r in reports.values())
        rows.append(row)
    return columns, rows


def _plot(rows: list[dict], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.info("matplotlib is not installed: no %s (pip install matplotlib)", path.name)
        return False
    points = [r for r in rows if r["macs_10s"] and r["mean"] is not None]
    if not points:
        return False
    figure, axes = plt.subplots(figsize=(6, 4))
    for row in points:
        axes.scatter(row["macs_10s"], row["mean"])
        axes.annotate(
            row["module"],
            (row["macs_10s"], row["mean"]),
            fontsize=7,
            xytext=(4, 2),
            textcoords="offset points",
        )
    axes.set_xscale("log")
    axes.set_xlabel("multiply-accumulates per 10 s of audio")
    axes.set_ylabel("mean test score (higher is better)")
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    plt.close(figure)
    atomic_write(path, buffer.getvalue())
    return True


def write_summary(out: Path) -> dict[str, Path]:
    """``summary.md``, ``summary.csv`` (and ``summary.png``) over every module in ``out``."""
    results = read_results(out)
    if not results:
        return {}
    columns, rows = summary_rows(results)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if row[k] is None else row[k]) for k in columns} for row in rows)
    written = {"csv": atomic_write(out / "summary.csv", text.getvalue().encode())}
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_format(row[c]) for c in columns) + " |" for row in rows]
    written["md"] = atomic_write(out / "summary.md", ("\n".join(lines) + "\n").encode())
    if _plot(rows, out / "summary.png"):
        written["png"] = out / "summary.png"
    return written
