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

import importlib.util
from collections.abc import Callable, Mapping

import torch

from hear_mn.model import AutoEngine, EmbeddingModel
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
        """``model``'s graph without frontend in ONNX Runtime, as a function of that graph's
        input (log-mels); exported once, a session made per thread count it runs at."""
        from hear_mn.export import onnx_bytes

        ort = import_onnxruntime()
        if model.device.type != "cpu":
            raise ValueError(
                f"backend 'onnxruntime' runs on the CPU, but the model is on {model.device}; "
                "use backend='torch' on a GPU"
            )
        graph = onnx_bytes(model, frontend=False)
        sessions: dict[int, object] = {}

        def run(mels: torch.Tensor) -> torch.Tensor:
            # Unless threads were given, the session has torch's thread count of this call,
            # which hear_mn lowers on a busy machine (hear_mn.threads): one session per count.
            threads = self.threads or torch.get_num_threads()
            session = sessions.get(threads)
            if session is None:
                session = sessions[threads] = self._session(ort, graph, threads)
            array = mels.detach().to("cpu", torch.float32).contiguous().numpy()
            return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: array})[0])

        return run

    def _session(self, ort: object, graph: bytes, threads: int) -> object:
        """A CPU session of ``graph`` on ``threads`` intra-op threads, with :attr:`session_config`."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        for key, value in self.session_config.items():
            options.add_session_config_entry(key, value)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


# Making an ONNX Runtime engine is mostly exporting the network: one scene call in
# onnxruntime from a fresh model took 0.39 s for mn04 (1.0 M parameters), 0.37 s for mn10
# (4.9 M) and 3.1 s for mn40_ext (68 M) (benchmarks/results/auto*.json), about this much
# plus this much per parameter. Backend "auto" moves a job after that much time in torch.
EXPORT_FIXED_SECONDS = 0.4
EXPORT_SECONDS_PER_PARAMETER = 4.5e-8


def set_backend(model: EmbeddingModel, backend: object) -> EmbeddingModel:
    """Run ``model``'s network with ``backend``; returns it. "torch" and "onnxruntime" run
    every job; "auto" (the default) runs each kind of job in the engine measured faster for
    it (the model's :attr:`~hear_mn.model.EmbeddingModel.auto_backends`) where that engine is
    installed and the model is on the CPU: a live stream's windows from the start, other
    jobs once they have run in torch as long as making the engine takes (a short job never
    pays for it); the rest in torch."""
    check_backend(backend)
    if backend not in (*model.backends, "auto"):
        choices = " or ".join(repr(choice) for choice in model.backends)
        raise ValueError(
            f"backend {backend!r} does not run {model.name}; it runs with backend={choices}"
        )
    model.runtime = OnnxRuntime() if backend == "onnxruntime" else None
    model.backend = backend
    model.set_auto_engines(_auto_engines(model) if backend == "auto" else {})
    return model


def _auto_engines(model: EmbeddingModel) -> dict[str, AutoEngine]:
    """The jobs backend "auto" moves to ONNX Runtime, with when (see :func:`set_backend`)."""
    jobs = [job for job, name in model.auto_backends.items() if name == OnnxRuntime.name]
    if not jobs or not onnxruntime_installed():
        return {}
    shared = OnnxRuntime()  # one export, whichever job moves first
    export = EXPORT_FIXED_SECONDS + EXPORT_SECONDS_PER_PARAMETER * sum(
        parameter.numel() for parameter in model.parameters()
    )
    return {job: AutoEngine(shared, 0.0 if job == "live" else export) for job in jobs}


def onnxruntime_installed() -> bool:
    """Whether ONNX Runtime is installed here (found, not imported: importing it takes time
    that a job which never moves should not pay)."""
    try:
        return importlib.util.find_spec("onnxruntime") is not None
    except (ImportError, ValueError):  # ValueError: a module blocked by sys.modules[name] = None
        return False
