"""Long signals embedded block by block, so that memory holds one block and the output, not
the file.

A file longer than :data:`LONG_SECONDS` is decoded slice by slice
(:func:`hear_mn.audio_io.stream_audio`) and pushed, in blocks of :data:`BLOCK_SECONDS` cut
from the start of the signal, through the model's streams: ``model.stream()`` for timestamp
embeddings and ``model.scene_stream()`` for the scene embedding. The streams compute the
windows (or chunks) as their samples arrive, with the overlap and padding the whole-signal
computation uses, so the result is the whole-file one within float32 rounding
(tests/test_long_files.py: 1e-5 of the largest value). A long clip already in memory (the
Ray engine's, the evaluator's) goes through the same blocks (:func:`embed_blocks`), so every
engine gives it the same numbers bit for bit. A model without both streams is embedded whole.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Iterable

import numpy as np
import torch

from hear_mn.model import EmbeddingModel

__all__ = [
    "BLOCK_SECONDS",
    "LONG_SECONDS",
    "BlockEmbedding",
    "FileReceiver",
    "embed_blocks",
    "embeds_in_blocks",
    "is_long",
]

# Files (and clips) longer than this are embedded block by block; shorter ones are decoded
# whole and batched with files of their length. 60 s at 32 kHz is 7.7 MB of float32.
LONG_SECONDS = 60.0
# Audio pushed through a stream at a time: enough for full forward passes (256 timestamp
# windows of a MobileNet are 12.8 s; 32 one-second chunks of Audio-MLP are 32 s).
BLOCK_SECONDS = 32.0
# Rows of a long file's output are kept in chunks of this size, each its own memory mapping.
ROWS_CHUNK_BYTES = 8 << 20


def embeds_in_blocks(model: object) -> bool:
    """Whether ``model`` offers both streams (timestamps and scene) that blocks need."""
    return (
        isinstance(model, EmbeddingModel)
        and type(model).stream is not EmbeddingModel.stream
        and callable(getattr(model, "scene_stream", None))
    )


def is_long(model: object, n_samples: int) -> bool:
    """Whether a signal of ``n_samples`` at the model's rate is embedded block by block."""
    return embeds_in_blocks(model) and n_samples > LONG_SECONDS * model.sample_rate


def _mapped_empty(rows: int, shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised float32 array in a memory mapping of its own, given back to the
    system as soon as the array is freed (the C heap may keep freed blocks)."""
    count = rows * int(np.prod(shape, dtype=np.int64))
    return np.frombuffer(mmap.mmap(-1, max(1, 4 * count)), np.float32, count).reshape(rows, *shape)


class _Rows:
    """float32 rows collected in chunks of :data:`ROWS_CHUNK_BYTES`, each a mapping of its own,
    and joined once at the end, each chunk freed as it is copied: the output exists once,
    plus one chunk. (An array grown in place is over-allocated, and zero-filled, by as much as
    it grows at a time; small pieces freed after a join may stay in the C heap.)"""

    def __init__(self, width: int | None) -> None:
        self._shape = () if width is None else (width,)
        self._chunk_rows = max(1, ROWS_CHUNK_BYTES // (4 * (width or 1)))
        self._chunks: list[np.ndarray] = []
        self._filled = 0  # rows in the last chunk
        self._count = 0

    def add(self, rows: np.ndarray) -> None:
        start = 0
        while start < len(rows):
            if not self._chunks or self._filled == len(self._chunks[-1]):
                self._chunks.append(_mapped_empty(self._chunk_rows, self._shape))
                self._filled = 0
            take = min(len(rows) - start, len(self._chunks[-1]) - self._filled)
            self._chunks[-1][self._filled : self._filled + take] = rows[start : start + take]
            self._filled += take
            start += take
        self._count += len(rows)

    def array(self) -> np.ndarray:
        """The rows as one array (a copy, not a view holding a chunk), made once."""
        joined = np.empty((self._count, *self._shape), np.float32)
        position = 0
        while self._chunks:
            chunk = self._chunks.pop(0)[: self._count - position]
            joined[position : position + len(chunk)] = chunk
            position += len(chunk)
        self._chunks, self._filled = [joined], self._count
        return joined


class BlockEmbedding:
    """One signal's output (as :func:`hear_mn.batch.embed_arrays` gives it: ``embedding``,
    and ``timestamps`` with ``timestamps``) computed from its samples pushed in pieces of
    any size; blocks of :data:`BLOCK_SECONDS` go through the model's stream as they fill.
    ``progress(seconds)`` is called after each block with the seconds pushed so far."""

    def __init__(
        self,
        model: EmbeddingModel,
        timestamps: bool,
        progress: Callable[[float], None] | None = None,
    ) -> None:
        self._model = model
        self._timestamps = timestamps
        self._stream = model.stream() if timestamps else model.scene_stream()
        self._block = max(1, round(BLOCK_SECONDS * model.sample_rate))
        self._pending: list[np.ndarray] = []
        self._pending_samples = 0
        self._pushed = 0
        self._progress = progress
        width = model.timestamp_embedding_size if timestamps else model.scene_embedding_size
        self._embeddings = _Rows(width)
        self._times = _Rows(None)

    def push(self, samples: np.ndarray) -> None:
        """Add the next samples of the signal (1-D float32, at the model's rate)."""
        self._pending.append(samples)
        self._pending_samples += len(samples)
        while self._pending_samples >= self._block:
            self._push_block(self._take(self._block))

    def finish(self) -> dict[str, np.ndarray]:
        """End of signal: the rest pushed, the stream closed; the output's arrays."""
        if self._pending_samples:
            self._push_block(self._take(self._pending_samples))
        self._collect(*self._stream.close())
        embeddings = self._embeddings.array()
        if self._timestamps:
            return {"embedding": embeddings, "timestamps": self._times.array()}
        return {"embedding": embeddings[0]}

    def _take(self, count: int) -> np.ndarray:
        """The first ``count`` pending samples, as one array."""
        joined = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        block, rest = joined[:count], joined[count:]
        self._pending = [rest] if len(rest) else []
        self._pending_samples = len(rest)
        return block

    def _push_block(self, block: np.ndarray) -> None:
        self._collect(*self._stream.push(torch.from_numpy(block)))
        self._pushed += len(block)
        if self._progress is not None:
            self._progress(self._pushed / self._model.sample_rate)

    def _collect(self, embeddings: torch.Tensor, times: torch.Tensor) -> None:
        if embeddings.shape[0]:
            self._embeddings.add(embeddings.cpu().numpy())
            self._times.add(times.cpu().numpy())


def embed_blocks(
    model: EmbeddingModel,
    pieces: Iterable[np.ndarray],
    timestamps: bool,
    progress: Callable[[float], None] | None = None,
) -> dict[str, np.ndarray]:
    """The output of the signal made of ``pieces`` (consecutive 1-D float32 arrays at the
    model's rate, any sizes), computed block by block (:class:`BlockEmbedding`)."""
    embedding = BlockEmbedding(model, timestamps, progress)
    for piece in pieces:
        embedding.push(np.asarray(piece, dtype=np.float32))
    return embedding.finish()


class FileReceiver:
    """Takes a file's samples as they are decoded (a receiver of
    :func:`hear_mn.audio_io.stream_audio`): keeps them while the file is no longer than
    :data:`LONG_SECONDS`, and beyond that embeds them block by block, keeping none.

    After decoding, :attr:`long` says which: :meth:`audio` is a short file's signal (to be
    batched with files of its length), :meth:`result` a long file's output.
    """

    def __init__(
        self,
        model: EmbeddingModel,
        timestamps: bool,
        progress: Callable[[float], None] | None = None,
    ) -> None:
        self._model, self._timestamps, self._progress = model, timestamps, progress
        self._head: list[np.ndarray] = []
        self._head_samples = 0
        self._received = 0
        self._blocks: BlockEmbedding | None = None

    @property
    def seconds(self) -> float:
        """Seconds of audio received so far."""
        return self._received / self._model.sample_rate

    @property
    def long(self) -> bool:
        """Whether the file was long, hence embedded block by block."""
        return self._blocks is not None

    def __call__(self, samples: np.ndarray) -> None:
        self._received += len(samples)
        if self._blocks is not None:
            self._blocks.push(samples)
            return
        self._head.append(samples)
        self._head_samples += len(samples)
        if is_long(self._model, self._head_samples):
            self._blocks = BlockEmbedding(self._model, self._timestamps, self._progress)
            head, self._head = self._head, []
            for piece in head:
                self._blocks.push(piece)

    def audio(self) -> np.ndarray:
        """A short file's whole signal."""
        return np.concatenate(self._head) if self._head else np.zeros(0, np.float32)

    def result(self) -> dict[str, np.ndarray]:
        """A long file's output (:meth:`BlockEmbedding.finish`)."""
        return self._blocks.finish()
