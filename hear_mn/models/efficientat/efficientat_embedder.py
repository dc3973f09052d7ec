"""EfficientAT networks as HEAR models: frontend -> backbone -> taps, plus HEAR windowing.

:class:`EfficientATEmbedder` serves any backbone with the MobileNets' taps (MobileNets:
:class:`MobileNetEmbedder`; DyMN: :class:`hear_mn.models.efficientat.dymn_network.DyMNEmbedder`).
Timestamp embeddings: windows of ``timestamp_window`` (160 ms) every ``timestamp_hop``
(50 ms) over the reflect-padded clip, each window through frontend and backbone on its own
(as the reference does), but many windows per forward pass and in bounded chunks, so an hour
of audio needs a bounded working set; the STFT frames that overlapping windows have in
common are computed once per chunk.
Scene embeddings: one pass per clip up to 10 s; longer clips average 10 s windows every 2.5 s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping

import torch
from torch import nn

from hear_mn.audio import extended_span
from hear_mn.config import ModelConfig
from hear_mn.durations import duration_to_samples
from hear_mn.hub.checkpoint import load_into
from hear_mn.model import Runtime
from hear_mn.models.efficientat.block_table import MOBILENET_FAMILY, FeatureInfo, feature_info
from hear_mn.models.efficientat.feature_taps import backbone_plan, embedding_size
from hear_mn.models.efficientat.inference_rewrites import inference_backbone
from hear_mn.models.efficientat.log_mel_frontend import LogMelFrontend
from hear_mn.models.efficientat.mobilenet_network import MobileNet, concatenate_taps
from hear_mn.models.efficientat.streams import (
    MobileNetStream,
    SceneStream,
    WindowedEmbedder,
    Windows,
)
from hear_mn.run_options import RunOptions

# Durations in ms; the model turns them into samples at its checkpoint's sample rate.
TIMESTAMP_WINDOW_MS = 160
TIMESTAMP_HOP_MS = 50
SCENE_WINDOW_MS = 10_000
SCENE_HOP_MS = 2_500
DEFAULT_WINDOW_BATCH = 256
# Scene passes hold at most this many 10 s windows' worth of samples: measured on 2 CPU
# cores, 16 clips in one pass ran at about half the throughput of 4 passes of 4 (larger
# intermediate tensors cost more than they save); it also bounds memory.
SCENE_WINDOWS_PER_PASS = 4


class EfficientATEmbedder(WindowedEmbedder):
    """An EfficientAT network ``backbone`` on log-mels: the configuration ``config`` run as
    ``run`` says.

    The backbone maps (batch, 1, n_mels, frames) and a
    :class:`~hear_mn.models.efficientat.mobilenet_network.BackbonePlan` to
    :class:`~hear_mn.models.efficientat.mobilenet_network.BackboneOutputs`; ``info`` gives its taps'
    shapes. This class does the rest for every such family (MobileNets, DyMN): frontend, HEAR
    windowing, batching, streaming and the inference copy. From ``config``: the feature taps,
    the pooling of block features (bK), the timestamp windows (ms) and, from its checkpoint,
    the sample rate, mel bands and STFT hop. From ``run``: ``autocast`` and
    ``window_batch_size``, how many 160 ms windows' worth of samples go through the network at
    once (memory vs. speed). Parameters are random until :meth:`load_checkpoint`.
    """

    # Each batch of log-mels can go to another engine instead (see :attr:`runtime`).
    backends = ("torch", "onnxruntime")
    # The inference copy made unless :attr:`inference_rewrite` is set (a family's own).
    default_inference_rewrite = staticmethod(inference_backbone)

    def __init__(
        self, config: ModelConfig, run: RunOptions, *, backbone: nn.Module, info: FeatureInfo
    ) -> None:
        size = embedding_size(config.features, info, config.pooling)
        rate = config.sample_rate
        super().__init__(
            name=config.name,
            sample_rate=rate,
            scene_embedding_size=size,
            timestamp_embedding_size=size,
            autocast=run.autocast,
        )
        self.windows = _centred_windows(
            config.timestamp_window or TIMESTAMP_WINDOW_MS,
            config.timestamp_hop or TIMESTAMP_HOP_MS,
            rate,
            "timestamp_window",
            "timestamp_hop",
        )
        # The windows a clip longer than one of them is averaged over (10 s every 2.5 s).
        self.scene_windows = _centred_windows(
            SCENE_WINDOW_MS, SCENE_HOP_MS, rate, "scene window", "scene hop"
        )
        # window_batch_size counts windows of this many samples (160 ms).
        self.batch_samples = duration_to_samples(TIMESTAMP_WINDOW_MS, rate, "timestamp_window")
        self.features = config.features
        self.pooling = config.pooling
        self.plan = backbone_plan(config.features, config.pooling)
        self.window_batch_size = run.window_batch_size or DEFAULT_WINDOW_BATCH
        self.frontend = LogMelFrontend(
            n_mels=info.n_mels, sample_rate=rate, hop_length=config.checkpoint.hop_length
        )
        self.backbone = backbone
        # A state dict loaded into the module changes the weights the rewrite was made from.
        self.register_load_state_dict_post_hook(_refresh_after_load)
        self.eval()

    def output_settings(self) -> dict[str, object]:
        """The base settings plus features, pooling, frontend, head and windows."""
        return {
            **super().output_settings(),
            "features": list(self.features),
            "pooling": self.pooling,
            "n_mels": self.frontend.n_mels,
            "stft_hop": self.frontend.hop_length,
            "head": self.backbone.head,
            "strides": list(self.backbone.strides),
            "timestamp_window": self.windows.size,
            "timestamp_hop": self.windows.hop,
            **({"backend": self.runtime.name} if self.runtime is not None else {}),
        }

    def load_checkpoint(self, state_dict: Mapping[str, torch.Tensor], *, source: str) -> None:
        """Load a released EfficientAT state dict (backbone only) strictly."""
        load_into(self.backbone, state_dict, source=source)
        self.refresh_inference()

    def embed_audio(self, audio: torch.Tensor, job: str = "scene") -> torch.Tensor:
        """Frontend + backbone + taps for a batch of equal-length signals: (batch, samples) -> (batch, D)."""
        return self.embed_mels(self.frontend(audio), job)

    def embed_mels(self, mels: torch.Tensor, job: str = "timestamps") -> torch.Tensor:
        """Backbone + taps of log-mel input: (batch, n_mels, frames) -> (batch, D).

        The backbone runs only as far as the features need (:attr:`plan`), in the engine of
        ``job`` (:meth:`runtime_for`, :data:`hear_mn.model.JOBS`); in inference only: training
        mode and autograd always run the torch modules.
        """
        if self.backbone.training or torch.is_grad_enabled():
            return self._torch_pass(self.backbone, mels)
        runtime = self.runtime_for(job)
        if runtime is not None:
            return self._runtime_function(runtime)(mels)
        start = time.perf_counter()
        embeddings = self._torch_pass(self.inference_network(), mels)
        self.spent_in_torch(job, time.perf_counter() - start)
        return embeddings

    def _torch_pass(self, backbone: nn.Module, mels: torch.Tensor) -> torch.Tensor:
        outputs = backbone(mels[:, None].contiguous(memory_format=torch.channels_last), self.plan)
        return concatenate_taps(self.features, outputs, mels)

    def timestamp_windows(
        self, window_size: int | None = None, hop: int | None = None, pad: int | None = None
    ) -> Windows:
        """The timestamp windows, in samples, with any of size, hop and pad changed.

        An explicit ``window_size`` without ``pad`` pads by half of it, as the original does.
        """
        size = self.windows.size if window_size is None else window_size
        return Windows.checked(
            size,
            self.windows.hop if hop is None else hop,
            (size // 2 if window_size is not None else self.windows.pad) if pad is None else pad,
            self.sample_rate,
        )

    def _timestamp_embeddings(
        self, audio: torch.Tensor, windows: Windows | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        windows = windows or self.windows
        n_sounds, n_samples = audio.shape
        n_windows = windows.count(n_samples)
        if n_windows < 1:
            raise ValueError(
                f"clips of {n_samples} samples padded by {windows.pad} on each side are shorter "
                f"than one window of {windows.size} samples; use a larger pad or smaller window"
            )
        per_pass = self._per_pass(windows.size)
        embeddings = self._embed_windows(audio, n_windows, windows, per_pass, "timestamps")
        timestamps = torch.arange(n_windows, device=audio.device) * (
            1000.0 * windows.hop / self.sample_rate
        )
        return embeddings, timestamps.float().expand(n_sounds, n_windows)

    def _per_pass(self, window_size: int) -> int:
        """Windows per forward pass: ``window_batch_size`` 160 ms windows' worth of samples."""
        return max(1, self.window_batch_size * self.batch_samples // window_size)

    def _scene_embeddings(self, audio: torch.Tensor) -> torch.Tensor:
        """One pass per clip up to :attr:`scene_windows`' size (10 s); a longer clip is the
        mean of those windows (every 2.5 s)."""
        n_sounds, n_samples = audio.shape
        windows = self.scene_windows
        if n_samples <= windows.size:
            per_pass = max(1, SCENE_WINDOWS_PER_PASS * windows.size // n_samples)
            return torch.cat([self.embed_audio(audio[a:b]) for a, b in _chunks(n_sounds, per_pass)])
        per_pass = SCENE_WINDOWS_PER_PASS
        n_windows = windows.count(n_samples)
        return self._embed_windows(audio, n_windows, windows, per_pass, "scene").mean(1)

    def inference_network(self) -> nn.Module:
        """The backbone that runs: the plain one in training mode or with autograd on (the
        rewrites are inference-only), else its rewritten copy (:attr:`inference_rewrite`).

        The copy is kept outside the module tree (not in ``state_dict``, not moved by
        ``.to``) and made again after anything that changes the weights through the module:
        loading a state dict or checkpoint, ``.to`` / ``.cuda`` / ``.half``, ``.train`` /
        ``.eval``. After editing parameters in place by hand, call :meth:`refresh_inference`.
        """
        if self.backbone.training or torch.is_grad_enabled() or self.inference_rewrite is None:
            return self.backbone
        rewritten = self.__dict__.get("_rewritten")
        if rewritten is None:
            rewritten = self.inference_rewrite(self.backbone)
            self.__dict__["_rewritten"] = rewritten
        return rewritten

    def refresh_inference(self) -> None:
        """Drop the rewritten backbone (and the runtime's graph); the next inference pass
        makes them again from the current weights."""
        for made in _MADE_FROM_WEIGHTS:
            self.__dict__.pop(made, None)

    @property
    def runtime(self) -> Runtime | None:
        """Another engine for backbone + taps in inference (None: torch), e.g.
        :class:`hear_mn.engines.ort.OnnxRuntime`; the frontend, windowing and batching stay
        in torch. Training mode and autograd always use the torch modules."""
        return self.__dict__.get("_runtime")

    @runtime.setter
    def runtime(self, runtime: Runtime | None) -> None:
        self.__dict__["_runtime"] = runtime
        self.refresh_inference()

    def _runtime_function(self, runtime: Runtime) -> Callable[[torch.Tensor], torch.Tensor]:
        """``runtime`` compiled from the current weights, made once per runtime."""
        compiled = self.__dict__.setdefault("_compiled", {})
        function = compiled.get(runtime)
        if function is None:
            function = compiled[runtime] = runtime.compile(self)
        return function

    @property
    def inference_rewrite(self) -> Callable[[nn.Module], nn.Module] | None:
        """How the backbone is rewritten for inference (None: it runs as it is); default
        the class's ``default_inference_rewrite`` (MobileNets: BatchNorm folded, in place)."""
        return self.__dict__.get("_inference_rewrite", self.default_inference_rewrite)

    @inference_rewrite.setter
    def inference_rewrite(self, rewrite: Callable[[nn.Module], nn.Module] | None) -> None:
        self.__dict__["_inference_rewrite"] = rewrite
        self.refresh_inference()

    def train(self, mode: bool = True) -> EfficientATEmbedder:
        self.refresh_inference()
        return super().train(mode)

    def _apply(self, fn: Callable, *args: object, **kwargs: object) -> EfficientATEmbedder:
        self.refresh_inference()
        return super()._apply(fn, *args, **kwargs)

    def __getstate__(self) -> dict[str, object]:
        """Pickled without the rewritten backbone and the runtime's compiled graph (they are
        made again where they are needed)."""
        return {k: v for k, v in super().__getstate__().items() if k not in _MADE_FROM_WEIGHTS}

    def stream(self) -> MobileNetStream:
        """Streaming timestamp embeddings (see :mod:`hear_mn.streaming`)."""
        return MobileNetStream(self)

    def scene_stream(self) -> SceneStream:
        """The scene embedding of a signal pushed block by block (:mod:`hear_mn.long_audio`)."""
        return SceneStream(self)

    def embed_sliding_windows(
        self,
        signal: torch.Tensor,
        count: int,
        windows: Windows | None = None,
        job: str = "timestamps",
    ) -> torch.Tensor:
        """Windows ``signal[k * hop : k * hop + size]``, k < count -> (count, D), of the
        timestamp ``windows`` (or others: the scene's); ``window_batch_size`` 160 ms
        windows' worth at a time. Used by the streams on their buffers (``job``: see
        :meth:`embed_mels`).
        """
        windows = windows or self.windows
        size, hop = windows.size, windows.hop
        parts = [
            self.embed_mels(self.frontend.sliding_windows(signal[a * hop :], b - a, size, hop), job)
            for a, b in _chunks(count, self._per_pass(size))
        ]
        return torch.cat(parts) if parts else signal.new_empty(0, self.timestamp_embedding_size)

    def _embed_windows(
        self, audio: torch.Tensor, n_windows: int, windows: Windows, per_pass: int, job: str
    ) -> torch.Tensor:
        """Embeddings of ``windows`` over every sound: (n_sounds, n_windows, D).

        Windows of all sounds are batched together, ``per_pass`` at a time, and their
        samples are taken from the clip only when their pass comes.
        """
        n_sounds = audio.shape[0]
        embeddings = torch.empty(
            n_sounds * n_windows, self.timestamp_embedding_size, device=audio.device
        )
        for start, stop in _chunks(n_sounds * n_windows, per_pass):
            mels = self.window_mels(audio, start, stop, n_windows, windows)
            embeddings[start:stop] = self.embed_mels(mels, job)
        return embeddings.reshape(n_sounds, n_windows, -1)

    def window_mels(
        self, audio: torch.Tensor, start: int, stop: int, n_windows: int, windows: Windows
    ) -> torch.Tensor:
        """Log-mel of windows ``start .. stop - 1`` of the flattened (sound, window) grid.

        Window w of a sound covers samples ``[w * hop - pad, w * hop - pad + size)`` of the
        mirror-extended clip; each sound's windows come from one span of it, so they share
        their common STFT frames (:meth:`LogMelFrontend.sliding_windows`).
        """
        size, hop = windows.size, windows.hop
        parts = []
        index = start
        while index < stop:
            sound, first = divmod(index, n_windows)
            last = min(n_windows, first + stop - index)
            span_start = first * hop - windows.pad
            span_stop = span_start + (last - first - 1) * hop + size
            span = extended_span(audio[sound], span_start, span_stop)
            parts.append(self.frontend.sliding_windows(span, last - first, size, hop))
            index += last - first
        return parts[0] if len(parts) == 1 else torch.cat(parts)


class MobileNetEmbedder(EfficientATEmbedder):
    """The MobileNet of ``config``: width, mel bands, STFT hop, head and strides come with its
    checkpoint (see :class:`EfficientATEmbedder` for the other settings)."""

    family = MOBILENET_FAMILY
    # Measured faster in ONNX Runtime: single windows of a live stream (mn04, 1 thread: 0.6 ms
    # against torch's 3 ms, benchmarks/bench_streaming.py) and scene passes (whole calls
    # 1.13-1.46x, mn04 to mn40, 1 and 2 threads, bench_backends.py; one 10 s clip
    # 1.2-1.5x, bench_original.py); batches of timestamp windows were even (0.94-1.18x).
    auto_backends = {"live": "onnxruntime", "scene": "onnxruntime"}

    def __init__(self, config: ModelConfig, run: RunOptions | None = None) -> None:
        c = config.checkpoint
        # channels_last makes this depthwise-separable network several times faster on CPU;
        # loading a checkpoint copies into these tensors and keeps their layout.
        backbone = MobileNet(c.width, c.head, c.strides).to(memory_format=torch.channels_last)
        info = feature_info(c.width, c.n_mels, c.strides, c.head)
        super().__init__(config, run or RunOptions(), backbone=backbone, info=info)


def _centred_windows(
    window_ms: float, hop_ms: float, sample_rate: int, window_name: str, hop_name: str
) -> Windows:
    """Windows of ``window_ms`` every ``hop_ms`` at ``sample_rate``, padded by half a window."""
    size = duration_to_samples(window_ms, sample_rate, window_name)
    return Windows(size, duration_to_samples(hop_ms, sample_rate, hop_name), size // 2)


# What is made from the weights on first use, dropped when they change, never pickled.
_MADE_FROM_WEIGHTS = ("_rewritten", "_compiled")


def _refresh_after_load(module: EfficientATEmbedder, _: object) -> None:
    """load_state_dict hook (a module-level function, so that models pickle)."""
    module.refresh_inference()


def _chunks(total: int, size: int) -> Iterator[tuple[int, int]]:
    """(start, stop) ranges of at most ``size`` covering ``range(total)``."""
    for start in range(0, total, size):
        yield start, min(start + size, total)
