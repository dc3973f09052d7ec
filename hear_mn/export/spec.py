"""What an ONNX file of a model holds: the traceable module, its input and output, the
metadata that describes it, and how to check it against the torch model.

One :class:`GraphSpec` per (family, frontend) pair; :func:`graph_spec` picks it. The ONNX
writing itself (:mod:`hear_mn.export.onnx_export`) knows no family.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from hear_mn.model import EmbeddingModel
from hear_mn.models.audiomlp.architectures import CHUNK_SAMPLES, FRAMES_PER_CHUNK, HOP, N_FFT
from hear_mn.models.audiomlp.network import AudioMLPModel
from hear_mn.models.audiomlp.onnx_graph import AudioMLPGraph
from hear_mn.models.efficientat.block_table import FeatureInfo, dymn_feature_info, feature_info
from hear_mn.models.efficientat.dymn_graph import DyMNGraph
from hear_mn.models.efficientat.dymn_network import DyMNEmbedder
from hear_mn.models.efficientat.embedders import EfficientATEmbedder, MobileNetEmbedder
from hear_mn.models.efficientat.feature_taps import feature_sizes
from hear_mn.models.efficientat.mobilenet_graph import MobileNetGraph

OUTPUT_NAME = "embeddings"
# Lengths (samples) of the fixed random signals an export is checked on: one sample, one
# shorter than the STFT's mirror padding, and a longer one.
VERIFY_LENGTHS = (1, 300, 20_000)
VERIFY_SEED = 20240613


@dataclass(frozen=True)
class GraphSpec:
    """A model's export: ``build()`` makes the module that maps the input ``input_name`` to
    the output, with the dynamic axes ``input_axes`` and ``output_axes`` (index: name);
    ``examples`` are inputs on which ``reference`` (the torch model itself) gives what the
    graph must give; ``metadata`` describes the file; ``tolerance``, where set, replaces the
    library's default verification tolerance for this family's files; ``output_name``: the
    graph's output (``embeddings``, or ``probabilities`` for a classifier)."""

    build: Callable[[], nn.Module]
    input_name: str
    input_axes: dict[int, str]
    output_axes: dict[int, str]
    examples: tuple[torch.Tensor, ...]
    reference: Callable[[torch.Tensor], torch.Tensor]
    metadata: dict[str, str]
    tolerance: float | None = None
    output_name: str = OUTPUT_NAME


# Default verification tolerance of DyMN files. DyMN's dynamic layers (kernel attention,
# Dy-ReLU-B, gates) can make a network ill-conditioned in float32: with the random weights
# of ../shared/fixtures/dymn, torch itself is up to 4.8e-4 (relative) from a float64 run on
# the 1- and 300-sample examples (dymn10; 1.2e-5 on the 20000-sample one), and the ONNX
# graph, as close to float64, up to 1.0e-3 from torch. On the fixtures' audio the files
# agree with the reference within 1e-5. A wrong graph is off by O(1).
DYMN_TOLERANCE = 2e-3


def verify_audio(sample_rate: int) -> list[torch.Tensor]:
    """Fixed pseudo-random test signals (2, n) for each of :data:`VERIFY_LENGTHS`: noise
    plus a tone, within [-1, 1]."""
    generator = torch.Generator().manual_seed(VERIFY_SEED)
    signals = []
    for n in VERIFY_LENGTHS:
        t = torch.arange(n, dtype=torch.float32) / sample_rate
        tone = 0.5 * torch.sin(2 * torch.pi * 440.0 * t)
        signals.append(tone + 0.2 * torch.randn(2, n, generator=generator))
    return signals


def _on_model(
    model: EmbeddingModel, run: Callable[[torch.Tensor], torch.Tensor]
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``run`` on the model's device without autograd, returning a float32 CPU tensor."""

    def reference(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return run(x.to(model.device)).float().cpu()

    return reference


def _metadata(model: EmbeddingModel, frontend: bool, **entries: object) -> dict[str, str]:
    from hear_mn.version import __version__

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


def _window_entries(window: int, hop: int, sample_rate: int) -> dict[str, float | int]:
    """The timestamp window and hop, in milliseconds (as ``load_model`` takes them) and in
    samples at the model's rate, under keys that say which."""
    return {
        "timestamp_window_ms": 1000.0 * window / sample_rate,
        "timestamp_hop_ms": 1000.0 * hop / sample_rate,
        "timestamp_window_samples": window,
        "timestamp_hop_samples": hop,
    }


def _efficientat_spec(
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
        reference = _on_model(model, model)  # forward: one pass, as for clips up to 10 s
    else:
        name, axes = "log_mels", {0: "batch", 2: "frames"}
        with torch.no_grad():
            examples = tuple(model.frontend(x.to(model.device)).cpu() for x in audio)
        layout = "(batch, n_mels, frames) float32 normalised log-mel (the model's frontend)"
        reference = _on_model(model, model.embed_mels)
    return GraphSpec(
        build=build,
        input_name=name,
        input_axes=axes,
        output_axes={0: "batch"},
        examples=examples,
        reference=reference,
        metadata=_metadata(
            model,
            frontend,
            family=family,
            **_window_entries(model.windows.size, model.windows.hop, model.sample_rate),
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


def _audiomlp_spec(model: AudioMLPModel, frontend: bool) -> GraphSpec:
    arch = model.arch
    if frontend:
        name, axes = "audio", {0: "batch", 1: "samples"}
        examples = tuple(verify_audio(model.sample_rate))
        layout = f"(batch, samples) float32 audio at {model.sample_rate} Hz"
        output_axes = {0: "batch"}
        output_layout = "(batch, scene_embedding_size) float32 scene embeddings"
        reference = _on_model(model, model)  # forward: the bare scene embeddings
        size = model.scene_embedding_size
    else:
        name, axes = "features", {0: "chunks"}
        generator = torch.Generator().manual_seed(VERIFY_SEED)
        chunks = [0.2 * torch.randn(n, CHUNK_SAMPLES, generator=generator) for n in (1, 3)]
        with torch.no_grad():
            examples = tuple(model.frontend(c.to(model.device)).cpu() for c in chunks)
        layout = (
            f"(chunks, {arch.n_mels}, {FRAMES_PER_CHUNK}) float32 {arch.frontend} features of "
            f"1 s chunks (the model's frontend)"
        )
        output_axes = {0: "chunks"}
        output_layout = f"(chunks, {FRAMES_PER_CHUNK}, timestamp_embedding_size) float32"
        reference = _on_model(model, model.encoder)
        size = model.timestamp_embedding_size
    return GraphSpec(
        build=lambda: AudioMLPGraph(model, frontend=frontend),
        input_name=name,
        input_axes=axes,
        output_axes=output_axes,
        examples=examples,
        reference=reference,
        metadata=_metadata(
            model,
            frontend,
            family="audiomlp",
            **_window_entries(N_FFT, HOP, model.sample_rate),
            embedding_size=size,
            features="",
            feature_sizes=[size],
            pooling="",
            n_mels=arch.n_mels,
            stft_hop_samples=HOP,
            input_name=name,
            input_layout=layout,
            output_layout=output_layout,
        ),
    )


def _mobilenet_spec(model: MobileNetEmbedder, frontend: bool) -> GraphSpec:
    backbone = model.backbone
    info = feature_info(backbone.width, model.frontend.n_mels, backbone.strides, backbone.head)
    build = partial(MobileNetGraph, model, frontend=frontend)
    return _efficientat_spec(model, frontend, "mobilenet", info, build)


def _dymn_spec(model: DyMNEmbedder, frontend: bool) -> GraphSpec:
    info = dymn_feature_info(model.backbone.width, model.frontend.n_mels)
    build = partial(DyMNGraph, model, frontend=frontend)
    return _efficientat_spec(model, frontend, "dymn", info, build, DYMN_TOLERANCE)


def graph_spec(model: EmbeddingModel, frontend: bool) -> GraphSpec:
    """The export of ``model`` with or without its frontend; a TypeError for other models."""
    if isinstance(model, MobileNetEmbedder):
        return _mobilenet_spec(model, frontend)
    if isinstance(model, DyMNEmbedder):
        return _dymn_spec(model, frontend)
    if isinstance(model, AudioMLPModel):
        return _audiomlp_spec(model, frontend)
    if isinstance(model, EmbeddingModel):
        raise TypeError(
            f"{type(model).__name__} ({model.name}) cannot be exported to ONNX: only the "
            "EfficientAT MobileNets, DyMNs and Audio-MLP have an export"
        )
    raise TypeError(
        "model must be an EmbeddingModel (from hear_mn.create_model or a HEAR module's "
        f"load_model), got {type(model).__name__}"
    )
