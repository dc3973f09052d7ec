"""EfficientAT MobileNets as HEAR models: frontend -> backbone -> taps, plus HEAR windowing.

Timestamp embeddings: 160 ms windows every 50 ms over the reflect-padded clip, each window
through frontend and backbone on its own (as the reference does), but many windows per
forward pass and in bounded chunks, so an hour of audio needs a bounded working set.
Scene embeddings: one pass per clip up to 10 s; longer clips average 10 s windows every 2.5 s.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch

from hear_mn.audio import reflect_pad
from hear_mn.frontend import LogMelFrontend
from hear_mn.hear import EmbeddingModel
from hear_mn.mobilenet import MobileNet
from hear_mn.taps import concatenate_taps, embedding_size

SAMPLE_RATE = 32000
TIMESTAMP_WINDOW = 5120  # 160 ms
TIMESTAMP_HOP = 1600  # 50 ms
SCENE_WINDOW = 320000  # 10 s
SCENE_HOP = 80000  # 2.5 s
DEFAULT_WINDOW_BATCH = 256
# Scene passes are grouped so that one pass holds at most this many samples (16 clips of 10 s).
SCENE_SAMPLES_PER_PASS = 16 * SCENE_WINDOW


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
        mels = self.frontend(audio)
        outputs = self.backbone(mels[:, None].contiguous(memory_format=torch.channels_last))
        return concatenate_taps(self.features, outputs, mels)

    def _timestamp_embeddings(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n_sounds, n_samples = audio.shape
        half = TIMESTAMP_WINDOW // 2
        windows = reflect_pad(audio, half, half).unfold(-1, TIMESTAMP_WINDOW, TIMESTAMP_HOP)
        n_windows = windows.shape[1]
        flat = windows[0] if n_sounds == 1 else None
        embeddings = torch.empty(
            n_sounds * n_windows, self.timestamp_embedding_size, device=audio.device
        )
        for start, stop in _chunks(n_sounds * n_windows, self.window_batch_size):
            if flat is not None:
                batch = flat[start:stop]
            else:
                index = torch.arange(start, stop, device=audio.device)
                batch = windows[index // n_windows, index % n_windows]
            embeddings[start:stop] = self.embed_audio(batch)
        timestamps = torch.arange(n_windows, device=audio.device) * (
            1000.0 * TIMESTAMP_HOP / SAMPLE_RATE
        )
        return (
            embeddings.reshape(n_sounds, n_windows, -1),
            timestamps.float().expand(n_sounds, n_windows),
        )

    def _scene_embeddings(self, audio: torch.Tensor) -> torch.Tensor:
        n_sounds, n_samples = audio.shape
        if n_samples <= SCENE_WINDOW:
            per_pass = max(1, SCENE_SAMPLES_PER_PASS // n_samples)
            return torch.cat([self.embed_audio(audio[a:b]) for a, b in _chunks(n_sounds, per_pass)])
        half = SCENE_WINDOW // 2
        windows = reflect_pad(audio, half, half).unfold(-1, SCENE_WINDOW, SCENE_HOP)
        per_pass = max(1, SCENE_SAMPLES_PER_PASS // SCENE_WINDOW)
        means = []
        for clip_windows in windows:
            total = sum(
                self.embed_audio(clip_windows[a:b]).sum(0)
                for a, b in _chunks(clip_windows.shape[0], per_pass)
            )
            means.append(total / clip_windows.shape[0])
        return torch.stack(means)


def _chunks(total: int, size: int) -> Iterator[tuple[int, int]]:
    """(start, stop) ranges of at most ``size`` covering ``range(total)``."""
    for start in range(0, total, size):
        yield start, min(start + size, total)
