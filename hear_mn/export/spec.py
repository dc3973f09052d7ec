"""What an ONNX file of a model holds, asked of the model's family: :func:`graph_spec` hands
the model to its registered :class:`~hear_mn.config.Family` (``Family.export_graph``), which
builds the :class:`~hear_mn.export.graph.GraphSpec` in its own folder with the helpers
below (the reference run, the metadata every file carries). The ONNX writing itself
(:mod:`hear_mn.export.onnx_export`) knows no family either.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import torch

from hear_mn.config import FAMILIES
from hear_mn.export.graph import OUTPUT_NAME, GraphSpec
from hear_mn.model import EmbeddingModel
from hear_mn.version import __version__


def reference_on(
    model: EmbeddingModel, run: Callable[[torch.Tensor], torch.Tensor]
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``run`` on the model's device without autograd, returning a float32 CPU tensor: what
    an exported graph must give on the same input."""

    def reference(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return run(x.to(model.device)).float().cpu()

    return reference


def graph_metadata(model: EmbeddingModel, frontend: bool, **entries: object) -> dict[str, str]:
    """The metadata of an exported file: what every file records about ``model`` (name,
    version, weights, rate, settings) plus the family's ``entries``, as strings (JSON for
    what is not one)."""
    common = {
        "model": model.name,
        "hear_mn_version": __version__,
        "weights_file": model.weights_file,
        "sample_rate": model.sample_rate,
        "frontend": "true" if frontend else "false",
        "output_name": OUTPUT_NAME,
        "settings": json.dumps(model.output_settings(), sort_keys=True),
    }
    return {
        key: value if isinstance(value, str) else json.dumps(value)
        for key, value in {**common, **entries}.items()
    }


def window_entries(window: int, hop: int, sample_rate: int) -> dict[str, float | int]:
    """The timestamp window and hop, in milliseconds (as ``load_model`` takes them) and in
    samples at the model's rate, under keys that say which."""
    return {
        "timestamp_window_ms": 1000.0 * window / sample_rate,
        "timestamp_hop_ms": 1000.0 * hop / sample_rate,
        "timestamp_window_samples": window,
        "timestamp_hop_samples": hop,
    }


def graph_spec(model: EmbeddingModel, frontend: bool) -> GraphSpec:
    """The export of ``model`` with or without its frontend, as its family builds it; a
    TypeError for what is not a model, or a model whose family has no export."""
    if not isinstance(model, EmbeddingModel):
        raise TypeError(
            "model must be an EmbeddingModel (from hear_mn.create_model or a HEAR module's "
            f"load_model), got {type(model).__name__}"
        )
    family = FAMILIES.get(model.family)
    if family is None:
        raise TypeError(
            f"{type(model).__name__} ({model.name}) cannot be exported to ONNX: its family "
            f"{model.family!r} is not registered"
        )
    return family.export_graph(model, frontend)
