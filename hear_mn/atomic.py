"""Atomic file writes: a file appears whole or not at all, with the permissions the umask gives.

Every writer of the library goes through :func:`atomic_write` (embedding outputs, the
evaluator's files); :func:`remove_stale_temporaries` cleans up after writers that were killed.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "new_temporary_file", "remove_stale_temporaries"]


def new_temporary_file(target: Path) -> tuple[Path, BinaryIO]:
    """A new file beside ``target``, open for writing, whose permissions the umask decides.

    Created with mode 0o666 as programs create files, so 0o644 under umask 022; tempfile's
    files are 0o600, which would leave every output readable by its owner only.
    """
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
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
        for entry in entries:
            parts = entry.name.rsplit(".", 2)  # "." + target name, token, "tmp"
            if len(parts) == 3 and parts[2] == "tmp" and parts[0][1:] in names:
                Path(entry.path).unlink(missing_ok=True)
                removed += 1
    return removed


def atomic_write(path: str | os.PathLike[str], content: bytes | Callable[[BinaryIO], None]) -> Path:
    """Write ``content`` (bytes, or a function writing to a binary file) to ``path``
    atomically and return ``path``.

    It goes to a temporary file in the same directory, flushed to disk and moved over
    ``path`` with :func:`os.replace`, so a reader (or a killed run) never sees a partial file.
    Parent directories are created; the file's permissions follow the umask.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, handle = new_temporary_file(path)
    try:
        with handle:
            if callable(content):
                content(handle)
            else:
                handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
