"""Streaming timestamp embeddings: push audio as it arrives, get the windows completed so far.

    stream = hear_mn.stream(model)
    for chunk in chunks:                 # 1-D, any length, at model.sample_rate
        embeddings, timestamps = stream.push(chunk)   # (k, D), (k,) ms
    embeddings, timestamps = stream.close()           # the rest, once the signal has ended

The concatenated outputs equal ``get_timestamp_embeddings(full_audio[None], model)`` for
any chunking. ``hear_mn.stream(model, sample_rate=44100)`` takes audio at another rate and
resamples it chunk by chunk (equal to resampling it whole). A push either completes or
leaves the stream as it was, so a failed push can be retried. Each model family supplies
the state machine (its windows and padding); this base does the checks, precision, rollback
and bookkeeping shared by all.
"""

from __future__ import annotations

import torch

from hear_mn.audio import StreamResampler, as_audio_chunk, check_sample_rate
from hear_mn.model import EmbeddingModel, as_embedding_model, require_finite
from hear_mn.threads import busy_machine_threads


class EmbeddingStream:
    """Base of a family's streaming state. Subclasses implement ``_push`` and ``_close``.

    ``live``: the windows are a live stream's (:func:`stream`); else (long files embedded
    block by block) they are the model's ``batch_job``. :attr:`job` is the kind of job
    (:data:`hear_mn.model.JOBS`) whose engine runs them.
    """

    batch_job = "timestamps"

    def __init__(self, model: EmbeddingModel) -> None:
        model.require_float32()
        self.model = model
        self.num_samples = 0  # at the model's rate
        self.num_emitted = 0
        self._peak = 0.0
        self._closed = False
        self._resampler: StreamResampler | None = None
        self._broken = ""
        self.live = False

    def output_settings(self) -> dict[str, object]:
        """The model's :meth:`~hear_mn.model.EmbeddingModel.output_settings` with the
        ``backend`` that runs this stream's windows ("torch", "onnxruntime")."""
        return {**self.model.output_settings(), "backend": self.model.engines()[self.job]}

    @property
    def job(self) -> str:
        """The kind of job of this stream's windows: "live", or its ``batch_job``."""
        return "live" if self.live else self.batch_job

    def push(self, chunk: object) -> tuple[torch.Tensor, torch.Tensor]:
        """Add samples; returns the embeddings and timestamps (ms) of newly completed windows.

        If the push fails (bad chunk, out of memory, non-finite embeddings), the stream is
        left as it was and the same chunk can be pushed again, except in a resampling
        stream once its resampler has taken the chunk (the error then says so).
        """
        if self._closed:
            raise RuntimeError("this stream is closed; start a new one with hear_mn.stream(model)")
        if self._broken:
            raise RuntimeError(self._broken)
        if self._resampler is None:
            return self._transaction(as_audio_chunk(chunk, device=self.model.device), False)
        samples = self._resampler.push(as_audio_chunk(chunk))
        return self._transaction(samples.to(self.model.device), False)

    def close(self) -> tuple[torch.Tensor, torch.Tensor]:
        """End of signal: the embeddings of the remaining windows (the right edge's padding)."""
        if self._closed:
            raise RuntimeError("this stream is already closed")
        if self._broken:
            raise RuntimeError(self._broken)
        tail = self._empty_samples()
        if self._resampler is not None:
            tail = self._resampler.push(tail.cpu(), last=True).to(self.model.device)
        embeddings, timestamps = self._transaction(tail, True)
        self._closed = True
        return embeddings, timestamps

    def _transaction(self, samples: torch.Tensor, last: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Take ``samples`` (and end the signal when ``last``) all or nothing."""
        saved = dict(self.__dict__)
        try:
            with busy_machine_threads():
                self.num_samples += samples.shape[0]
                if samples.numel():
                    self._peak = max(self._peak, float(samples.abs().max()))
                with torch.inference_mode(), self.model.precision():
                    embeddings = self._push(samples) if samples.numel() or not last else None
                    if last:
                        closing = self._close()
                        embeddings = (
                            closing if embeddings is None else torch.cat([embeddings, closing])
                        )
                require_finite(embeddings, "stream embeddings", lambda: self._peak)
            return self._emit(embeddings)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            if self._resampler is not None and samples.numel():
                self._broken = (
                    "a push failed after the stream's resampler took its samples, so the "
                    "stream cannot be resumed; start a new one with hear_mn.stream(model, "
                    "sample_rate=...)"
                )
            raise

    def _emit(self, embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first = self.num_emitted
        self.num_emitted += embeddings.shape[0]
        indices = torch.arange(first, self.num_emitted, device=embeddings.device)
        return embeddings.float(), self._timestamps(indices).float()

    def _empty_samples(self) -> torch.Tensor:
        return torch.empty(0, device=self.model.device)

    def _push(self, samples: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _close(self) -> torch.Tensor:
        raise NotImplementedError

    def _timestamps(self, indices: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _empty(self) -> torch.Tensor:
        return torch.empty(0, self.model.timestamp_embedding_size, device=self.model.device)


def stream(model: EmbeddingModel, sample_rate: int | None = None) -> EmbeddingStream:
    """Start streaming timestamp embeddings of one signal through ``model``.

    ``sample_rate``: the rate of the pushed audio when it is not ``model.sample_rate``;
    chunks are resampled with soxr as they come (the same samples as resampling it whole).
    Under backend "auto" (the default) the windows run in the engine measured fastest for
    single windows where it is installed (MobileNets: ONNX Runtime on the CPU); the stream's
    :meth:`~EmbeddingStream.output_settings` say which.
    """
    started = as_embedding_model(model).stream()
    started.live = True
    if sample_rate is not None and check_sample_rate(sample_rate) != model.sample_rate:
        started._resampler = StreamResampler(sample_rate, model.sample_rate)
    return started
