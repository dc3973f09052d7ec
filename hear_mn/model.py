"""The HEAR wrapper shared by every model family: input checks, devices, precision, no-grad.

A model family (MobileNets, Audio-MLP) subclasses :class:`EmbeddingModel` and implements
two methods on a checked float32 batch that already sits on the model's device:
``_timestamp_embeddings`` and ``_scene_embeddings``. Everything a HEAR caller relies on
(shape and dtype checks, moving audio to the model, float32 output, inference mode,
optional fp16 autocast on CUDA) is done here once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from hear_mn.audio import as_audio_batch, check_sample_rate, resample

if TYPE_CHECKING:
    from hear_mn.streaming import EmbeddingStream


class EmbeddingModel(torch.nn.Module):
    """A HEAR model: ``sample_rate``, ``scene_embedding_size``, ``timestamp_embedding_size``.

    ``autocast`` runs the network under fp16 autocast on CUDA (as the EfficientAT reference
    did); it is off by default so that CPU and CUDA give the same float32 numbers. Outputs
    are float32 either way.
    """

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

    @property
    def device(self) -> torch.device:
        """The device the model's parameters live on."""
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")

    def _precision(self) -> contextlib.AbstractContextManager:
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
        batch = self._audio_batch(audio, sample_rate)
        with torch.inference_mode(), self._precision():
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
        batch = self._audio_batch(audio, sample_rate)
        with torch.inference_mode(), self._precision():
            embeddings = self._scene_embeddings(batch)
        require_finite(embeddings, "scene embeddings", peak_of(batch))
        return embeddings.float()

    def _audio_batch(self, audio: object, sample_rate: int | None) -> torch.Tensor:
        """The checked batch on the model's device, at the model's rate."""
        if sample_rate is None or check_sample_rate(sample_rate) == self.sample_rate:
            return as_audio_batch(audio, device=self.device)
        batch = resample(as_audio_batch(audio), sample_rate, self.sample_rate)
        return batch.to(self.device)

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

    def stream(self) -> EmbeddingStream:
        """Streaming timestamp embeddings of one signal; see :mod:`hear_mn.streaming`."""
        raise NotImplementedError(f"{self.name} does not support streaming")

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


def _check_model(model: object) -> EmbeddingModel:
    if not isinstance(model, EmbeddingModel):
        raise TypeError(
            f"model must come from this module's load_model(), got {type(model).__name__}"
        )
    return model


def get_timestamp_embeddings(
    audio: torch.Tensor, model: EmbeddingModel
) -> tuple[torch.Tensor, torch.Tensor]:
    """HEAR API: embeddings and their centre times in milliseconds.

    ``audio`` is (n_sounds, n_samples) float at ``model.sample_rate``, on any device; a numpy
    float array is converted. Returns float32 tensors on the model's device.
    """
    return _check_model(model).get_timestamp_embeddings(audio)


def get_scene_embeddings(audio: torch.Tensor, model: EmbeddingModel) -> torch.Tensor:
    """HEAR API: one embedding per clip, (n_sounds, model.scene_embedding_size) float32."""
    return _check_model(model).get_scene_embeddings(audio)


def _one_of(
    name: str, value: object, alias: str, alias_value: object, same: Callable = lambda v: v
) -> object:
    """One option given under our name or the original's: both only when they agree."""
    if value is not None and alias_value is not None and same(value) != same(alias_value):
        raise ValueError(f"{name}={value!r} and {alias}={alias_value!r} disagree; give one of them")
    return alias_value if value is None else value


def make_load_model(config_name: str) -> Callable[..., EmbeddingModel]:
    """The HEAR ``load_model`` of a per-configuration module (``hear_mn.<config_name>``).

    Besides our options it takes the original EfficientAT_HEAR modules' keywords:
    ``mode`` (= ``features``), ``model_name`` (a checkpoint name), ``feature_pooling_fn``
    (= ``pooling``, by name), ``head_type`` (checked against the checkpoint) and
    ``all_blocks`` (accepted; block features bK always name component K here).
    """

    def load_model(
        model_file_path: str = "",
        *,
        device: str | None = None,
        autocast: bool = False,
        pretrained: bool = True,
        download: bool = True,
        progress: bool | None = None,
        mode: str | list[str] | tuple[str, ...] | None = None,
        model_name: str | None = None,
        feature_pooling_fn: str | None = None,
        head_type: str | None = None,
        all_blocks: bool | None = None,
        **options: object,
    ) -> EmbeddingModel:
        from hear_mn.registry import create_model
        from hear_mn.taps import parse_features

        if all_blocks is not None and not isinstance(all_blocks, bool):
            raise TypeError(f"all_blocks must be True or False, got {all_blocks!r}")
        if feature_pooling_fn is not None and not isinstance(feature_pooling_fn, str):
            raise TypeError(
                "feature_pooling_fn takes the pooling function's name here (e.g. "
                f"'avg_time_pool'), got {feature_pooling_fn!r}"
            )
        features = _one_of("features", options.pop("features", None), "mode", mode, parse_features)
        pooling = _one_of(
            "pooling", options.pop("pooling", None), "feature_pooling_fn", feature_pooling_fn
        )
        return create_model(
            config_name,
            weights=model_file_path or None,
            pretrained=pretrained,
            features=features,
            pooling=pooling,
            checkpoint=model_name,
            head=head_type,
            device=device,
            download=download,
            progress=progress,
            autocast=autocast,
            **options,
        )

    load_model.__doc__ = f"""HEAR API: load {config_name}.

    model_file_path: a checkpoint file; empty means the released pretrained weights
        (looked up in $HEAR_MN_WEIGHTS_DIR and the cache $HEAR_MN_HOME, else downloaded).
    features (or mode): another embedding feature set, e.g. "e1_l_all_se" or
        ["b5", "b11", "mel_avgs"] (MobileNets only; heareval:
        --model-options '{{"features": "e1_l_all_se"}}' or '{{"mode": ["b5", "mel_avgs"]}}').
    pooling (or feature_pooling_fn): how block features bK are pooled, e.g. "avg_time_pool".
    timestamp_window, timestamp_hop: timestamp windows in milliseconds (default 160, 50).
    model_name: another released checkpoint, e.g. "mn10_as_hop_5" (its frontend comes with it).
    head_type, all_blocks: the original's keywords, accepted (see hear_mn.hear.make_load_model).
    device: "cpu" (default), "cuda" or "cuda:N"; audio on any device is moved to it.
    autocast: fp16 autocast on CUDA (the EfficientAT reference's setting); outputs stay float32.
    pretrained: False builds random weights without touching the network (tests, benchmarks).
    Other options (window_batch_size) go to the model class.
    """
    load_model.__qualname__ = "load_model"
    return load_model
