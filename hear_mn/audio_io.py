"""Audio files in, arrays out: reading, mixing to mono, resampling, and atomic ``.npz`` writes.

Reading goes through soundfile (libsndfile: WAV, FLAC, OGG/Vorbis, Opus, MP3 with
libsndfile >= 1.1, AIFF, ...) and resampling through soxr at high quality, so no file is
ever stretched by linear interpolation. Everything that can go wrong with one file raises
:class:`AudioReadError`, whose message says which file and why, so a caller processing many
files can report it and carry on.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioReadError",
    "find_audio_files",
    "load_audio",
    "save_npz",
]

logger = logging.getLogger(__name__)

# Extensions picked up when a directory is searched; a file named directly is always tried.
AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".aif",
        ".aifc",
        ".aiff",
        ".au",
        ".caf",
        ".flac",
        ".mp3",
        ".oga",
        ".ogg",
        ".opus",
        ".rf64",
        ".snd",
        ".w64",
        ".wav",
        ".wave",
    }
)


class AudioReadError(ValueError):
    """An audio file cannot be used: missing, empty, corrupt, undecodable or without samples."""


def _soundfile():
    try:
        import soundfile
    except ImportError as error:  # pragma: no cover - a declared dependency
        raise ImportError(
            "reading audio files needs the soundfile package: pip install soundfile"
        ) from error
    return soundfile


def _resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    try:
        import soxr
    except ImportError as error:  # pragma: no cover - a declared dependency
        raise ImportError("resampling audio needs the soxr package: pip install soxr") from error
    return soxr.resample(audio, from_rate, to_rate, quality="HQ")


def load_audio(path: str | os.PathLike[str], sample_rate: int) -> np.ndarray:
    """Read ``path`` as float32 mono at ``sample_rate``: shape (n_samples,).

    Channels are averaged; a different file rate is converted with soxr (high quality).
    Raises :class:`AudioReadError` for a missing, empty, unreadable or corrupt file, a
    file with no samples, or one holding NaN/Inf samples.
    """
    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive int, got {sample_rate!r}")
    path = Path(path)
    if not path.is_file():
        reason = "is a directory" if path.is_dir() else "does not exist"
        raise AudioReadError(f"{path}: {reason}")
    if path.stat().st_size == 0:
        raise AudioReadError(f"{path}: empty file (0 bytes)")
    soundfile = _soundfile()
    try:
        data, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:  # libsndfile reports bad files with several exception types
        text = getattr(error, "error_string", None) or str(error).strip()
        detail = text.splitlines()[0] if text else type(error).__name__
        raise AudioReadError(f"{path}: not a readable audio file ({detail})") from error
    if data.shape[0] == 0:
        raise AudioReadError(f"{path}: the file holds no audio samples")
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(mono).all():
        raise AudioReadError(f"{path}: the file holds NaN or Inf samples")
    if int(file_rate) != sample_rate:
        logger.debug("%s: resampling %d Hz -> %d Hz", path, file_rate, sample_rate)
        mono = _resample(mono, int(file_rate), sample_rate)
        if mono.shape[0] == 0:
            raise AudioReadError(
                f"{path}: too short to resample from {file_rate} Hz to {sample_rate} Hz"
            )
    return np.ascontiguousarray(mono, dtype=np.float32)


def _is_hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def find_audio_files(inputs: Iterable[str | os.PathLike[str]]) -> list[tuple[Path, Path]]:
    """Expand files and directories into ``(path, relative_path)`` pairs.

    A file is taken as given, whatever its extension, with its name as relative path. A
    directory is searched recursively for files with an audio extension
    (:data:`AUDIO_EXTENSIONS`, any case), skipping hidden files and directories, and each
    file's relative path is its path inside that directory. Results keep the order of
    ``inputs``, each directory's files sorted; a file reached twice is listed once.
    Raises :class:`FileNotFoundError` for an input that does not exist.
    """
    found: list[tuple[Path, Path]] = []
    seen: set[Path] = set()

    def add(path: Path, relative: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.append((path, relative))

    for item in inputs:
        root = Path(item)
        if root.is_file():
            add(root, Path(root.name))
        elif root.is_dir():
            matches = []
            for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in filenames:
                    path = Path(dirpath) / name
                    relative = path.relative_to(root)
                    if path.suffix.lower() in AUDIO_EXTENSIONS and not _is_hidden(relative):
                        matches.append((relative.as_posix(), path, relative))
            for _, path, relative in sorted(matches):
                add(path, relative)
        else:
            raise FileNotFoundError(f"input {str(item)!r} does not exist")
    return found


def save_npz(path: str | os.PathLike[str], **arrays: object) -> Path:
    """Write ``arrays`` to the ``.npz`` file ``path`` atomically and return ``path``.

    The archive is written to a temporary file in the same directory, flushed to disk and
    moved over ``path`` with :func:`os.replace`, so a reader (or a killed run) never sees a
    partial file. Parent directories are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    tmp = Path(handle.name)
    try:
        with handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
