"""Classifying live audio: push chunks as they arrive, get each window's probabilities once the
window is complete.

    stream = classifier.stream(window=1.0)
    for chunk in chunks:                          # 1-D, any length
        probabilities, bounds = stream.push(chunk)   # (k, classes), (k, 2) seconds
    probabilities, bounds = stream.close()           # the last, shorter window

Windows are consecutive and ``window`` seconds long, as ``hear-mn predict --window`` cuts a
file; the concatenated outputs equal ``classifier.predict_signal(audio, window)`` on the
whole signal for any chunking (each window's scene embedding is computed on the same
samples). With ``sample_rate`` the chunks are resampled as they come (equal to resampling
the whole signal). Only the samples of the current window are held. A push that fails leaves
the stream as it was (unless its resampler took the chunk: the error then says so).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from hear_mn.audio import StreamResampler, as_audio_chunk, check_sample_rate
from hear_mn.model import EmbeddingModel

__all__ = ["ClassifierStream", "WindowClassifier"]


class WindowClassifier(Protocol):
    """What a stream needs of its classifier
    (:class:`hear_mn.classifier.classifier.Classifier`, which imports this module): the
    model, its rate, the class names and the probabilities of clips."""

    model: EmbeddingModel
    labels: list[str]
    sample_rate: int

    def predict(self, audio: object, *, sample_rate: int | None = None) -> torch.Tensor:
        """(clips, samples) at ``sample_rate`` -> (clips, classes) probabilities."""


class ClassifierStream:
    """The windowing state of one signal through a classifier."""

    def __init__(
        self, classifier: WindowClassifier, window: float, *, sample_rate: int | None = None
    ) -> None:
        if isinstance(window, bool) or not isinstance(window, (int, float)) or not window > 0:
            raise ValueError(f"window must be a positive number of seconds, got {window!r}")
        classifier.model.require_float32()
        self.classifier = classifier
        self.window = max(1, round(window * classifier.sample_rate))
        self.window_seconds = float(window)
        self._buffer = np.zeros(0, dtype=np.float32)
        self._start = 0  # sample index of the buffer's first sample
        self._closed = False
        self._broken = ""
        self._resampler = None
        if sample_rate is not None and check_sample_rate(sample_rate) != classifier.sample_rate:
            self._resampler = StreamResampler(sample_rate, classifier.sample_rate)

    def _windows(self, samples: np.ndarray, last: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Take ``samples`` (all or nothing): the probabilities and bounds of the windows they
        complete (with ``last``, also the remaining shorter one)."""
        buffer = np.concatenate([self._buffer, samples])
        full = len(buffer) // self.window
        cut = full * self.window
        clips = [buffer[i * self.window : (i + 1) * self.window] for i in range(full)]
        starts = [self._start + i * self.window for i in range(full)]
        if last and len(buffer) > cut:
            clips.append(buffer[cut:])
            starts.append(self._start + cut)
        rows = []
        if full:
            rows.append(self.classifier.predict(torch.from_numpy(np.stack(clips[:full]))))
        if len(clips) > full:
            rows.append(self.classifier.predict(torch.from_numpy(clips[-1][None])))
        classes = len(self.classifier.labels)
        probabilities = torch.cat(rows) if rows else torch.zeros(0, classes)
        rate = self.classifier.sample_rate
        bounds = torch.tensor(
            [[s / rate, (s + len(c)) / rate] for s, c in zip(starts, clips)], dtype=torch.float64
        ).reshape(-1, 2)
        # Committed only once every window is classified.
        self._buffer = buffer[cut:].copy()
        self._start += cut
        return probabilities.cpu(), bounds

    def push(self, chunk: object) -> tuple[torch.Tensor, torch.Tensor]:
        """Add samples; returns the probabilities (k, classes) and bounds (k, 2) in seconds of
        the windows they complete."""
        if self._closed:
            raise RuntimeError("this stream is closed; start a new one with classifier.stream()")
        if self._broken:
            raise RuntimeError(self._broken)
        samples = as_audio_chunk(chunk)
        if self._resampler is not None:
            samples = self._resampler.push(samples)
            try:
                return self._windows(samples.numpy(), False)
            except BaseException:
                self._broken = (
                    "a push failed after the stream's resampler took its samples, so the stream "
                    "cannot be resumed; start a new one with classifier.stream(sample_rate=...)"
                )
                raise
        return self._windows(samples.cpu().numpy(), False)

    def close(self) -> tuple[torch.Tensor, torch.Tensor]:
        """End of signal: the remaining samples as one last, shorter window (if any)."""
        if self._closed:
            raise RuntimeError("this stream is already closed")
        if self._broken:
            raise RuntimeError(self._broken)
        tail = np.zeros(0, dtype=np.float32)
        if self._resampler is not None:
            tail = self._resampler.push(torch.zeros(0), last=True).numpy()
        result = self._windows(tail, True)
        self._closed = True
        return result
