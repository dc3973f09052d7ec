"""``hear_mn.fit``: labelled audio -> embeddings (cached) -> the evaluator's trainer -> a head.

The protocol is the HEAR evaluator's (docs/evaluation.md), on the classifier's own split:
heareval's grid (``grid``, ``grid_points``, ``seed``, and ``params`` in place of a task's
``task_specific_param_grid``), every grid point trained on the training rows with early
stopping and model selection on the validation score (top-1 accuracy for one class per
example, mAP for multi-label), the best point kept (the earlier on a tie), then tested. The
rows of each split are ordered as heareval's embeddings layout orders a task's files
(shuffled once with ``random.Random(0)``), so the same split given to
:func:`hear_mn.evaluate` as a task trains the same models and gives the same scores.
"""

from __future__ import annotations

import logging
import os
import random
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from hear_mn.batch import check_writable
from hear_mn.classifier.classifier import Classifier
from hear_mn.classifier.data import (
    ClassifierDataError,
    Example,
    LabelledData,
    class_counts,
    read_labelled,
    split_examples,
)
from hear_mn.classifier.features import embed_examples
from hear_mn.classifier.head import CARD_FORMAT, head_from_mlp, write_classifier_files
from hear_mn.classifier.report import split_scores
from hear_mn.evaluation.grid import grid_points as make_grid_points
from hear_mn.evaluation.scores import make_score
from hear_mn.evaluation.trainer import TrainedModel, activation, train_grid
from hear_mn.model import EmbeddingModel
from hear_mn.resume import output_settings, weights_fingerprint

__all__ = ["ROW_ORDER_SEED", "fit", "primary_score"]

logger = logging.getLogger(__name__)

# heareval's layout shuffles each split's files with random.Random(0) (its split order).
ROW_ORDER_SEED = 0


def primary_score(multilabel: bool) -> str:
    """The score that selects models: mAP for multi-label heads, else top-1 accuracy."""
    return "mAP" if multilabel else "top1_acc"


def _read(source: object, role: str) -> LabelledData | None:
    if source is None:
        return None
    data = read_labelled(source)  # type: ignore[arg-type]
    if not data.examples:
        raise ClassifierDataError(f"the {role} data {source} holds no examples")
    return data


def _check_vocabulary(train: LabelledData, others: dict[str, LabelledData]) -> list[str]:
    labels = train.labels
    multilabel = train.multilabel or any(d.multilabel for d in others.values())
    if not multilabel and len(labels) < 2:
        raise ClassifierDataError(
            f"{train.source} has one class only ({labels[0] if labels else 'none'}); a classifier "
            "needs at least two (or several labels per example: multi-label)"
        )
    for role, data in others.items():
        unknown = sorted(set(data.labels) - set(labels))
        if unknown:
            raise ClassifierDataError(
                f"the {role} data {data.source} has classes the training data lacks: "
                f"{', '.join(unknown)}; every class needs training examples"
            )
    return labels


def _rows(
    examples: Sequence[Example], embeddings: Mapping[Example, np.ndarray], labels: list[str]
) -> tuple[torch.Tensor, torch.Tensor, list[Example]]:
    """A split's embeddings and 0/1 targets in heareval's row order."""
    ordered = list(examples)
    random.Random(ROW_ORDER_SEED).shuffle(ordered)
    index = {label: i for i, label in enumerate(labels)}
    targets = np.zeros((len(ordered), len(labels)), dtype=np.float32)
    for row, example in enumerate(ordered):
        targets[row, [index[label] for label in example.labels]] = 1.0
    x = np.stack([embeddings[example] for example in ordered]).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(targets), ordered


def _embedding_record(model: EmbeddingModel, weights: object, features: str | None) -> dict:
    settings = output_settings(model, False)
    return {
        "model": model.name,
        "features_option": features,
        "weights_file": str(Path(weights).resolve()) if weights is not None else None,
        "weights_sha256": weights_fingerprint(model),
        "sample_rate": int(model.sample_rate),
        "embedding_size": int(model.scene_embedding_size),
        "settings": {k: v for k, v in settings.items() if k != "hear_mn_version"},
    }


def _built(
    model: str | EmbeddingModel, weights: object, features: str | None, device: str | None
) -> EmbeddingModel:
    if isinstance(model, EmbeddingModel):
        return model if device is None else model.to(device)
    from hear_mn.registry import create_model

    options = {"features": features} if features else {}
    return create_model(model, weights=weights, device=device, **options)  # type: ignore[arg-type]


def _splits(
    train: LabelledData,
    valid: LabelledData | None,
    test: LabelledData | None,
    usable: set[Example],
    labels: list[str],
    fractions: tuple[float, float],
    seed: int,
) -> dict[str, list[Example]]:
    def kept(data: LabelledData) -> list[Example]:
        return [example for example in data.examples if example in usable]

    valid_fraction = 0.0 if valid is not None else fractions[0]
    test_fraction = 0.0 if test is not None else fractions[1]
    if valid_fraction or test_fraction:
        splits = split_examples(
            kept(train),
            labels,
            valid_fraction=valid_fraction or 0.0,
            test_fraction=test_fraction,
            seed=seed,
        )
    else:
        splits = {"train": kept(train)}
    if valid is not None:
        splits["valid"] = kept(valid)
    if test is not None:
        splits["test"] = kept(test)
    if "valid" not in splits or not splits["valid"]:
        raise ClassifierDataError(
            "no validation examples: give --valid data or a valid fraction above 0"
        )
    empty = [label for label, n in class_counts(splits["train"], labels).items() if n == 0]
    if empty:
        raise ClassifierDataError(
            f"class(es) with no usable training example: {', '.join(empty)} (their files "
            "could not be read, or all went to the other splits); add examples"
        )
    return splits


def fit(
    data: str | os.PathLike[str],
    model: str | EmbeddingModel = "mn04_all_b_mel_avgs",
    *,
    out: str | os.PathLike[str] = "classifier",
    valid: str | os.PathLike[str] | None = None,
    test: str | os.PathLike[str] | None = None,
    valid_fraction: float = 0.2,
    test_fraction: float = 0.2,
    weights: str | os.PathLike[str] | None = None,
    features: str | None = None,
    grid: str = "default",
    grid_points: int = 8,
    params: Mapping[str, Sequence[object]] | None = None,
    seed: int = 42,
    device: str | None = None,
    batch_size: int = 8,
    cache: str | os.PathLike[str] | None = None,
    progress: Callable[[Path, float], None] | None = None,
) -> Classifier:
    """Train a classifier head on labelled audio and write it to ``out``; returns it loaded.

    ``data``: a folder of class sub-folders (``data/dog/a.wav``) or a CSV (``file,label[,label
    ...]``, or ``file,label,start,end`` in seconds for labelled segments). ``valid`` and
    ``test``: the same for the validation and test examples; without them a stratified split
    seeded by ``seed`` holds out ``valid_fraction`` and ``test_fraction`` (0: no test) of
    each class. ``model``: a configuration name (with ``weights`` and ``features``) or a
    built model. ``grid``, ``grid_points``, ``seed`` and ``params`` (hyper-parameter
    -> values, e.g. ``{"lr": [1e-3]}``) set the search as :func:`hear_mn.evaluate` does.
    Embeddings are cached in ``cache`` (default ``out/embeddings``) and reused by later runs.

    Writes ``out/head.pt`` (tensors only) and ``out/classifier.json`` (the card: model and
    weights SHA-256, labels, scores per split with class counts, grid point, data). Raises
    :class:`~hear_mn.classifier.data.ClassifierDataError` for unusable data before any audio
    is decoded (and when too few examples remain after unreadable files were left out).
    """
    start = time.perf_counter()
    train_data = _read(data, "training")
    others = {
        k: v for k, v in (("valid", _read(valid, "validation")), ("test", _read(test, "test"))) if v
    }
    labels = _check_vocabulary(train_data, others)
    multilabel = train_data.multilabel or any(d.multilabel for d in others.values())
    fractions = (float(valid_fraction), float(test_fraction))
    if not all(0.0 <= f < 1.0 for f in fractions) or sum(fractions) >= 1.0:
        raise ValueError(
            f"valid and test fractions must be in [0, 1) and sum below 1, got {fractions}"
        )
    everything = {e for d in (train_data, *others.values()) for e in d.examples}
    # Too few examples is an error before any compute.
    _splits(
        train_data, others.get("valid"), others.get("test"), everything, labels, fractions, seed
    )
    metadata = {"evaluation_params": {"task_specific_param_grid": dict(params or {})}}
    confs = make_grid_points(metadata, grid, grid_points, seed)
    out = check_writable(out)
    built = _built(model, weights, features, device)
    examples = [e for d in (train_data, *others.values()) for e in d.examples]
    embedded = embed_examples(
        examples,
        built,
        Path(cache) if cache else out / "embeddings",
        batch_size=batch_size,
        progress=progress,
    )
    if embedded.failures:
        logger.warning(
            "left out %d example(s) that could not be read or embedded (the card's "
            "data.left_out lists them), e.g. %s",
            len(embedded.failures),
            embedded.failures[0][1],
        )
    usable = set(embedded.embeddings)
    splits = _splits(
        train_data, others.get("valid"), others.get("test"), usable, labels, fractions, seed
    )
    rows = {name: _rows(split, embedded.embeddings, labels) for name, split in splits.items()}
    torch_device = built.device
    primary = make_score(primary_score(multilabel), labels)

    def validate(probabilities: np.ndarray, loss: float) -> tuple[float, object]:
        return next(iter(primary(probabilities, rows["valid"][1].numpy()).values())), None

    generator = torch.Generator(device=torch_device).manual_seed(seed)
    trained = train_grid(
        confs,
        (rows["train"][0].to(torch_device), rows["train"][1].to(torch_device)),
        (rows["valid"][0].to(torch_device), rows["valid"][1].to(torch_device)),
        multiclass=not multilabel,
        validate=validate,
        maximize=True,
        seed=generator,
    )
    best = trained[
        sorted(range(len(trained)), key=lambda i: trained[i].validation_score, reverse=True)[0]
    ]
    scores = {}
    for name, (x, y, _) in rows.items():
        probabilities = activation(best.logits(x.to(torch_device)), not multilabel).cpu().numpy()
        scores[name] = split_scores(probabilities, y.numpy(), labels, multilabel)
    card = _card(
        built,
        weights,
        features,
        labels,
        multilabel,
        splits,
        scores,
        best,
        trained,
        {"grid": grid, "grid_points": grid_points, "seed": seed, "params": dict(params or {})},
        embedded,
        train_data,
        others,
        time.perf_counter() - start,
    )
    head = head_from_mlp(best.model, multilabel)
    write_classifier_files(out, head, card)
    return Classifier(built, head, card, out)


def _card(
    model: EmbeddingModel,
    weights: object,
    features: str | None,
    labels: list[str],
    multilabel: bool,
    splits: dict[str, list[Example]],
    scores: dict[str, dict],
    best: TrainedModel,
    trained: list[TrainedModel],
    protocol: dict,
    embedded: object,
    train_data: LabelledData,
    others: dict[str, LabelledData],
    seconds: float,
) -> dict:
    from hear_mn.version import __version__

    durations = [embedded.seconds[e] for e in splits["train"]]
    sources = {"train": train_data.source, **{k: v.source for k, v in others.items()}}
    return {
        "format": CARD_FORMAT,
        "hear_mn_version": __version__,
        "labels": labels,
        "multilabel": multilabel,
        "output": "sigmoid per class" if multilabel else "softmax over the classes",
        "embedding": _embedding_record(model, weights, features),
        "head": {
            "input_size": int(model.scene_embedding_size),
            "grid_point": best.conf.as_dict(),
            "epoch": best.epoch,
            "validation_score": best.validation_score,
        },
        "scores": scores,
        "primary_score": primary_score(multilabel),
        "training": {
            **protocol,
            "selection": f"best validation {primary_score(multilabel)} over the grid points",
            "row_order": f"each split shuffled with random.Random({ROW_ORDER_SEED}) (heareval's layout order)",
            "grid_results": [
                {
                    "grid_point": t.conf.as_dict(),
                    "validation_score": t.validation_score,
                    "epoch": t.epoch,
                }
                for t in trained
            ],
            "seconds": round(seconds, 3),
        },
        "data": {
            "sources": sources,
            "split": "given" if others.get("valid") else "stratified",
            "examples": {name: len(rows) for name, rows in splits.items()},
            "per_class": {name: class_counts(rows, labels) for name, rows in splits.items()},
            "left_out": [{"example": e.describe(), "why": why} for e, why in embedded.failures]
            + [{"example": str(p), "why": why} for p, why in train_data.unreadable],
            "ignored": [{"file": str(p), "why": why} for p, why in train_data.ignored],
            "embeddings_computed": embedded.computed,
            "embeddings_reused": embedded.reused,
            "window_seconds": round(statistics.median(durations), 3),
        },
    }
