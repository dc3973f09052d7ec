"""Reading a needed file (weights, labels) whole, and only when it is a regular file.

A path given as weights may name a directory, a FIFO (opening one for reading waits for a
writer, forever), a device like ``/dev/zero`` (endless), or be longer than the system
allows: each is refused with a message that says what the path is, instead of "does not
exist", a hang or a raw OSError. The file is opened once, checked on that open descriptor
(so it cannot be swapped for a FIFO in between) and read whole: callers verify and load the
very same bytes.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from hear_mn.hub.errors import FileError

__all__ = ["is_regular_file", "read_regular_file", "what_it_is"]

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)  # a FIFO opens at once instead of waiting for a writer
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def what_it_is(mode: int) -> str:
    """What a file of mode ``mode`` is, in words ("a directory", "a FIFO (named pipe)", ...)."""
    return next((words for test, words in _KINDS if test(mode)), "not a regular file")


def _shown(path: Path) -> str:
    text = str(path)
    return text if len(text) <= 120 else f"{text[:70]}...{text[-40:]} ({len(text)} characters)"


def _path_error(path: Path, error: OSError, kind: str) -> FileError | None:
    """The clear error for a path the system refuses by its form, or None for the others."""
    if error.errno == errno.ENAMETOOLONG:
        return FileError(
            f"{kind} path {_shown(path)} is too long for this system (a name may have at most "
            "255 bytes, a whole path usually 4096): move the file to, or link it from, a "
            "folder with a shorter path"
        )
    if error.errno == errno.ELOOP:
        return FileError(f"{kind} path {_shown(path)} is a loop of symbolic links; fix the link")
    return None


def _not_regular(path: Path, mode: int, kind: str) -> FileError:
    return FileError(
        f"{kind} file {_shown(path)} is {what_it_is(mode)}, not a regular file: give the path "
        f"of the {kind} file itself"
    )


def is_regular_file(path: Path, kind: str = "data") -> bool:
    """Whether ``path`` is a regular file (following links); False when it does not exist.

    Raises :class:`FileError` for a path too long for the system or a loop of links, and
    OSError when it cannot be examined (say, a folder without search permission).
    """
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as error:
        raise _path_error(path, error, kind) or error from error
    return stat.S_ISREG(mode)


def read_regular_file(path: Path, kind: str = "data") -> bytes:
    """The whole content of the regular file ``path``, read through one descriptor.

    Raises :class:`FileError` when ``path`` is a directory, a FIFO, a device or a socket, is
    too long for the system or a loop of links; FileNotFoundError when it does not exist;
    other OSErrors (permissions, I/O errors) as they come.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as error:
        known = _path_error(path, error, kind)
        if known is not None:
            raise known from error
        if isinstance(error, (PermissionError, IsADirectoryError)) and os.path.isdir(path):
            raise _not_regular(path, stat.S_IFDIR, kind) from error  # Windows opens no folder
        raise
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _not_regular(path, mode, kind)
    with os.fdopen(fd, "rb", closefd=True) as handle:
        return handle.read()
