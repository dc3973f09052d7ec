"""Atomic file writes: a file appears whole or not at all, with the permissions the umask gives.

Every file the library leaves on disk is written here (tests/test_architecture.py checks
it): :func:`atomic_write` for content at hand (embedding outputs, the evaluator's files,
classifier heads, hash records), :func:`atomic_output` for content that streams in or is
checked before it may take the target's place (downloads, ONNX files).
:func:`remove_stale_temporaries` cleans up after writers that were killed. Ctrl-C during an
:func:`atomic_write` is held until the write is done (:func:`deferred_interrupts`), so an
interrupted run never leaves half a file or a temporary one behind.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "atomic_output",
    "atomic_write",
    "deferred_interrupts",
    "new_temporary_file",
    "remove_stale_temporaries",
]

# A temporary file is named "." + stem + "." + 16 hex digits + ".tmp".
_TEMPORARY_EXTRA = len(".") + len(".0123456789abcdef.tmp")
# Hex digits of the target name's hash that end a shortened stem.
_STEM_HASH = 8


def _name_limit(folder: Path) -> int:
    """The longest file name (in bytes) the file system of ``folder`` allows."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows), or not known
        return 255


def _temporary_stem(name: str, limit: int) -> str:
    """The part of a temporary file's name that says whose it is: the target's ``name``, or,
    when that would make the name longer than ``limit`` bytes, a prefix of it followed by
    "~" and a hash of the whole name (still one stem per target)."""
    room = limit - _TEMPORARY_EXTRA
    if len(os.fsencode(name)) <= room:
        return name
    suffix = "~" + hashlib.sha256(os.fsencode(name)).hexdigest()[:_STEM_HASH]
    stem = name
    while len(os.fsencode(stem + suffix)) > room:
        stem = stem[:-1]
    return stem + suffix


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) while the block runs and raise :class:`KeyboardInterrupt` when it
    ends, so that what the block writes (and records) is finished, never cut halfway.

    Only the main thread receives signals, and only Python's own handler is replaced: in
    another thread, under another handler, or nested, this does nothing.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    received: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if received:
            raise KeyboardInterrupt  # noqa: B012 (Ctrl-C wins over what the block raised)


def new_temporary_file(target: Path) -> tuple[Path, BinaryIO]:
    """A new file beside ``target``, open for writing, whose permissions the umask decides.

    Created with mode 0o666 as programs create files, so 0o644 under umask 022; tempfile's
    files are 0o600, which would leave every output readable by its owner only. Its name
    stays within the file system's limit however long the target's is.
    """
    stem = _temporary_stem(target.name, _name_limit(target.parent))
    tmp = target.with_name(f".{stem}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    return tmp, os.fdopen(os.open(tmp, flags, 0o666), "wb")


def remove_stale_temporaries(targets: Iterable[Path]) -> int:
    """Delete the temporary files that writes of ``targets`` left behind when their process
    was killed mid-write (:func:`atomic_write` removes its own otherwise); returns how many.
    Only while nothing else is writing those targets."""
    by_folder: dict[Path, set[str]] = {}
    for target in targets:
        by_folder.setdefault(target.parent, set()).add(target.name)
    removed = 0
    for folder, names in by_folder.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        limit = _name_limit(folder)
        stems = {_temporary_stem(name, limit) for name in names}
        for entry in entries:
            parts = entry.name.rsplit(".", 2)  # "." + stem, token, "tmp"
            if len(parts) == 3 and parts[2] == "tmp" and parts[0][1:] in stems:
                Path(entry.path).unlink(missing_ok=True)
                removed += 1
    return removed


def _fsync_folder(folder: Path) -> None:
    """Best effort: make a rename in ``folder`` durable (not possible on every platform)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_output(
    path: str | os.PathLike[str], *, sync_folder: bool = False
) -> Iterator[tuple[Path, BinaryIO]]:
    """A temporary file beside ``path`` to write, moved over ``path`` when the block ends.

    Yields ``(temporary path, open binary file)``; the temporary path is for checks that
    read the file back (flush first). When the block ends normally the file is flushed,
    fsynced and moved over ``path`` with :func:`os.replace` (``sync_folder``: and the folder
    fsynced, best effort, so that the rename survives a crash); when it raises, or the move
    fails, the temporary file is removed and ``path`` is not touched. Parent folders are
    created; the file's permissions follow the umask. Unlike :func:`atomic_write`, Ctrl-C
    is held only while the file is put in place, so a long download can be interrupted.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, handle = new_temporary_file(path)
    try:
        with handle:
            yield tmp, handle
            with deferred_interrupts():
                handle.flush()
                os.fsync(handle.fileno())
                handle.close()  # before the move: Windows moves no open file
                os.replace(tmp, path)
                if sync_folder:
                    _fsync_folder(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike[str], content: bytes | Callable[[BinaryIO], None]) -> Path:
    """Write ``content`` (bytes, or a function writing to a binary file) to ``path``
    atomically and return ``path``.

    :func:`atomic_output`: a temporary file in the same directory, flushed to disk and moved
    over ``path``, so a reader (or a killed run) never sees a partial file. Parent
    directories are created; the file's permissions follow the umask. Ctrl-C is held until
    the file is in place (:func:`deferred_interrupts`).
    """
    with deferred_interrupts(), atomic_output(path) as (_, handle):
        if callable(content):
            content(handle)
        else:
            handle.write(content)
    return Path(path)
