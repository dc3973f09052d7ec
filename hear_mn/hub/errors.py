"""The errors for files the library needs (weights, labels, ONNX files): unavailable, bad or
unreadable. One hierarchy, one name each, for all of :mod:`hear_mn.hub` and its callers.
"""

from __future__ import annotations

import errno

__all__ = [
    "BadFileError",
    "FileAccessError",
    "FileError",
    "FileUnavailableError",
    "os_error_text",
]


class FileError(RuntimeError):
    """A file is unusable: corrupt, truncated, wrong hash, foreign or mismatched."""


class FileUnavailableError(FileError):
    """A file is not present locally and cannot be downloaded; ``reason`` says why."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = message if reason is None else reason


class BadFileError(FileError):
    """A file was read and its contents are refused: corrupt, unsafe or the wrong file.

    The one kind of error that proves a cached file bad, so the only one that removes it.
    """


class FileAccessError(FileError):
    """A file or folder cannot be read or written (permissions, I/O errors).

    Says nothing about the file's contents, so the file is never deleted for it.
    """


def os_error_text(error: OSError) -> str:
    """An OSError as its errno text and name, e.g. "Permission denied [EACCES]"."""
    name = errno.errorcode.get(error.errno, "") if error.errno else ""
    return f"{error.strerror or error} [{name}]" if name else str(error.strerror or error)
