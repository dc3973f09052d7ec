"""Your own classifier on hear-mn embeddings: :func:`fit` trains a head on labelled audio with
the HEAR evaluator's trainer; :func:`load_classifier` gives a :class:`Classifier` that
predicts per clip, per window of a file, or on a live stream (docs/classifier.md).

``data`` (labelled folders and CSVs, the stratified split), ``features`` (the cached
embeddings), ``head`` (the head module and its files), ``training`` (fit), ``report``
(scores for the card), ``classifier`` (loading, checks, prediction), ``stream`` (live
audio), ``corpus`` (prediction over many files, locally or on Ray), ``ray_windows``
(per-window prediction on Ray actors).
"""

from __future__ import annotations

from hear_mn.classifier.classifier import (
    Classifier,
    ClassifierMismatchError,
    FilePrediction,
    load_classifier,
)
from hear_mn.classifier.data import ClassifierDataError
from hear_mn.classifier.head import ClassifierFileError
from hear_mn.classifier.stream import ClassifierStream
from hear_mn.classifier.training import fit

__all__ = [
    "Classifier",
    "ClassifierDataError",
    "ClassifierFileError",
    "ClassifierMismatchError",
    "ClassifierStream",
    "FilePrediction",
    "fit",
    "load_classifier",
]
