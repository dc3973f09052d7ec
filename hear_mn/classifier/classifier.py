"""A trained classifier in use: :func:`load_classifier` and :class:`Classifier`.

A classifier is an embedding model and the head trained on its scene embeddings. Loading
checks that the model is the one the head was trained on (configuration, settings and a
SHA-256 of the weights) and refuses another, saying which differs. Probabilities come from
the scene embedding of each clip (``predict``), of consecutive windows of a file
(``predict_file(window=...)``), or of a live signal's windows (``stream()``), which equal
``predict_file``'s windows for any chunking.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from hear_mn.classifier.head import HeadNetwork, read_card, read_head
from hear_mn.model import EmbeddingModel
from hear_mn.resume import INFORMATIONAL, output_settings
from hear_mn.windowing import score_windows, window_bounds

if TYPE_CHECKING:
    from hear_mn.classifier.stream import ClassifierStream

__all__ = [
    "Classifier",
    "ClassifierMismatchError",
    "FilePrediction",
    "load_classifier",
    "window_bounds",
]

# Settings recorded for information only, or per run: not compared when a model is checked.
_NOT_COMPARED = (*INFORMATIONAL, "timestamps", "weights_sha256", "input")


class ClassifierMismatchError(ValueError):
    """The embedding model given is not the one the head was trained on."""


@dataclass(frozen=True)
class FilePrediction:
    """A file's probabilities: one row per window (the whole file: one row), with each
    window's ``[start, end)`` in seconds."""

    path: Path
    duration: float
    bounds: np.ndarray  # (windows, 2) seconds
    probabilities: np.ndarray  # (windows, classes)


def _compared(settings: dict) -> dict:
    return {k: v for k, v in settings.items() if k not in _NOT_COMPARED}


def check_model(card: dict, model: EmbeddingModel) -> None:
    """Refuse ``model`` unless it is the configuration, settings and weights of the card."""
    trained = card["embedding"]
    given_settings = output_settings(model, False)
    given = _compared(given_settings)
    expected = _compared(trained["settings"])
    if given != expected:
        differing = sorted(k for k in {*given, *expected} if given.get(k) != expected.get(k))
        shown = "; ".join(
            f"{k}: trained {expected.get(k)!r}, given {given.get(k)!r}" for k in differing
        )
        raise ClassifierMismatchError(
            f"this head was trained on embeddings of {trained['model']!r}, not of the model "
            f"{model.name!r} given ({shown}); use {trained['model']!r} with the weights it was "
            "trained with, or fit a head for this model"
        )
    found = given_settings["weights_sha256"]
    if found != trained["weights_sha256"]:
        source = trained.get("weights_file") or "its released weights"
        raise ClassifierMismatchError(
            f"this head was trained on {trained['model']!r} with other weights than the model "
            f"given: trained with {source} (weights SHA-256 {trained['weights_sha256'][:16]}...), "
            f"given {getattr(model, 'weights_file', None) or 'unknown weights'} (SHA-256 "
            f"{found[:16]}...); load the model with the weights it was trained with "
            "(weights=..., --weights FILE)"
        )


def _build_model(
    card: dict, weights: str | os.PathLike[str] | None, device: str | None
) -> EmbeddingModel:
    from hear_mn.registry import create_model

    trained = card["embedding"]
    if weights is None and trained.get("weights_file"):
        weights = trained["weights_file"]
        if not Path(weights).is_file():
            raise ClassifierMismatchError(
                f"this head was trained on {trained['model']!r} with the weights file "
                f"{weights}, which is not there: pass that checkpoint (weights=..., --weights FILE)"
            )
    options = {"features": trained["features_option"]} if trained.get("features_option") else {}
    return create_model(trained["model"], weights=weights, device=device, **options)


class Classifier:
    """An embedding model and a trained head: ``labels`` (the classes, in the order of the
    probabilities' columns), ``predict``, ``predict_file`` and ``stream``; ``card``: the
    training record (scores, data, grid point)."""

    def __init__(self, model: EmbeddingModel, head: HeadNetwork, card: dict, folder: Path) -> None:
        check_model(card, model)
        self.model = model
        self.head = head.to(model.device).eval()
        self.card = card
        self.folder = folder

    @property
    def labels(self) -> list[str]:
        return list(self.card["labels"])

    @property
    def multilabel(self) -> bool:
        return bool(self.card["multilabel"])

    @property
    def sample_rate(self) -> int:
        return int(self.model.sample_rate)

    @property
    def window_seconds(self) -> float:
        """The default window of :meth:`stream`: the median duration of the training examples."""
        return float(self.card["data"]["window_seconds"])

    def probabilities(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The head on scene embeddings (rows, D) -> (rows, classes) float32."""
        with torch.inference_mode():
            return self.head(embeddings.to(self.model.device)).float()

    def predict(self, audio: object, *, sample_rate: int | None = None) -> torch.Tensor:
        """Class probabilities of each clip: ``audio`` (clips, samples) or (samples,) at the
        model's rate (``sample_rate``: another rate, resampled first) -> (clips, classes).
        Softmax over the classes, or for a multi-label head one sigmoid per class."""
        return self.probabilities(self.model.scene_embeddings(audio, sample_rate=sample_rate))

    def predict_signal(
        self, audio: np.ndarray, window: float | None = None, batch_size: int = 8
    ) -> tuple[np.ndarray, np.ndarray]:
        """One signal (samples,) at the model's rate: ``(bounds (windows, 2) seconds,
        probabilities (windows, classes))`` for consecutive windows of ``window`` seconds
        (None: the whole signal). Equal-length windows share forward passes."""
        rate = self.sample_rate
        size = max(1, round(window * rate)) if window else None
        bounds = window_bounds(len(audio), size)
        rows = score_windows(
            audio,
            bounds,
            batch_size,
            lambda batch: self.predict(torch.from_numpy(batch)).cpu().numpy(),
        )
        seconds = np.asarray(bounds, dtype=np.float64).reshape(-1, 2) / rate
        return seconds, np.stack(rows)

    def predict_file(
        self, path: str | os.PathLike[str], *, window: float | None = None, batch_size: int = 8
    ) -> FilePrediction:
        """A file's probabilities (decoded and resampled to the model's rate), whole or per
        window of ``window`` seconds; raises :class:`~hear_mn.audio_io.AudioReadError`."""
        from hear_mn.audio_io import load_audio

        audio = load_audio(path, self.sample_rate)
        bounds, probabilities = self.predict_signal(audio, window, batch_size)
        return FilePrediction(Path(path), len(audio) / self.sample_rate, bounds, probabilities)

    def stream(
        self, window: float | None = None, *, sample_rate: int | None = None
    ) -> ClassifierStream:
        """Classify a live signal window by window (see :class:`ClassifierStream`);
        ``window``: seconds (default :attr:`window_seconds`)."""
        from hear_mn.classifier.stream import ClassifierStream

        return ClassifierStream(self, window or self.window_seconds, sample_rate=sample_rate)

    def __repr__(self) -> str:
        return (
            f"Classifier({self.card['embedding']['model']!r}, labels={self.labels!r}, "
            f"folder={str(self.folder)!r})"
        )


def load_classifier(
    path: str | os.PathLike[str],
    *,
    model: EmbeddingModel | None = None,
    weights: str | os.PathLike[str] | None = None,
    device: str | None = None,
) -> Classifier:
    """The classifier ``hear-mn fit`` (:func:`hear_mn.fit`) wrote to the folder ``path``.

    The embedding model is built from the card (its configuration, and the weights file it
    was trained with, or the released weights), or ``weights`` is loaded, or ``model`` is
    used as given; in every case it must be the model the head was trained on
    (:class:`ClassifierMismatchError` otherwise, naming what differs). The head is read as
    plain tensors (``torch.load(weights_only=True)``) and checked against the card's SHA-256.
    """
    folder, card = read_card(path)
    head = read_head(folder, card)
    if model is None:
        model = _build_model(card, weights, device)
    elif device is not None:
        model = model.to(device)
    return Classifier(model, head, card, folder)
