"""Streams of the EfficientAT models (MobileNets, DyMN): timestamp windows of a growing signal,
and its scene embedding, each equal to the whole-signal computation.

:class:`MobileNetStream` emits each timestamp window once its samples are in
(``hear_mn.stream(model)``); :class:`SceneStream` averages the scene windows as they
complete, so that a long file's scene embedding needs one window of audio in memory, not the
file (:mod:`hear_mn.long_audio`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hear_mn.durations import LONGEST_WINDOW_MS
from hear_mn.model import EmbeddingModel
from hear_mn.streaming import EmbeddingStream

__all__ = ["MobileNetStream", "SceneStream", "WindowedEmbedder", "Windows"]


@dataclass(frozen=True)
class Windows:
    """Windows of ``size`` samples every ``hop``, the first starting ``pad`` samples before
    the clip (which is reflect-padded by ``pad`` on both sides), as the original frames them."""

    size: int
    hop: int
    pad: int

    def count(self, n_samples: int) -> int:
        """Number of windows over a clip of ``n_samples`` samples."""
        return (n_samples + 2 * self.pad - self.size) // self.hop + 1

    @classmethod
    def checked(cls, size: object, hop: object, pad: object, sample_rate: int) -> Windows:
        """Windows from user values (samples at ``sample_rate``), each at most
        LONGEST_WINDOW_MS, or a clear error."""
        most = LONGEST_WINDOW_MS * sample_rate // 1000
        for what, value, least in (("window_size", size, 1), ("hop", hop, 1), ("pad", pad, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= most:
                span = f"at least {least} and at most {most} samples ({most // sample_rate} s)"
                raise ValueError(f"{what} must be an int of {span}, got {value!r}")
        return cls(size, hop, pad)


class WindowedEmbedder(EmbeddingModel):
    """What the streams need of their model beyond :class:`~hear_mn.model.EmbeddingModel`:
    its timestamp and scene windows and the embeddings of sliding windows over a signal.
    :class:`~hear_mn.models.efficientat.efficientat_embedder.EfficientATEmbedder` implements
    it (declared here, below the streams, since the embedder module imports this one)."""

    windows: Windows
    scene_windows: Windows

    def embed_sliding_windows(
        self,
        signal: torch.Tensor,
        count: int,
        windows: Windows | None = None,
        job: str = "timestamps",
    ) -> torch.Tensor:
        """Windows ``signal[k * hop : k * hop + size]``, k < count -> (count, D), run as
        ``job`` (:data:`hear_mn.model.JOBS`)."""
        raise NotImplementedError


class MobileNetStream(EmbeddingStream):
    """Timestamp windows of a growing signal, emitted as soon as their samples are in.

    Window i covers samples [i * hop - pad, i * hop - pad + size) of the reflect-padded
    signal (pad = size // 2: 2560 samples for 160 ms windows), so it is complete half a
    window after its centre; the left padding needs the first pad + 1 samples and the right
    padding the end of the signal (:meth:`close`). The buffer keeps only what pending
    windows and the right padding need: at most one window plus the pushed chunk.
    ``windows``: other windows than the model's timestamp windows (the scene's).
    """

    def __init__(self, model: WindowedEmbedder, windows: Windows | None = None) -> None:
        super().__init__(model)
        self.windows = windows or model.windows
        self._head = torch.empty(0, device=model.device)
        self._buffer: torch.Tensor | None = None
        self._buffer_start = 0  # position of self._buffer[0] in the padded signal
        self._done = 0  # windows computed so far

    def _push(self, samples: torch.Tensor) -> torch.Tensor:
        pad, hop = self.windows.pad, self.windows.hop
        if self._buffer is None:
            self._head = torch.cat([self._head, samples])
            if self._head.shape[0] <= pad:
                return self._empty()
            self._buffer = torch.cat([self._head[1 : pad + 1].flip(0), self._head])
            self._head = self._head[:0]
        else:
            self._buffer = torch.cat([self._buffer, samples])
        available = self._buffer_start + self._buffer.shape[0]
        complete = (available - self.windows.size) // hop + 1
        embeddings = self._windows(complete - self._done)
        keep_from = min(self._done * hop, self.num_samples - 1)
        self._buffer = self._buffer[keep_from - self._buffer_start :]
        self._buffer_start = keep_from
        return embeddings

    def _close(self) -> torch.Tensor:
        if self._buffer is None:
            if self.num_samples == 0:
                return self._empty()
            return self.model.timestamp_embeddings(self._head[None])[0][0]
        pad = self.windows.pad
        self._buffer = torch.cat([self._buffer, self._buffer[-(pad + 1) : -1].flip(0)])
        return self._windows(self.windows.count(self.num_samples) - self._done)

    def _windows(self, count: int) -> torch.Tensor:
        if count <= 0:
            return self._empty()
        start = self._done * self.windows.hop - self._buffer_start
        embeddings = self.model.embed_sliding_windows(
            self._buffer[start:], count, self.windows, self.job
        )
        self._done += count
        return embeddings

    def _timestamps(self, indices: torch.Tensor) -> torch.Tensor:
        return indices * (1000.0 * self.windows.hop / self.model.sample_rate)


class SceneStream(MobileNetStream):
    """The scene embedding of a growing signal, as :meth:`scene_embeddings` computes it on
    the whole: up to one scene window (10 s), one pass over the signal, kept until the end;
    beyond it, the mean of the scene windows (10 s every 2.5 s over the reflect-padded
    signal), summed in float64 as each completes. :meth:`close` gives the (1, D) embedding.
    """

    batch_job = "scene"

    def __init__(self, model: WindowedEmbedder) -> None:
        super().__init__(model, model.scene_windows)
        self._sum = torch.zeros(model.scene_embedding_size, dtype=torch.float64)
        self._count = 0

    def _push(self, samples: torch.Tensor) -> torch.Tensor:
        if self._buffer is None and self.num_samples <= self.windows.size:
            self._head = torch.cat([self._head, samples])  # may stay one pass over it all
        else:
            self._add(super()._push(samples))
        return self._empty()

    def _close(self) -> torch.Tensor:
        if self._buffer is None:
            if self.num_samples == 0:
                return self._empty()
            return self.model.scene_embeddings(self._head[None])
        self._add(super()._close())
        return (self._sum / self._count).float().to(self.model.device)[None]

    def _add(self, embeddings: torch.Tensor) -> None:
        # New tensors, not in place: a failed push restores the previous ones.
        self._sum = self._sum + embeddings.double().sum(0).cpu()
        self._count += embeddings.shape[0]

    def _timestamps(self, indices: torch.Tensor) -> torch.Tensor:
        return torch.zeros(indices.shape, device=indices.device)  # a scene has no time

    def _empty(self) -> torch.Tensor:
        return torch.empty(0, self.model.scene_embedding_size, device=self.model.device)
