"""What a classifier's card says about its scores, and the summary ``hear-mn fit`` prints.

Per split: the number of examples, the scores (top-1 accuracy and mAP for one class per
example, mAP and ROC AUC for multi-label; the evaluator's score functions), and per class
its examples and how well it did (recall, or average precision), plus the confusion matrix
for one class per example. Numbers that cannot be computed (no positives) are null.
"""

from __future__ import annotations

import math

import numpy as np

from hear_mn.evaluation.scores import make_score, ranked_columns

__all__ = ["split_scores", "summary_lines"]


def _number(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


def split_scores(
    probabilities: np.ndarray, targets: np.ndarray, labels: list[str], multilabel: bool
) -> dict:
    """A split's examples, scores, per-class results (and confusion matrix)."""
    names = ("mAP", "aucroc") if multilabel else ("top1_acc", "mAP")
    scores = {}
    for name in names:
        try:
            scores[name] = _number(
                next(iter(make_score(name, labels)(probabilities, targets).values()))
            )
        except ValueError:
            scores[name] = None
    positives = targets.sum(axis=0).astype(int)
    per_class: dict[str, dict] = {}
    result: dict = {"examples": int(len(targets)), "scores": scores, "per_class": per_class}
    if multilabel:
        columns = ranked_columns(probabilities, targets)
        precision = columns.average_precision() if columns is not None else [math.nan] * len(labels)
        for i, label in enumerate(labels):
            per_class[label] = {
                "examples": int(positives[i]),
                "average_precision": _number(precision[i]) if positives[i] else None,
            }
        return result
    truth, predicted = targets.argmax(axis=1), probabilities.argmax(axis=1)
    confusion = np.zeros((len(labels), len(labels)), dtype=int)
    np.add.at(confusion, (truth, predicted), 1)
    for i, label in enumerate(labels):
        per_class[label] = {
            "examples": int(positives[i]),
            "correct": int(confusion[i, i]),
            "recall": _number(confusion[i, i] / positives[i]) if positives[i] else None,
        }
    result["confusion"] = {
        "rows": "true class",
        "columns": "predicted class",
        "matrix": confusion.tolist(),
    }
    return result


def _shown(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def summary_lines(card: dict, folder: object) -> list[str]:
    """The few lines ``hear-mn fit`` prints: the data, the chosen grid point, the scores
    with their class counts, and what was left out."""
    data, scores = card["data"], card["scores"]
    point = card["head"]["grid_point"]
    lines = [
        f"{card['embedding']['model']} -> {len(card['labels'])} classes "
        f"({'multi-label' if card['multilabel'] else 'one per example'}); "
        + ", ".join(f"{name} {n}" for name, n in data["examples"].items())
        + f" examples ({data['split']} split)",
        f"grid point: {point['hidden_layers']} hidden layer(s) of {point['hidden_dim']}, lr "
        f"{point['lr']:g}, {point['initialization']}; epoch {card['head']['epoch']}",
    ]
    for split in ("valid", "test"):
        if split not in scores:
            continue
        shown = ", ".join(f"{k} {_shown(v)}" for k, v in scores[split]["scores"].items())
        lines.append(f"{split}: {shown} on {scores[split]['examples']} examples")
        for label, entry in scores[split]["per_class"].items():
            value = entry.get("recall", entry.get("average_precision"))
            what = "recall" if "recall" in entry else "AP"
            lines.append(f"  {label:<24} {entry['examples']:5d} examples  {what} {_shown(value)}")
    if data["left_out"]:
        lines.append(f"left out {len(data['left_out'])} example(s) that could not be read")
    lines.append(f"wrote {folder}")
    return lines
