"""Moving a file's bytes: an atomic, checked HTTP download with a progress bar, and hashing.

The lowest layer of :mod:`hear_mn.hub` (which re-exports :func:`download_file`): it knows
nothing of the cache or the lookup order. A download goes to a temporary file in the
destination's directory that is renamed into place only after every check, so an
interrupted or corrupt download never leaves anything behind.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import logging
import os
import secrets
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Protocol

from tqdm import tqdm

from hear_mn.file_errors import (
    BadFileError,
    FileAccessError,
    FileUnavailableError,
    os_error_text,
)

__all__ = [
    "ENV_QUIET",
    "FileCheck",
    "download_file",
    "new_temp_file",
    "same_sha256",
    "sha256_of",
]

logger = logging.getLogger(__name__)

ENV_QUIET = "HEAR_MN_QUIET"  # any non-empty value hides the progress bar

_BLOCK = 1 << 20  # 1 MiB, for hashing and for download chunks


class FileCheck(Protocol):
    """Why the file at ``path`` is not a good copy, or None when it is.

    ``downloaded``: the file was just received (a check may be stricter then: a local copy
    may be in an older format). Raises OSError when the file cannot be read.
    """

    def __call__(self, path: Path, *, downloaded: bool) -> str | None: ...


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def same_sha256(expected: str, actual: str) -> bool:
    """Whether a SHA-256 on record (any case, blanks around it) equals a computed one."""
    return expected.strip().lower() == actual.lower()


def new_temp_file(directory: Path, name: str) -> tuple[Path, IO[bytes]]:
    """A new, empty ``.<name>.<random>.part`` in ``directory``, opened for writing.

    Created with mode 0o666 less the umask, like any file the user creates (tempfile's
    0o600 would leave cached files unreadable to other users).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        path = directory / f".{name}.{secrets.token_hex(6)}.part"
        try:
            fd = os.open(path, flags, 0o666)
        except FileExistsError:
            continue
        return path, os.fdopen(fd, "wb")
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(directory))


def _want_progress(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    if os.environ.get(ENV_QUIET, "").strip():
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):
        return False


def _content_length(response: object) -> int | None:
    headers = getattr(response, "headers", None)
    value = headers.get("Content-Length") if headers is not None else None
    try:
        length = int(value) if value is not None else None
    except ValueError:
        return None
    return length if length is not None and length >= 0 else None


def _fsync_dir(directory: Path) -> None:
    """Best effort: make the rename durable (not possible on every platform)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unwritable(directory: Path, error: OSError) -> FileAccessError:
    return FileAccessError(f"cannot write to directory {directory}: {os_error_text(error)}")


def _receive(response: IO[bytes], url: str, sink: IO[bytes], bar: tqdm) -> tuple[int, str, int]:
    """Copy the response body to ``sink``: (bytes received, sha256, bytes announced or -1)."""
    expected = _content_length(response)
    digest = hashlib.sha256()
    received = 0
    while True:
        try:
            chunk = response.read(_BLOCK)
        except http.client.IncompleteRead as error:
            received += len(error.partial)
            if expected is None:
                expected = received + (error.expected or 0)
            break
        except (OSError, http.client.HTTPException) as error:
            raise FileUnavailableError(
                f"download of {url} was interrupted after {received} bytes: {error}; "
                "run again to retry"
            ) from error
        if not chunk:
            break
        sink.write(chunk)
        digest.update(chunk)
        received += len(chunk)
        bar.update(len(chunk))
    return received, digest.hexdigest(), -1 if expected is None else expected


def _received_problem(
    received: int, expected: int, num_bytes: int | None, sha256: str | None, digest: str
) -> str | None:
    """What is wrong with a received body (length, size, hash), or None."""
    if expected >= 0 and received != expected:
        return f"it was truncated: got {received} of {expected} bytes"
    if num_bytes is not None and received != num_bytes:
        return (
            f"it has the wrong size: got {received} bytes, expected {num_bytes} (report it if "
            "this persists)"
        )
    if sha256 and not same_sha256(sha256, digest):
        return (
            f"it has the wrong sha256: expected {sha256.lower()}, got {digest}; the file may be "
            "corrupt or the release may have changed"
        )
    return None


def download_file(
    url: str,
    destination: Path,
    *,
    sha256: str | None = None,
    num_bytes: int | None = None,
    progress: bool | None = None,
    timeout: float = 60,
    check: FileCheck | None = None,
) -> Path:
    """Download ``url`` to ``destination`` atomically and return ``destination``.

    The body is streamed to a temporary file in the destination directory, fsynced, and
    checked against the server's Content-Length, ``num_bytes``, ``sha256`` and ``check``
    (``downloaded=True``; each when given) before it is moved into place with
    :func:`os.replace`. On failure the temporary file is removed and ``destination`` is not
    touched. A progress bar (tqdm, on stderr) is shown when ``progress`` is True, or when it
    is None, stderr is a terminal and ``$HEAR_MN_QUIET`` is unset.

    Raises :class:`FileUnavailableError` when the URL cannot be fetched (network or HTTP
    error), :class:`FileAccessError` when the destination directory cannot be written, and
    :class:`BadFileError` when the received data fails a check.
    """
    destination = Path(destination)
    directory = destination.parent
    request = urllib.request.Request(url, headers={"User-Agent": "hear_mn"})
    logger.info("downloading %s to %s", url, destination)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        temp, sink = new_temp_file(directory, destination.name)
    except OSError as error:
        raise _unwritable(directory, error) from error
    try:
        with sink:
            try:
                response = urllib.request.urlopen(request, timeout=timeout)
            except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
                raise FileUnavailableError(f"could not download {url}: {error}") from error
            bar = tqdm(
                total=_content_length(response) or num_bytes,
                desc=destination.name,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
                disable=not _want_progress(progress),
            )
            with response, bar:
                received, digest, expected = _receive(response, url, sink, bar)
            sink.flush()
            os.fsync(sink.fileno())
        problem = _received_problem(received, expected, num_bytes, sha256, digest)
        if problem is None and check is not None:
            problem = check(temp, downloaded=True)
        if problem is not None:
            raise BadFileError(
                f"download of {url} failed its checks: {problem}; run again to retry "
                "(nothing was saved)"
            )
        os.replace(temp, destination)
    except OSError as error:
        raise _unwritable(directory, error) from error
    finally:
        temp.unlink(missing_ok=True)
    _fsync_dir(directory)
    logger.info("saved %s (%d bytes)", destination, received)
    return destination
