"""EfficientAT MobileNets as HEAR models: frontend -> backbone -> taps, plus HEAR windowing.

Timestamp embeddings: 160 ms windows every 50 ms over the reflect-padded clip, each window
through frontend and backbone on its own (as the reference does), but many windows per
forward pass and in bounded chunks, so an hour of audio needs a bounded working set; the
STFT frames that overlapping windows have in common are computed once per chunk.
Scene embeddings: one pass per clip up to 10 s; longer clips average 10 s windows every 2.5 s.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch

from hear_mn.audio import extended_span
from hear_mn.frontend import LogMelFrontend
from hear_mn.hear import EmbeddingModel
from hear_mn.inference import inference_backbone
from hear_mn.mobilenet import MobileNet
from hear_mn.streaming import EmbeddingStream
from hear_mn.taps import concatenate_taps, embedding_size

SAMPLE_RATE = 32000
TIMESTAMP_WINDOW = 5120  # 160 ms
TIMESTAMP_HOP = 1600  # 50 ms
SCENE_WINDOW = 320000  # 10 s
SCENE_HOP = 80000  # 2.5 s
DEFAULT_WINDOW_BATCH = 256
# Scene passes hold at most this many samples (4 clips of 10 s): measured on 2 CPU cores,
# 16 clips in one pass ran at about half the throughput of 4 passes of 4 (larger
# intermediate tensors cost more than they save); it also bounds memory.
SCENE_SAMPLES_PER_PASS = 4 * SCENE_WINDOW


class MobileNetEmbedder(EmbeddingModel):
    """A MobileNet of width ``width`` with ``n_mels`` log-mel input and feature taps ``features``.

    ``window_batch_size`` bounds how many 160 ms windows go through the network at once
    (memory vs. speed). Parameters are random until :meth:`load_checkpoint`.
    """

    def __init__(
        self,
        *,
        name: str,
        width: float,
        n_mels: int,
        features: tuple[str, ...],
        autocast: bool = False,
        window_batch_size: int = DEFAULT_WINDOW_BATCH,
    ) -> None:
        size = embedding_size(features, width, n_mels)
        super().__init__(
            name=name,
            sample_rate=SAMPLE_RATE,
            scene_embedding_size=size,
            timestamp_embedding_size=size,
            autocast=autocast,
        )
        if window_batch_size < 1:
            raise ValueError(f"window_batch_size must be at least 1, got {window_batch_size}")
        self.features = features
        self.window_batch_size = window_batch_size
        self.frontend = LogMelFrontend(n_mels=n_mels, sample_rate=SAMPLE_RATE)
        # channels_last makes this depthwise-separable network several times faster on CPU;
        # loading a checkpoint copies into these tensors and keeps their layout.
        self.backbone = MobileNet(width).to(memory_format=torch.channels_last)
        self.eval()

    def load_checkpoint(self, state_dict: Mapping[str, torch.Tensor], *, source: str) -> None:
        """Load a released EfficientAT state dict (backbone only) strictly."""
        from hear_mn.weights import load_into

        load_into(self.backbone, state_dict, source=source)

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """Frontend + backbone + taps for a batch of equal-length signals: (batch, samples) -> (batch, D)."""
        return self.embed_mels(self.frontend(audio))

    def embed_mels(self, mels: torch.Tensor) -> torch.Tensor:
        """Backbone + taps of log-mel input: (batch, n_mels, frames) -> (batch, D)."""
        backbone = self._inference_backbone()
        outputs = backbone(mels[:, None].contiguous(memory_format=torch.channels_last))
        return concatenate_taps(self.features, outputs, mels)

    def _timestamp_embeddings(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n_sounds, n_samples = audio.shape
        n_windows = n_samples // TIMESTAMP_HOP + 1
        embeddings = self._embed_windows(
            audio, n_windows, TIMESTAMP_WINDOW, TIMESTAMP_HOP, self.window_batch_size
        )
        timestamps = torch.arange(n_windows, device=audio.device) * (
            1000.0 * TIMESTAMP_HOP / SAMPLE_RATE
        )
        return embeddings, timestamps.float().expand(n_sounds, n_windows)

    def _scene_embeddings(self, audio: torch.Tensor) -> torch.Tensor:
        n_sounds, n_samples = audio.shape
        if n_samples <= SCENE_WINDOW:
            per_pass = max(1, SCENE_SAMPLES_PER_PASS // n_samples)
            return torch.cat([self.embed_audio(audio[a:b]) for a, b in _chunks(n_sounds, per_pass)])
        n_windows = n_samples // SCENE_HOP + 1
        per_pass = SCENE_SAMPLES_PER_PASS // SCENE_WINDOW
        return self._embed_windows(audio, n_windows, SCENE_WINDOW, SCENE_HOP, per_pass).mean(1)

    def _inference_backbone(self) -> MobileNet:
        """The backbone rewritten for inference (:mod:`hear_mn.inference`), kept up to date.

        Kept outside the module tree (not in ``state_dict``, not moved by ``.to``): the key
        holds each tensor's storage and version, so loading weights, editing them in place or
        moving the model invalidates it. In training mode the plain backbone runs.
        """
        if self.backbone.training or torch.is_grad_enabled():
            return self.backbone
        key = tuple((t.data_ptr(), t._version) for t in self.backbone.state_dict().values())
        cached = self.__dict__.get("_for_inference")
        if cached is None or cached[0] != key:
            cached = (key, inference_backbone(self.backbone))
            self.__dict__["_for_inference"] = cached
        return cached[1]

    def stream(self) -> MobileNetStream:
        """Streaming timestamp embeddings (see :mod:`hear_mn.streaming`)."""
        return MobileNetStream(self)

    def embed_sliding_windows(self, signal: torch.Tensor, count: int) -> torch.Tensor:
        """Timestamp windows ``signal[k * hop : k * hop + window]``, k < count -> (count, D).

        ``window_batch_size`` windows at a time; used by streaming on its buffer.
        """
        parts = [
            self.embed_mels(
                self.frontend.sliding_windows(
                    signal[a * TIMESTAMP_HOP :], b - a, TIMESTAMP_WINDOW, TIMESTAMP_HOP
                )
            )
            for a, b in _chunks(count, self.window_batch_size)
        ]
        return torch.cat(parts) if parts else signal.new_empty(0, self.timestamp_embedding_size)

    def _embed_windows(
        self, audio: torch.Tensor, n_windows: int, size: int, hop: int, per_pass: int
    ) -> torch.Tensor:
        """Embeddings of ``size``-sample windows every ``hop`` centred on 0, hop, 2 hop, ...

        (n_sounds, n_windows, D). Windows of all sounds are batched together, ``per_pass``
        at a time, and their samples are taken from the clip only when their pass comes.
        """
        n_sounds = audio.shape[0]
        embeddings = torch.empty(
            n_sounds * n_windows, self.timestamp_embedding_size, device=audio.device
        )
        for start, stop in _chunks(n_sounds * n_windows, per_pass):
            mels = self.window_mels(audio, start, stop, n_windows, size, hop)
            embeddings[start:stop] = self.embed_mels(mels)
        return embeddings.reshape(n_sounds, n_windows, -1)

    def window_mels(
        self, audio: torch.Tensor, start: int, stop: int, n_windows: int, size: int, hop: int
    ) -> torch.Tensor:
        """Log-mel of windows ``start .. stop - 1`` of the flattened (sound, window) grid.

        Window w of a sound covers samples ``[w * hop - size // 2, w * hop + size // 2)`` of
        the mirror-extended clip; each sound's windows come from one span of it, so they
        share their common STFT frames (:meth:`LogMelFrontend.sliding_windows`).
        """
        parts = []
        index = start
        while index < stop:
            sound, first = divmod(index, n_windows)
            last = min(n_windows, first + stop - index)
            span_start = first * hop - size // 2
            span_stop = span_start + (last - first - 1) * hop + size
            span = extended_span(audio[sound], span_start, span_stop)
            parts.append(self.frontend.sliding_windows(span, last - first, size, hop))
            index += last - first
        return parts[0] if len(parts) == 1 else torch.cat(parts)


class MobileNetStream(EmbeddingStream):
    """Timestamp windows of a growing signal, emitted as soon as their samples are in.

    Window i covers samples [i * hop - 2560, i * hop + 2560) of the reflect-padded signal, so
    it is complete 80 ms after its centre; the left padding needs the first 2561 samples and
    the right padding the end of the signal (:meth:`close`). The buffer keeps only what
    pending windows and the right padding need: at most one window plus the pushed chunk.
    """

    def __init__(self, model: MobileNetEmbedder) -> None:
        super().__init__(model)
        self._head = torch.empty(0, device=model.device)
        self._buffer: torch.Tensor | None = None
        self._buffer_start = 0  # position of self._buffer[0] in the padded signal

    def _push(self, samples: torch.Tensor) -> torch.Tensor:
        half = TIMESTAMP_WINDOW // 2
        if self._buffer is None:
            self._head = torch.cat([self._head, samples])
            if self._head.shape[0] <= half:
                return self._empty()
            self._buffer = torch.cat([self._head[1 : half + 1].flip(0), self._head])
            self._head = self._head[:0]
        else:
            self._buffer = torch.cat([self._buffer, samples])
        available = self._buffer_start + self._buffer.shape[0]
        complete = (available - TIMESTAMP_WINDOW) // TIMESTAMP_HOP + 1
        embeddings = self._windows(complete - self.num_emitted)
        done = self.num_emitted + embeddings.shape[0]
        keep_from = min(done * TIMESTAMP_HOP, self.num_samples - 1)
        self._buffer = self._buffer[keep_from - self._buffer_start :]
        self._buffer_start = keep_from
        return embeddings

    def _close(self) -> torch.Tensor:
        if self._buffer is None:
            if self.num_samples == 0:
                return self._empty()
            return self.model._timestamp_embeddings(self._head[None])[0][0]
        half = TIMESTAMP_WINDOW // 2
        self._buffer = torch.cat([self._buffer, self._buffer[-(half + 1) : -1].flip(0)])
        total = self.num_samples // TIMESTAMP_HOP + 1
        return self._windows(total - self.num_emitted)

    def _windows(self, count: int) -> torch.Tensor:
        if count <= 0:
            return self._empty()
        start = self.num_emitted * TIMESTAMP_HOP - self._buffer_start
        return self.model.embed_sliding_windows(self._buffer[start:], count)

    def _timestamps(self, indices: torch.Tensor) -> torch.Tensor:
        return indices * (1000.0 * TIMESTAMP_HOP / SAMPLE_RATE)


def _chunks(total: int, size: int) -> Iterator[tuple[int, int]]:
    """(start, stop) ranges of at most ``size`` covering ``range(total)``."""
    for start in range(0, total, size):
        yield start, min(start + size, total)
