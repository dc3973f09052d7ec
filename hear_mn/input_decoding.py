"""An input file decoded for batch embedding, with the identity of the bytes it came from.

The identity (:func:`hear_mn.resume.input_record`: size, modification time, SHA-256) is
taken before decoding, so that a file changed meanwhile is found changed on the next run.
:func:`decode_input` gives the whole signal (the Ray engine's path); :func:`decode_or_embed`
gives a short file's signal or a long file's output, embedded block by block while it was
decoded (:mod:`hear_mn.long_audio`), the local engine's path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from hear_mn.audio_io import AudioReadError, load_audio, stream_audio
from hear_mn.long_audio import FileReceiver
from hear_mn.model import EmbeddingModel
from hear_mn.resume import input_record

__all__ = ["decode_input", "decode_or_embed"]


def _input_record(path: Path, sample_rate: int) -> dict[str, object]:
    try:
        return input_record(path)
    except OSError as error:
        load_audio(path, sample_rate)  # says why in its words when it cannot read it either
        raise AudioReadError(f"{path}: cannot read it ({error.strerror or error})") from None


def decode_input(path: Path, sample_rate: int) -> tuple[np.ndarray, dict[str, object]]:
    """The audio of ``path`` and the identity of the bytes it came from
    (:func:`hear_mn.resume.input_record`, taken first, so that a file changed meanwhile
    is found changed on the next run); raises :class:`AudioReadError`."""
    record = _input_record(path, sample_rate)
    return load_audio(path, sample_rate), record


def decode_or_embed(
    path: Path,
    model: EmbeddingModel,
    timestamps: bool,
    progress: Callable[[float], None] | None = None,
) -> tuple[FileReceiver, dict[str, object]]:
    """Decode ``path`` into a :class:`~hear_mn.long_audio.FileReceiver`: a short file's
    audio, or a long file's output embedded block by block as it was decoded (``progress``
    gets its seconds done so far), and the input's identity (as :func:`decode_input`).
    Raises :class:`AudioReadError`, or the model's error for a long file."""
    record = _input_record(path, int(model.sample_rate))
    receivers: list[FileReceiver] = []

    def receiver() -> FileReceiver:
        receivers.append(FileReceiver(model, timestamps, progress))
        return receivers[-1]

    stream_audio(path, int(model.sample_rate), receiver)
    return receivers[-1], record
