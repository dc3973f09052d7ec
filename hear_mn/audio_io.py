"""Audio files in, arrays out: decoding, mixing to mono, resampling, and atomic ``.npz`` writes.

Decoding tries soundfile first (libsndfile: WAV, FLAC, OGG/Vorbis, Opus, MP3 with libsndfile
>= 1.1, AIFF, ...) and PyAV second (FFmpeg: AAC/m4a, Opus in webm, WMA, AC-3, ... and the
audio track of video files such as mp4, mkv, mov and webm). Either way the file is read in
blocks; each block is mixed to mono and fed to one soxr stream (high quality), so memory holds
the result plus one block, never the whole file at its own rate, and the result is exactly
that of resampling the whole mono signal at once; :func:`stream_audio` hands those samples
over slice by slice instead, keeping none (a long file embedded block by block). Everything that can go wrong with one file
raises :class:`AudioReadError`, whose message says which file and why, so a caller processing
many files can report it and carry on.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hear_mn.audio_sink import AudioReadError, MonoResampler, require
from hear_mn.decode_limits import DecodeLimit
from hear_mn.npz_output import save_npz

__all__ = [
    "AUDIO_EXTENSIONS",
    "MEDIA_EXTENSIONS",
    "audio_duration",
    "VIDEO_EXTENSIONS",
    "AudioInputs",
    "AudioReadError",
    "InputNameError",
    "find_audio_files",
    "load_audio",
    "save_npz",
    "scan_audio_inputs",
    "stream_audio",
]

logger = logging.getLogger(__name__)

# Extensions picked up when a directory is searched; a file named directly is always tried.
AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".aac",
        ".ac3",
        ".aif",
        ".aifc",
        ".aiff",
        ".amr",
        ".ape",
        ".au",
        ".caf",
        ".flac",
        ".m4a",
        ".m4b",
        ".mka",
        ".mp2",
        ".mp3",
        ".oga",
        ".ogg",
        ".opus",
        ".rf64",
        ".snd",
        ".spx",
        ".w64",
        ".wav",
        ".wave",
        ".weba",
        ".wma",
        ".wv",
    }
)
# Video containers whose audio track is read (by PyAV).
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".3gp",
        ".avi",
        ".flv",
        ".m4v",
        ".mkv",
        ".mov",
        ".mp4",
        ".mpeg",
        ".mpg",
        ".mts",
        ".ogv",
        ".webm",
        ".wmv",
    }
)
MEDIA_EXTENSIONS: frozenset[str] = AUDIO_EXTENSIONS | VIDEO_EXTENSIONS

# Takes a file's samples slice by slice (:func:`stream_audio`).
Receiver = Callable[[np.ndarray], None]

# Frames read from a file at a time (512 KiB as stereo float32): the memory beyond the result.
_BLOCK_FRAMES = 1 << 16


class InputNameError(ValueError):
    """Two inputs have the same name, so their files would get the same relative paths."""


@dataclass(frozen=True)
class AudioInputs:
    """What :func:`scan_audio_inputs` found.

    ``files``: ``(path, relative_path)`` of each file to decode. ``ignored``: ``(path,
    reason)`` of each other non-hidden file found in the directories, so that a caller can
    say which files it did not read and why instead of skipping them silently.
    ``unreadable``: ``(path, reason)`` of each input that could not be searched or
    followed (a folder that cannot be listed, a loop of symbolic links): failed inputs.
    """

    files: list[tuple[Path, Path]]
    ignored: list[tuple[Path, str]]
    unreadable: list[tuple[Path, str]] = field(default_factory=list)


def _read_with_soundfile(
    path: Path, sample_rate: int, limit: DecodeLimit, receiver: Receiver | None
) -> MonoResampler:
    with require("soundfile", "soundfile").SoundFile(str(path)) as source:
        sink = MonoResampler(path, source.samplerate, sample_rate, source.frames, limit, receiver)
        block = np.empty((_BLOCK_FRAMES, source.channels), np.float32)
        while len(read := source.read(out=block)):
            sink.push(read)
    sink.finish()
    return sink


def _float_frames(av: Any, container: Any, stream: Any) -> Iterator[Any]:
    """The stream's decoded frames as planar float32 (the converter flushed at the end)."""
    to_float = av.AudioResampler(format="fltp")
    for frame in container.decode(stream):
        yield from to_float.resample(frame)
    yield from to_float.resample(None)


def _expected_frames(container: Any, stream: Any, rate: int) -> int:
    """The stream's length in frames as the container states it (0 when it does not)."""
    if stream.duration and stream.time_base:
        return int(stream.duration * stream.time_base * rate)
    if container.duration:
        return int(container.duration * rate / 1_000_000)  # in FFmpeg's AV_TIME_BASE units
    return 0


def _read_with_pyav(
    path: Path, sample_rate: int, limit: DecodeLimit, receiver: Receiver | None
) -> MonoResampler:
    av = require("av", "av")
    sink = None
    with av.open(str(path)) as container:
        if not container.streams.audio:
            kinds = " and ".join(sorted({stream.type for stream in container.streams}))
            held = f"only {kinds}" if kinds else "no streams"
            raise LookupError(f"no audio stream (the file holds {held})")
        stream = container.streams.best("audio")
        for frame in _float_frames(av, container, stream):
            if sink is None:
                expected = _expected_frames(container, stream, frame.sample_rate)
                sink = MonoResampler(
                    path, frame.sample_rate, sample_rate, expected, limit, receiver
                )
            sink.push(frame.to_ndarray().T)
    if sink is None:
        raise AudioReadError(f"{path}: the file holds no audio samples")
    sink.finish()
    return sink


_DECODERS = (("soundfile", _read_with_soundfile), ("PyAV", _read_with_pyav))


def _reason(error: Exception) -> str:
    """One line from a decoder's exception (libsndfile and FFmpeg keep theirs in attributes)."""
    text = getattr(error, "error_string", None) or getattr(error, "strerror", None)
    text = str(text or error).strip()
    return text.splitlines()[0].rstrip(".") if text else type(error).__name__


def load_audio(path: str | os.PathLike[str], sample_rate: int) -> np.ndarray:
    """Read ``path`` as float32 mono at ``sample_rate``: shape (n_samples,).

    Decoded by soundfile, or by PyAV when soundfile cannot (m4a, webm, video files, ...),
    in blocks. Channels are averaged; a different file rate is converted with soxr (high
    quality). Raises :class:`AudioReadError` for a missing, empty, unreadable or corrupt file
    (naming each decoder's reason), a file with no samples, one holding NaN/Inf samples, or
    one too long for the memory available or ``$HEAR_MN_MAX_AUDIO_SECONDS``
    (:mod:`hear_mn.decode_limits`), which is refused before its samples are allocated.
    """
    return _decode(path, sample_rate, None).finish()


def stream_audio(
    path: str | os.PathLike[str], sample_rate: int, receivers: Callable[[], Receiver]
) -> int:
    """Decode ``path`` as :func:`load_audio` does, but hand the samples over slice by slice
    instead of keeping them: ``receivers()`` gives the function that takes them (a fresh
    one for each decoder tried, since a decoder that fails part-way is followed by the next
    from the file's start). Returns the number of samples. The slices joined are
    :func:`load_audio`'s samples bit for bit. Only ``$HEAR_MN_MAX_AUDIO_SECONDS`` bounds the
    length (nothing is held whole); an exception of a receiver is raised as it is.
    """
    return _decode(path, sample_rate, receivers).samples


class _ReceiverError(Exception):
    """A receiver's own exception, carried past the decoders' error handling."""


def _guarded(receiver: Receiver) -> Receiver:
    def receive(samples: np.ndarray) -> None:
        try:
            receiver(samples)
        except Exception as error:
            raise _ReceiverError() from error

    return receive


def _decode(
    path: str | os.PathLike[str], sample_rate: int, receivers: Callable[[], Receiver] | None
) -> MonoResampler:
    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive int, got {sample_rate!r}")
    limit = DecodeLimit(sample_rate)
    if receivers is not None:
        limit.memory_samples = None  # handed over slice by slice: never held whole
    path = Path(path)
    if not path.is_file():
        reason = "is a directory" if path.is_dir() else "does not exist"
        raise AudioReadError(f"{path}: {reason}")
    if path.stat().st_size == 0:
        raise AudioReadError(f"{path}: empty file (0 bytes)")
    reasons = []
    for name, read in _DECODERS:
        receiver = None if receivers is None else _guarded(receivers())
        try:
            return read(path, sample_rate, limit, receiver)
        except AudioReadError:
            raise
        except _ReceiverError as failed:
            raise failed.__cause__ from None
        except MemoryError as error:  # numpy's, or soxr's std::bad_alloc: this file only
            reason = str(error).splitlines()[0] if str(error) else "MemoryError"
            raise AudioReadError(f"{path}: not enough memory to decode it ({reason})") from None
        except Exception as error:  # each library reports bad files with several exception types
            reasons.append(f"{name}: {_reason(error)}")
            logger.debug("%s: %s cannot read it", path, reasons[-1])
    raise AudioReadError(f"{path}: not a readable audio file ({'; '.join(reasons)})")


def audio_duration(path: str | os.PathLike[str]) -> float | None:
    """The file's duration in seconds as its header states it (None when unknown or
    unreadable): cheap, for progress estimates, not a promise that it decodes."""
    path = Path(path)
    try:
        info = require("soundfile", "soundfile").info(str(path))
        return float(info.frames) / info.samplerate
    except Exception:  # not a soundfile format: ask FFmpeg's container
        pass
    try:
        with require("av", "av").open(str(path)) as container:
            stream = container.streams.audio[0] if container.streams.audio else None
            milliseconds = _expected_frames(container, stream, 1000) if stream else 0
            return milliseconds / 1000 or None
    except Exception:  # unreadable: load_audio will say why
        return None


def _folder_error(error: OSError) -> tuple[Path, str]:
    reason = error.strerror or str(error)
    hint = "; check its permissions" if isinstance(error, PermissionError) else ""
    return Path(error.filename), f"cannot read this folder ({reason}){hint}"


def _visible_files(root: Path, unreadable: list[tuple[Path, str]]) -> Iterator[tuple[Path, Path]]:
    """``(path, path inside root)`` of the files under ``root``, sorted; hidden ones left
    out. Folders that cannot be listed go to ``unreadable``, with why."""
    found = []
    walk = os.walk(
        root, onerror=lambda error: unreadable.append(_folder_error(error)), followlinks=False
    )
    for dirpath, dirnames, filenames in walk:
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith("."):
                path = Path(dirpath) / name
                found.append((path.relative_to(root).as_posix(), path))
    for relative, path in sorted(found):
        yield path, Path(relative)


def _input_folders(roots: list[Path]) -> list[str]:
    """The folder each input's files go under when several inputs are given: its own name.

    Two different inputs of the same name would mix their files, so they are refused.
    """
    names = [Path(os.path.abspath(root)).name for root in roots]  # "." and "x/" named too
    owners: dict[str, Path] = {}
    for root, name in zip(roots, names):
        first = owners.setdefault(name, root)
        if first.resolve() != root.resolve():
            raise InputNameError(
                f"inputs {first} and {root} have the same name {name!r}, so their files "
                "would get the same output paths; give one of them another name (a symbolic "
                "link will do) or process them separately"
            )
    return names


def _not_media_reason(path: Path) -> str:
    return "not an audio or video file extension" if path.suffix else "no file extension"


LINK_LOOP = "a loop of symbolic links that never reaches a file; fix or remove the link"


def _is_link_loop(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError as error:
        return error.errno == errno.ELOOP
    return False


def scan_audio_inputs(inputs: Iterable[str | os.PathLike[str]]) -> AudioInputs:
    """Expand files and directories into the files to decode and the files left out (why).

    A file is taken as given, whatever its extension, with its name as relative path. A
    directory is searched recursively for files with an audio or video extension
    (:data:`MEDIA_EXTENSIONS`, any case), skipping hidden files and directories; its other
    files are listed in ``ignored`` with the reason. A file's relative path is its path
    inside the directory; with several inputs it is prefixed by the directory's own name
    (``train/a.wav``, ``test/a.wav``), so that inputs never collide, and two inputs of the
    same name raise :class:`InputNameError`. Results keep the order of ``inputs``, each
    directory's files sorted; a file reached twice is listed once. Folders that cannot be
    listed and loops of symbolic links (given or found) are ``unreadable``, not the end of
    the scan. Raises :class:`FileNotFoundError` for an input that does not exist.
    """
    unreadable: list[tuple[Path, str]] = []
    roots = []
    for root in map(Path, inputs):
        if _is_link_loop(root):
            unreadable.append((root, LINK_LOOP))
        elif not root.is_file() and not root.is_dir():
            raise FileNotFoundError(f"input {str(root)!r} does not exist")
        else:
            roots.append(root)
    folders = _input_folders(roots) if len(roots) > 1 else [""] * len(roots)
    files: list[tuple[Path, Path]] = []
    ignored: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for root, folder in zip(roots, folders):
        direct = root.is_file()
        if direct:
            found = [(root, Path(root.name))]
        else:
            found = [
                (path, Path(folder, relative))
                for path, relative in _visible_files(root, unreadable)
            ]
        for path, relative in found:
            wanted = direct or path.suffix.lower() in MEDIA_EXTENSIONS
            try:
                key = path.resolve()
            except (OSError, RuntimeError):  # RuntimeError: a loop, before Python 3.13
                if wanted:
                    unreadable.append((path, LINK_LOOP))
                else:
                    ignored.append((path, _not_media_reason(path)))
                continue
            if key in seen:
                continue
            seen.add(key)
            if wanted:
                files.append((path, relative))
            else:
                ignored.append((path, _not_media_reason(path)))
    return AudioInputs(files, ignored, unreadable)


def find_audio_files(inputs: Iterable[str | os.PathLike[str]]) -> list[tuple[Path, Path]]:
    """Expand files and directories into ``(path, relative_path)`` pairs.

    The ``files`` of :func:`scan_audio_inputs` (see there); the files it ignores are dropped.
    """
    return scan_audio_inputs(inputs).files
