"""The model base shared by every family: input checks, devices, precision, no-grad.

A model family (MobileNets, Audio-MLP) subclasses :class:`EmbeddingModel` and implements
two methods on a checked float32 batch that already sits on the model's device:
``_timestamp_embeddings`` and ``_scene_embeddings``. Everything a HEAR caller relies on
(shape and dtype checks, moving audio to the model, float32 output, inference mode,
optional fp16 autocast on CUDA) is done here once. The HEAR module functions are in
:mod:`hear_mn.hear`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch

from hear_mn.audio import as_audio_batch, check_sample_rate, resample
from hear_mn.threads import busy_machine_threads

logger = logging.getLogger("hear_mn")

# The kinds of work a model's network does, each of which backend "auto" may give its own
# engine: batch timestamp windows, scene passes (clips, 10 s windows of long ones, scene
# streams) and the windows of a live stream (:func:`hear_mn.stream`).
JOBS: tuple[str, ...] = ("timestamps", "scene", "live")


class Runtime(Protocol):
    """An engine that runs a model's network after its frontend (see
    :attr:`EmbeddingModel.runtime`), e.g. :class:`hear_mn.engines.ort.OnnxRuntime`."""

    name: str

    def compile(self, model: EmbeddingModel) -> Callable[[torch.Tensor], torch.Tensor]:
        """From the model's current weights: a function of the input of the model's export
        without frontend (e.g. log-mels) -> its output, on the device of its input."""


class Stream(Protocol):
    """What :meth:`EmbeddingModel.stream` returns: the state of one signal's streaming
    embeddings (:class:`hear_mn.streaming.EmbeddingStream`, which imports this module)."""

    live: bool

    def push(self, chunk: object) -> tuple[torch.Tensor, torch.Tensor]:
        """Add samples: the embeddings and timestamps of the windows they complete."""

    def close(self) -> tuple[torch.Tensor, torch.Tensor]:
        """End of signal: the embeddings and timestamps of the remaining windows."""

    def output_settings(self) -> dict[str, object]:
        """The settings the outputs were made with, the engine of the windows included."""


@dataclass
class AutoEngine:
    """The engine backend "auto" moves one kind of job to: ``runtime``, once that job has
    spent ``after_seconds`` in torch (``spent`` so far). Making an engine costs about one
    export of the network (0.4 s for mn10, 3.1 s for mn40_ext), so a short job stays in
    torch and a long one pays that at most once more than it would with the right guess."""

    runtime: Runtime
    after_seconds: float
    spent: float = 0.0


class EmbeddingModel(torch.nn.Module):
    """A HEAR model: ``sample_rate``, ``scene_embedding_size``, ``timestamp_embedding_size``.

    A family may run a copy of its network rewritten for inference (BatchNorm folded, in
    place) when autograd is off; with autograd on the modules run as built.
    ``autocast`` runs the network under fp16 autocast on CUDA (as the EfficientAT reference
    did); it is off by default so that CPU and CUDA give the same float32 numbers. Outputs
    are float32 either way.

    ``family`` names the registered family (:data:`hear_mn.config.FAMILIES`) that builds
    the class: export (:mod:`hear_mn.export`) asks that family for the model's graph.
    ``backends`` are the engines that can run the network (:mod:`hear_mn.engines`): a family
    whose model hands its frontend's output to :attr:`runtime` adds "onnxruntime".
    ``backend`` is the one asked for (:func:`hear_mn.engines.ort.set_backend`): "auto" (the
    default) lets each kind of job (:data:`JOBS`) take the engine measured faster for it
    (:attr:`auto_backends`, :meth:`runtime_for`).
    """

    family: ClassVar[str] = ""
    backends: ClassVar[tuple[str, ...]] = ("torch",)
    backend: str = "auto"
    # The engine "auto" gives each kind of job (JOBS), where it is installed and the model is
    # on the CPU: the one measured faster for that job; jobs not named run in torch.
    auto_backends: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self,
        *,
        name: str,
        sample_rate: int,
        scene_embedding_size: int,
        timestamp_embedding_size: int,
        autocast: bool = False,
    ) -> None:
        super().__init__()
        self.name = name
        self.sample_rate = sample_rate
        self.scene_embedding_size = scene_embedding_size
        self.timestamp_embedding_size = timestamp_embedding_size
        self.autocast = autocast
        # The file the weights were loaded from ("" while they are random); set on loading.
        self.weights_file = ""

    @property
    def device(self) -> torch.device:
        """The device the model's parameters live on."""
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")

    def precision(self) -> contextlib.AbstractContextManager:
        """The numeric context of a forward pass: fp16 autocast on CUDA when ``autocast``."""
        if self.autocast and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def timestamp_embeddings(
        self,
        audio: object,
        window_size: int | None = None,
        hop: int | None = None,
        pad: int | None = None,
        *,
        sample_rate: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings at regular timestamps: ((n_sounds, n_timestamps, D), (n_sounds, n_timestamps) ms).

        ``window_size``, ``hop`` and ``pad`` (samples at the model's rate) change the
        timestamp windows where the family allows it (see :meth:`timestamp_windows`).
        ``sample_rate``: the rate of ``audio`` when it is not the model's; it is resampled
        with soxr first.
        """
        windows = None
        if (window_size, hop, pad) != (None, None, None):
            windows = self.timestamp_windows(window_size, hop, pad)
        with busy_machine_threads():  # the checks of a long input are parallel work too
            batch = self._audio_batch(audio, sample_rate)
            with torch.inference_mode(), self.evaluating(), self.precision():
                if windows is None:
                    embeddings, timestamps = self._timestamp_embeddings(batch)
                else:
                    embeddings, timestamps = self._timestamp_embeddings(batch, windows)
            require_finite(embeddings, "timestamp embeddings", peak_of(batch))
        return embeddings.float(), timestamps.float()

    def scene_embeddings(self, audio: object, *, sample_rate: int | None = None) -> torch.Tensor:
        """One embedding per clip: (n_sounds, scene_embedding_size), float32.

        ``sample_rate``: the rate of ``audio`` when it is not the model's (resampled first).
        """
        with busy_machine_threads():
            batch = self._audio_batch(audio, sample_rate)
            with torch.inference_mode(), self.evaluating(), self.precision():
                embeddings = self._scene_embeddings(batch)
            require_finite(embeddings, "scene embeddings", peak_of(batch))
        return embeddings.float()

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """Eval mode for the duration (BatchNorm's running statistics, no dropout), whatever
        mode the model is in: embeddings never depend on ``train()`` and never change a
        buffer. Each module's mode is restored afterwards, through ``train()`` so that a
        family drops what it made in eval mode (e.g. a copy with BatchNorm folded)."""
        if not any(module.training for module in self.modules()):
            yield
            return
        modes = {module: module.training for module in self.modules()}
        self.eval()
        try:
            yield
        finally:
            self.train()
            for module, mode in modes.items():
                module.training = mode

    def _audio_batch(self, audio: object, sample_rate: int | None) -> torch.Tensor:
        """The checked batch on the model's device, at the model's rate."""
        self.require_float32()
        if sample_rate is None or check_sample_rate(sample_rate) == self.sample_rate:
            return as_audio_batch(audio, device=self.device)
        batch = resample(as_audio_batch(audio), sample_rate, self.sample_rate)
        return batch.to(self.device)

    def require_float32(self) -> None:
        """Refuse weights of another precision (e.g. after ``model.half()``): every family
        computes in float32 (fp16 on CUDA comes from ``autocast=True``, not from the weights)."""
        for name, tensor in self.state_dict(keep_vars=True).items():
            if tensor.is_floating_point() and tensor.dtype != torch.float32:
                raise TypeError(
                    f"{self.name}'s weights are {str(tensor.dtype).removeprefix('torch.')} "
                    f"({name}; after model.half() or .to(dtype)?), but the model computes in "
                    "float32: call model.float() first (for fp16 on CUDA, load the model with "
                    "autocast=True instead)"
                )

    # The original EfficientAT_HEAR wrapper's names for the same methods.
    get_timestamp_embeddings = timestamp_embeddings
    get_scene_embeddings = scene_embeddings

    def timestamp_windows(
        self, window_size: int | None = None, hop: int | None = None, pad: int | None = None
    ) -> object:
        """The family's timestamp windows with some of size, hop and pad (samples) changed."""
        raise ValueError(
            f"{self.name} frames its timestamps itself: window_size, hop and pad cannot be "
            "changed; call get_timestamp_embeddings(audio) without them"
        )

    def output_settings(self) -> dict[str, object]:
        """What determines this model's outputs besides its weights (JSON-ready): a family
        adds its own settings (features, windows, ...). Used to tell which saved outputs
        a later run may reuse."""
        return {
            "model": self.name,
            "sample_rate": self.sample_rate,
            "scene_embedding_size": self.scene_embedding_size,
            "timestamp_embedding_size": self.timestamp_embedding_size,
        }

    @property
    def runtime(self) -> Runtime | None:
        """The engine of the network after the frontend (None: torch's modules); a family
        that can feed another engine (see :attr:`backends`) overrides this property."""
        return None

    @runtime.setter
    def runtime(self, runtime: Runtime | None) -> None:
        if runtime is not None:
            raise ValueError(
                f"backend {runtime.name!r} does not run {self.name}; it runs with backend="
                + " or ".join(repr(backend) for backend in self.backends)
            )

    def runtime_for(self, job: str) -> Runtime | None:
        """The engine of ``job``'s network passes now (None: torch's modules): the one
        backend "auto" moved the job to (:meth:`set_auto_engines`), else :attr:`runtime`.
        A job whose engine is due (its time in torch reached the cost of making it) moves
        here. Moved jobs run in their engine while the model is float32 on the CPU (the
        engines' graphs are), else in torch."""
        moved = self.__dict__.get("_job_runtimes", {}).get(job)
        if not self._float32_on_cpu():
            return self.runtime
        if moved is None:
            pending = self.__dict__.get("_auto_engines", {}).get(job)
            if pending is None or pending.spent < pending.after_seconds:
                return self.runtime
            moved = self.__dict__.setdefault("_job_runtimes", {})[job] = pending.runtime
            del self.__dict__["_auto_engines"][job]
            logger.info(
                "%s: backend auto runs %s jobs in %s from now on", self.name, job, moved.name
            )
        return moved

    def _float32_on_cpu(self) -> bool:
        """Whether the parameters are float32 on the CPU (known until :meth:`_apply`)."""
        known = self.__dict__.get("_is_float32_on_cpu")
        if known is None:
            parameter = next(self.parameters(), None)
            known = parameter is not None and parameter.is_cpu and parameter.dtype == torch.float32
            self.__dict__["_is_float32_on_cpu"] = known
        return known

    def __getstate__(self) -> dict[str, object]:
        """Pickled without what it knows of its parameters' device (loading may move them)."""
        state = super().__getstate__()
        return {key: value for key, value in state.items() if key != "_is_float32_on_cpu"}

    def _apply(self, fn: Callable, *args: object, **kwargs: object) -> EmbeddingModel:
        """``.to``, ``.cuda``, ``.double``, ...: the parameters' device and type may change."""
        applied = super()._apply(fn, *args, **kwargs)
        self.__dict__.pop("_is_float32_on_cpu", None)
        return applied

    def set_auto_engines(self, engines: Mapping[str, AutoEngine]) -> None:
        """The engines backend "auto" moves jobs to (:class:`AutoEngine`); every job runs in
        :attr:`runtime` until then. An empty mapping: no job moves."""
        self.__dict__["_auto_engines"] = dict(engines)
        self.__dict__["_job_runtimes"] = {}

    def settle_engines(self) -> None:
        """Move every job backend "auto" would move, now, without waiting for its time in
        torch (what a long run of calls ends in)."""
        for engine in self.__dict__.get("_auto_engines", {}).values():
            engine.spent = max(engine.spent, engine.after_seconds)

    def start_batch_job(self) -> None:
        """Before a batch job (a folder, a Ray dataset, an evaluation task, a classifier's
        examples): its kinds of job run where they run now, to its end, so that a file's
        numbers do not depend on when it came (local and Ray runs agree bit for bit); a live
        stream is no batch job and keeps its engine. A batch job's fresh process pays about
        1 s to move (the engine's import and export), and ``hear-mn embed`` of mn04 was
        slower with onnxruntime than with torch even for 400 files of 10 s
        (benchmarks/bench_cli_backend.py), so a batch job that wants ONNX Runtime asks for it."""
        pending = self.__dict__.get("_auto_engines", {})
        for job in [job for job in pending if job != "live"]:
            del pending[job]

    def spent_in_torch(self, job: str, seconds: float) -> None:
        """Count ``seconds`` of ``job`` run in torch towards moving it (:class:`AutoEngine`)."""
        pending = self.__dict__.get("_auto_engines", {}).get(job)
        if pending is not None:
            pending.spent += seconds

    def engines(self) -> dict[str, str]:
        """The engine each kind of job (:data:`JOBS`) runs in now ("torch", "onnxruntime");
        under backend "auto" a job may move once it has run long enough in torch."""
        runtimes = {job: self.runtime_for(job) for job in JOBS}
        return {job: runtime.name if runtime else "torch" for job, runtime in runtimes.items()}

    def stream(self) -> Stream:
        """Streaming timestamp embeddings of one signal; see :mod:`hear_mn.streaming`."""
        raise NotImplementedError(f"{self.name} does not support streaming")

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """The bare computation of scene embeddings: a float32 (n_sounds, n_samples) batch
        already on the model's device, at its rate; no checks, no inference mode (for
        counting operations, tracing and export). HEAR callers use :meth:`scene_embeddings`."""
        return self._scene_embeddings(audio)

    def _timestamp_embeddings(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _scene_embeddings(self, audio: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def peak_of(audio: torch.Tensor) -> Callable[[], float]:
    """The largest absolute sample of ``audio``, computed only when asked (error paths)."""
    return lambda: float(audio.abs().max()) if audio.numel() else 0.0


def require_finite(embeddings: torch.Tensor, what: str, peak: Callable[[], float]) -> None:
    """Refuse non-finite embeddings, saying why they arose (``peak``: the audio's peak)."""
    if bool(torch.isfinite(embeddings).all()):
        return
    largest = peak()
    if largest > 1:
        reason = (
            f"the audio's samples peak at {largest:.3g}, far outside [-1, 1], the range the HEAR "
            "API expects; scale it first (e.g. audio / audio.abs().max())"
        )
    else:
        reason = (
            f"although the audio's samples peak at {largest:.3g}; the model's weights may hold "
            "NaN or Inf"
        )
    raise ValueError(f"{what} are not finite: {reason}")


def as_embedding_model(model: object) -> EmbeddingModel:
    """``model`` itself when it is an :class:`EmbeddingModel`, else a clear TypeError."""
    if not isinstance(model, EmbeddingModel):
        raise TypeError(
            f"model must come from this module's load_model(), got {type(model).__name__}"
        )
    return model


def _device_type_available(kind: str) -> bool:
    """Whether this torch build and machine can run on devices of type ``kind``."""
    if kind == "cpu":
        return True
    if kind == "mps":
        return bool(torch.backends.mps.is_available())
    backend = getattr(torch, kind, None)  # torch.cuda, torch.xpu, ...
    try:
        return bool(backend.is_available()) if hasattr(backend, "is_available") else False
    except (RuntimeError, AssertionError):  # a backend not compiled in may raise instead
        return False


def torch_device(device: object) -> torch.device:
    """Check a device name early, with a clear message instead of a deep torch error."""
    usable = ", ".join(repr(k) for k in ("cpu", "cuda", "mps", "xpu") if _device_type_available(k))
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"unknown device {device!r}; use one of {usable} (with an index, e.g. 'cuda:0')"
        ) from error
    if resolved.type == "meta":
        raise ValueError(
            "device 'meta' holds no data (only shapes), so no embedding can be computed there; "
            f"use one of {usable}"
        )
    if not _device_type_available(resolved.type):
        raise ValueError(
            f"device {device!r} requested but {resolved.type.upper()} is not available in this "
            f"PyTorch build or on this machine; use one of {usable}"
        )
    return resolved
