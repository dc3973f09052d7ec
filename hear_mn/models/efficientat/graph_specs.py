"""The ONNX exports of the MobileNets and DyMNs (:class:`~hear_mn.export.graph.GraphSpec`):
the same input, output, examples and metadata for both, each with its own graph
(:mod:`~hear_mn.models.efficientat.mobilenet_graph`,
:mod:`~hear_mn.models.efficientat.dymn_graph`). The families hand them to
:func:`hear_mn.export.spec.graph_spec` (``Family.export_graph``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from hear_mn.export.graph import GraphSpec, verify_audio
from hear_mn.export.spec import graph_metadata, reference_on, window_entries
from hear_mn.models.efficientat.block_table import (
    DYMN_FAMILY,
    MOBILENET_FAMILY,
    FeatureInfo,
    dymn_feature_info,
    feature_info,
)
from hear_mn.models.efficientat.dymn_graph import DyMNGraph
from hear_mn.models.efficientat.dymn_network import DyMNEmbedder
from hear_mn.models.efficientat.efficientat_embedder import EfficientATEmbedder, MobileNetEmbedder
from hear_mn.models.efficientat.feature_taps import feature_sizes
from hear_mn.models.efficientat.mobilenet_graph import MobileNetGraph

# Default verification tolerance of DyMN files. DyMN's dynamic layers (kernel attention,
# Dy-ReLU-B, gates) can make a network ill-conditioned in float32: with the random weights
# of ../shared/fixtures/dymn, torch itself is up to 4.8e-4 (relative) from a float64 run on
# the 1- and 300-sample examples (dymn10; 1.2e-5 on the 20000-sample one), and the ONNX
# graph, as close to float64, up to 1.0e-3 from torch. On the fixtures' audio the files
# agree with the reference within 1e-5. A wrong graph is off by O(1).
DYMN_TOLERANCE = 2e-3


def efficientat_graph_spec(
    model: EfficientATEmbedder,
    frontend: bool,
    family: str,
    info: FeatureInfo,
    build: Callable[[], nn.Module],
    tolerance: float | None = None,
) -> GraphSpec:
    """The export of a MobileNet or a DyMN (``build`` makes its graph, ``info`` gives its
    taps' shapes): the same input, output, examples and metadata for both families."""
    audio = verify_audio(model.sample_rate)
    if frontend:
        name, axes, examples = "audio", {0: "batch", 1: "samples"}, tuple(audio)
        layout = f"(batch, samples) float32 audio at {model.sample_rate} Hz"
        reference = reference_on(model, model)  # forward: one pass, as for clips up to 10 s
    else:
        name, axes = "log_mels", {0: "batch", 2: "frames"}
        with torch.no_grad():
            examples = tuple(model.frontend(x.to(model.device)).cpu() for x in audio)
        layout = "(batch, n_mels, frames) float32 normalised log-mel (the model's frontend)"
        reference = reference_on(model, model.embed_mels)
    return GraphSpec(
        build=build,
        input_name=name,
        input_axes=axes,
        output_axes={0: "batch"},
        examples=examples,
        reference=reference,
        metadata=graph_metadata(
            model,
            frontend,
            family=family,
            **window_entries(model.windows.size, model.windows.hop, model.sample_rate),
            embedding_size=model.scene_embedding_size,
            features=",".join(model.features),
            feature_sizes=feature_sizes(model.features, info, model.pooling),
            pooling=model.pooling,
            n_mels=model.frontend.n_mels,
            stft_hop_samples=model.frontend.hop_length,
            input_name=name,
            input_layout=layout,
            output_layout="(batch, embedding_size) float32: the scene embedding of each clip "
            "(one pass over the input; HEAR's timestamp embeddings are this on each window)",
        ),
        tolerance=tolerance,
    )


def mobilenet_graph_spec(model: MobileNetEmbedder, frontend: bool) -> GraphSpec:
    """A MobileNet's export, with or without its log-mel frontend."""
    backbone = model.backbone
    info = feature_info(backbone.width, model.frontend.n_mels, backbone.strides, backbone.head)
    build = partial(MobileNetGraph, model, frontend=frontend)
    return efficientat_graph_spec(model, frontend, MOBILENET_FAMILY, info, build)


def dymn_graph_spec(model: DyMNEmbedder, frontend: bool) -> GraphSpec:
    """A DyMN's export, with or without its log-mel frontend (:data:`DYMN_TOLERANCE`)."""
    info = dymn_feature_info(model.backbone.width, model.frontend.n_mels)
    build = partial(DyMNGraph, model, frontend=frontend)
    return efficientat_graph_spec(model, frontend, DYMN_FAMILY, info, build, DYMN_TOLERANCE)
