"""A classifier as one ONNX file: the embedding model's graph (frontend included) and the head.

Input ``audio`` (batch, samples) float32 at the model's rate, output ``probabilities``
(batch, classes): the graph of :func:`hear_mn.export.export_onnx` (one pass over each input:
for the MobileNets the scene embedding of clips up to 10 s) followed by the head, softmax
or sigmoid included. The file's metadata add the labels in output order, whether the head is
multi-label, the classifier's window and the SHA-256s of the head and of the embedding
model's weights. Before writing, onnxruntime runs it on the export's fixed random signals
and it must agree with the torch classifier (``check_graph``); nothing is written otherwise.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from hear_mn.export.graph import GraphSpec
from hear_mn.export.onnx_export import check_graph, export_graph
from hear_mn.export.spec import graph_spec
from hear_mn.model import EmbeddingModel

__all__ = [
    "PROBABILITIES",
    "classifier_graph_spec",
    "export_classifier_onnx",
    "verify_classifier_onnx",
]

PROBABILITIES = "probabilities"


class ExportableClassifier(Protocol):
    """What the export needs of a :class:`hear_mn.classifier.Classifier`."""

    model: EmbeddingModel
    head: nn.Module
    card: dict


class ClassifierGraph(nn.Module):
    """Audio -> the embedding graph -> the head's probabilities."""

    def __init__(self, embedding_graph: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.embedding_graph = embedding_graph
        self.head = copy.deepcopy(head)  # the exporter's mode changes stay off the classifier's
        self.eval()

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding_graph(audio))


def classifier_graph_spec(classifier: ExportableClassifier) -> GraphSpec:
    """The export of ``classifier``: its model's graph with the frontend, then its head."""
    model, head, card = classifier.model, classifier.head, classifier.card
    base = graph_spec(model, True)

    def reference(audio: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return head(base.reference(audio).to(model.device)).float().cpu()

    classes = len(card["labels"])
    window = round(float(card["data"]["window_seconds"]) * model.sample_rate)
    metadata = {
        **base.metadata,
        "classifier": "true",
        "labels": json.dumps(card["labels"]),
        "multilabel": "true" if card["multilabel"] else "false",
        "classes": str(classes),
        "classifier_window": str(max(1, window)),
        "head_sha256": card["head"]["sha256"],
        "weights_sha256": card["embedding"]["weights_sha256"],
        "output_name": PROBABILITIES,
        "output_layout": f"(batch, {classes}) float32 class probabilities "
        + ("(a sigmoid per class)" if card["multilabel"] else "(softmax over the classes)")
        + " of each clip, columns in the order of the labels entry",
    }
    return GraphSpec(
        build=lambda: ClassifierGraph(base.build(), head),
        input_name=base.input_name,
        input_axes=base.input_axes,
        output_axes={0: "batch"},
        examples=base.examples,
        reference=reference,
        metadata=metadata,
        tolerance=base.tolerance,
        output_name=PROBABILITIES,
    )


def export_classifier_onnx(
    classifier: ExportableClassifier,
    path: str | os.PathLike[str],
    *,
    opset: int = 17,
    verify: bool = True,
    tolerance: float | None = None,
) -> Path:
    """Write ``classifier`` (embedding model + head) to the ONNX file ``path``, checked with
    onnxruntime first unless ``verify`` is False (as :func:`hear_mn.export.export_onnx`)."""
    name = f"{classifier.model.name} classifier"
    spec = classifier_graph_spec(classifier)
    return export_graph(spec, path, name=name, opset=opset, verify=verify, tolerance=tolerance)


def verify_classifier_onnx(
    classifier: ExportableClassifier,
    onnx_model: bytes | str | os.PathLike[str],
    *,
    tolerance: float | None = None,
) -> float:
    """max|onnx - torch| / max|torch| of a classifier's ONNX file on the export's fixed
    signals; raises :class:`~hear_mn.export.OnnxVerificationError` above ``tolerance``."""
    spec = classifier_graph_spec(classifier)
    return check_graph(
        spec, onnx_model, name=f"{classifier.model.name} classifier", tolerance=tolerance
    )
