"""Streaming timestamp embeddings: push audio as it arrives, get the windows completed so far.

    stream = hear_mn.stream(model)
    for chunk in chunks:                 # 1-D, any length, at model.sample_rate
        embeddings, timestamps = stream.push(chunk)   # (k, D), (k,) ms
    embeddings, timestamps = stream.close()           # the rest, once the signal has ended

The concatenated outputs equal ``get_timestamp_embeddings(full_audio[None], model)`` for
any chunking. Each model family supplies the state machine (its windows and padding);
this base does the checks, precision and bookkeeping shared by all.
"""

from __future__ import annotations

import torch

from hear_mn.audio import as_audio_chunk
from hear_mn.hear import EmbeddingModel, _check_model


class EmbeddingStream:
    """Base of a family's streaming state. Subclasses implement ``_push`` and ``_close``."""

    def __init__(self, model: EmbeddingModel) -> None:
        self.model = model
        self.num_samples = 0
        self.num_emitted = 0
        self._closed = False

    def push(self, chunk: object) -> tuple[torch.Tensor, torch.Tensor]:
        """Add samples; returns the embeddings and timestamps (ms) of newly completed windows."""
        if self._closed:
            raise RuntimeError("this stream is closed; start a new one with hear_mn.stream(model)")
        samples = as_audio_chunk(chunk, device=self.model.device)
        self.num_samples += samples.shape[0]
        with torch.inference_mode(), self.model._precision():
            embeddings = self._push(samples)
        return self._emit(embeddings)

    def close(self) -> tuple[torch.Tensor, torch.Tensor]:
        """End of signal: the embeddings of the remaining windows (the right edge's padding)."""
        if self._closed:
            raise RuntimeError("this stream is already closed")
        self._closed = True
        with torch.inference_mode(), self.model._precision():
            embeddings = self._close()
        return self._emit(embeddings)

    def _emit(self, embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first = self.num_emitted
        self.num_emitted += embeddings.shape[0]
        indices = torch.arange(first, self.num_emitted, device=embeddings.device)
        return embeddings.float(), self._timestamps(indices).float()

    def _push(self, samples: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _close(self) -> torch.Tensor:
        raise NotImplementedError

    def _timestamps(self, indices: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _empty(self) -> torch.Tensor:
        return torch.empty(0, self.model.timestamp_embedding_size, device=self.model.device)


def stream(model: EmbeddingModel) -> EmbeddingStream:
    """Start streaming timestamp embeddings of one signal through ``model``."""
    return _check_model(model).stream()
