"""ONNX Runtime as the engine of a model's network after its frontend
(``backend="onnxruntime"``), for the models whose class lists it in
:attr:`~hear_mn.model.EmbeddingModel.backends`.

The model's frontend, windowing, batching and streaming stay in torch; the model hands each
batch of its frontend's output (log-mels) to its :attr:`~hear_mn.model.EmbeddingModel.runtime`,
an ONNX Runtime session of the model's own graph (:func:`hear_mn.export.onnx_bytes` with
``frontend=False``, as its family exports it), made from its current weights on first use.
The session's threads do not spin while waiting: spinning threads starve the torch frontend
that runs between two batches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from hear_mn.model import EmbeddingModel
from hear_mn.run_options import check_backend

ONNX_EXTRA = "pip install 'hear-mn[onnx]' (or pip install onnxruntime onnx)"


def import_onnxruntime() -> object:
    """The onnxruntime module, or an ImportError that says how to install it."""
    try:
        import onnxruntime
    except ImportError as error:
        raise ImportError(f"backend 'onnxruntime' needs ONNX Runtime: {ONNX_EXTRA}") from error
    return onnxruntime


# Measured (benchmarks/bench_backends.py --ort-config): threads that spin after a run starve
# the torch frontend between batches; stopping the spin only after each run
# ("session.force_spinning_stop") was still slower than never spinning.
DEFAULT_SESSION_CONFIG: dict[str, str] = {"session.intra_op.allow_spinning": "0"}


class OnnxRuntime:
    """Runs a model's network after its frontend in an ONNX Runtime CPU session of
    ``threads`` intra-op threads (None: torch's thread count when the session is made).
    ``session_config`` entries (ONNX Runtime's session config keys, e.g.
    ``{"session.intra_op.allow_spinning": "1"}``) are added to, and override,
    :data:`DEFAULT_SESSION_CONFIG`."""

    name = "onnxruntime"

    def __init__(
        self, threads: int | None = None, session_config: Mapping[str, str] | None = None
    ) -> None:
        import_onnxruntime()
        self.threads = threads
        self.session_config = {**DEFAULT_SESSION_CONFIG, **(session_config or {})}
        for key, value in self.session_config.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(
                    f"session_config maps ONNX Runtime config keys to strings, got {key!r}: "
                    f"{value!r}"
                )

    def compile(self, model: EmbeddingModel) -> Callable[[torch.Tensor], torch.Tensor]:
        """An ONNX Runtime session of ``model``'s graph without frontend, as a function of
        that graph's input (log-mels)."""
        from hear_mn.export import onnx_bytes

        ort = import_onnxruntime()
        if model.device.type != "cpu":
            raise ValueError(
                f"backend 'onnxruntime' runs on the CPU, but the model is on {model.device}; "
                "use backend='torch' on a GPU"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        for key, value in self.session_config.items():
            options.add_session_config_entry(key, value)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        graph = onnx_bytes(model, frontend=False)
        session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name

        def run(mels: torch.Tensor) -> torch.Tensor:
            inputs = {input_name: mels.detach().to("cpu", torch.float32).contiguous().numpy()}
            return torch.from_numpy(session.run(None, inputs)[0])

        return run


def set_backend(model: EmbeddingModel, backend: object) -> EmbeddingModel:
    """Run ``model``'s network with ``backend``; returns it. "torch" and "onnxruntime" run
    every job; "auto" (the default) runs batch jobs in torch and lets each live stream take
    the engine measured faster for single windows (:func:`choose_stream_runtime`)."""
    check_backend(backend)
    if backend not in (*model.backends, "auto"):
        choices = " or ".join(repr(choice) for choice in model.backends)
        raise ValueError(
            f"backend {backend!r} does not run {model.name}; it runs with backend={choices}"
        )
    model.runtime = OnnxRuntime() if backend == "onnxruntime" else None
    model.stream_runtime = None
    model.backend = backend
    return model


def onnxruntime_installed() -> bool:
    """Whether ONNX Runtime can be imported here."""
    try:
        import_onnxruntime()
    except ImportError:
        return False
    return True


def choose_stream_runtime(model: EmbeddingModel) -> None:
    """Under backend "auto", give a live stream's windows the model's
    :attr:`~hear_mn.model.EmbeddingModel.stream_backend` (ONNX Runtime for the MobileNets:
    0.6 ms per window against torch's 3 ms, see docs/speed.md) where it is installed and the
    model is on the CPU; else they run as batch jobs do (torch). A session once made is kept
    (the model drops its graph when the weights change)."""
    wanted = (
        model.backend == "auto"
        and model.stream_backend == "onnxruntime"
        and model.device.type == "cpu"
        and onnxruntime_installed()
    )
    if not wanted:
        model.stream_runtime = None
    elif not isinstance(model.stream_runtime, OnnxRuntime):
        model.stream_runtime = OnnxRuntime()
