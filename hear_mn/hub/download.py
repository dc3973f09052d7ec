"""Moving a file's bytes: an atomic, checked, bounded HTTP download with a progress bar, and
hashing.

It knows nothing of the cache or the lookup order (:mod:`hear_mn.hub.fetch` does). A
download goes to a temporary file in the destination's directory
(:func:`hear_mn.atomic.atomic_output`) that is moved into place only after every check, so
an interrupted or corrupt download never leaves anything behind.

A download is bounded (:mod:`hear_mn.hub.limits`): never more than the size expected,
announced or not, and never slower than a minimum rate, so a server that lies about the
size, never ends, trickles or stalls is cut off with a clear message.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import logging
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from tqdm import tqdm

from hear_mn.atomic import atomic_output
from hear_mn.hub.errors import (
    BadFileError,
    FileAccessError,
    FileUnavailableError,
    os_error_text,
)
from hear_mn.hub.limits import (
    ENV_MAX_BYTES,
    ENV_MIN_RATE,
    ENV_RATE_WINDOW,
    DownloadLimits,
    too_slow,
)

__all__ = [
    "ENV_MAX_BYTES",
    "ENV_MIN_RATE",
    "ENV_QUIET",
    "ENV_RATE_WINDOW",
    "ContentCheck",
    "DownloadLimits",
    "FileCheck",
    "download_bytes",
    "download_file",
    "same_sha256",
    "sha256_of",
]

logger = logging.getLogger(__name__)

ENV_QUIET = "HEAR_MN_QUIET"  # any non-empty value hides the progress bar

_BLOCK = 1 << 20  # 1 MiB, for hashing and for download chunks


class FileCheck(Protocol):
    """Why the file at ``path`` is not a good copy, or None when it is.

    ``downloaded``: the file came from a download (just received, or the cache's copy of
    one), so it must be in the published format (a copy the user gave may be in an older
    one). Raises OSError when the file cannot be read.
    """

    def __call__(self, path: Path, *, downloaded: bool) -> str | None: ...


class ContentCheck(Protocol):
    """Why ``data``, the bytes of the file at ``path``, is not a good copy, or None when it is.

    Like :class:`FileCheck`, but on bytes already read, so that what is checked is exactly
    what the caller then uses (``path`` is for messages, and for checks that need a file).
    """

    def __call__(self, data: bytes, path: Path, *, downloaded: bool) -> str | None: ...


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


def _unwritable(directory: Path, error: OSError) -> FileAccessError:
    return FileAccessError(f"cannot write to directory {directory}: {os_error_text(error)}")


@dataclass
class _Body:
    """What a download received: where it was copied, its hash, and the limits it obeys."""

    url: str
    sinks: tuple[IO[bytes], ...]
    limits: DownloadLimits
    cap: int  # the most bytes accepted
    cap_text: str  # "the expected N bytes", or the overall cap and how to raise it
    received: int = 0

    def __post_init__(self) -> None:
        self.digest = hashlib.sha256()

    def add(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > self.cap:
            raise BadFileError(
                f"download of {self.url} was stopped: the server sent more than {self.cap_text}"
                " (nothing was saved)"
            )
        for sink in self.sinks:
            sink.write(chunk)
        self.digest.update(chunk)


def _receive(response: IO[bytes], body: _Body, bar: tqdm) -> int:
    """Copy the response body into ``body`` within its limits: the bytes announced or -1."""
    expected = _content_length(response)
    read = getattr(response, "read1", None) or response.read  # read1: what has arrived
    limits = body.limits
    window_start, window_bytes = time.monotonic(), 0
    while True:
        try:
            chunk = read(_BLOCK)
        except http.client.IncompleteRead as error:
            body.add(error.partial)
            if expected is None:
                expected = body.received + (error.expected or 0)
            break
        except TimeoutError as error:
            raise too_slow(body.url, limits, window_bytes, limits.window) from error
        except (OSError, http.client.HTTPException) as error:
            raise FileUnavailableError(
                f"download of {body.url} was interrupted after {body.received} bytes: {error}; "
                "run again to retry"
            ) from error
        if not chunk:
            break
        body.add(chunk)
        bar.update(len(chunk))
        window_bytes += len(chunk)
        elapsed = time.monotonic() - window_start
        if limits.min_rate and elapsed >= limits.window:
            if window_bytes < limits.min_rate * elapsed:
                raise too_slow(body.url, limits, window_bytes, elapsed)
            window_start, window_bytes = time.monotonic(), 0
    return -1 if expected is None else expected


def _received_problem(
    received: int,
    expected: int,
    num_bytes: int | None,
    sha256: str | None,
    digest: str,
    expected_source: str = "",
) -> str | None:
    """What is wrong with a received body (length, size, hash), or None; ``expected_source``
    says where the expected size and hash come from when not from the package."""
    if expected >= 0 and received != expected:
        return f"it was truncated: got {received} of {expected} bytes"
    if num_bytes is not None and received != num_bytes:
        return (
            f"it has the wrong size: got {received} bytes, expected {num_bytes}"
            f"{f' ({expected_source})' if expected_source else ''} (report it if this persists)"
        )
    if sha256 and not same_sha256(sha256, digest):
        return (
            f"it has the wrong sha256: expected {sha256.lower()}"
            f"{f' ({expected_source})' if expected_source else ''}, got {digest}; the file may be "
            "corrupt, an impostor, or the release may have changed"
        )
    return None


def _cap(
    url: str,
    num_bytes: int | None,
    announced: int | None,
    limits: DownloadLimits,
    expected_source: str,
) -> tuple[int, str]:
    """(most bytes accepted, its wording); refuses at once a length announced beyond it."""
    if num_bytes is not None:
        cap, text = num_bytes, f"the expected {num_bytes} bytes"
        if expected_source:
            text += f" ({expected_source})"
    else:
        cap = limits.max_bytes
        text = f"{cap} bytes, the most accepted for a file of unknown size (set {ENV_MAX_BYTES})"
    if announced is not None and announced > cap:
        raise BadFileError(
            f"download of {url} was refused: the server announces {announced} bytes, more than "
            f"{text} (nothing was saved)"
        )
    return cap, text


def download_bytes(
    url: str,
    destination: Path,
    *,
    sha256: str | None = None,
    expected_source: str = "",
    num_bytes: int | None = None,
    progress: bool | None = None,
    check: ContentCheck | None = None,
    limits: DownloadLimits | None = None,
) -> bytes:
    """Download ``url`` to ``destination`` atomically and return the bytes saved there.

    The body is streamed to a temporary file in the destination directory (and kept in
    memory) and checked against the server's Content-Length, ``num_bytes``,
    ``sha256`` (``expected_source``: where these two come from, for a refusal) and ``check``
    (``downloaded=True``; each when given) before it is fsynced and moved into place
    (:func:`hear_mn.atomic.atomic_output`). On failure the temporary file is removed and
    ``destination`` is not touched. ``limits`` (default: :meth:`DownloadLimits.from_env`)
    bound its size and speed. A progress bar (tqdm, on stderr) is shown when ``progress`` is
    True, or when it is None, stderr is a terminal and ``$HEAR_MN_QUIET`` is unset.

    Raises :class:`FileUnavailableError` when the URL cannot be fetched (network or HTTP
    error, too slow), :class:`FileAccessError` when the destination directory cannot be
    written, and :class:`BadFileError` when the received data fails a check or a limit.
    """
    destination = Path(destination)
    directory = destination.parent
    limits = limits or DownloadLimits.from_env()
    request = urllib.request.Request(url, headers={"User-Agent": "hear_mn"})
    logger.info("downloading %s to %s", url, destination)
    kept = io.BytesIO()
    try:
        with atomic_output(destination, sync_folder=True) as (temp, sink):
            try:
                response = urllib.request.urlopen(request, timeout=limits.window)
            except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
                raise FileUnavailableError(f"could not download {url}: {error}") from error
            with response:
                announced = _content_length(response)
                cap, cap_text = _cap(url, num_bytes, announced, limits, expected_source)
                body = _Body(url, (sink, kept), limits, cap, cap_text)
                bar = tqdm(
                    total=announced or num_bytes,
                    desc=destination.name,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    file=sys.stderr,
                    disable=not _want_progress(progress),
                )
                with bar:
                    expected = _receive(response, body, bar)
            sink.flush()  # a check may read the received file back
            data = kept.getvalue()
            problem = _received_problem(
                body.received, expected, num_bytes, sha256, body.digest.hexdigest(), expected_source
            )
            if problem is None and check is not None:
                problem = check(data, temp, downloaded=True)
            if problem is not None:
                raise BadFileError(
                    f"download of {url} failed its checks: {problem}; run again to retry "
                    "(nothing was saved)"
                )
    except OSError as error:
        raise _unwritable(directory, error) from error
    logger.info("saved %s (%d bytes)", destination, body.received)
    return data


def download_file(
    url: str,
    destination: Path,
    *,
    sha256: str | None = None,
    num_bytes: int | None = None,
    progress: bool | None = None,
    check: FileCheck | None = None,
    limits: DownloadLimits | None = None,
) -> Path:
    """Download ``url`` to ``destination`` atomically and return ``destination``.

    :func:`download_bytes`, with ``check`` run on the received file before it is moved into
    place; the same errors.
    """

    def file_check(data: bytes, path: Path, *, downloaded: bool) -> str | None:
        return check(path, downloaded=downloaded) if check is not None else None

    download_bytes(
        url,
        destination,
        sha256=sha256,
        num_bytes=num_bytes,
        progress=progress,
        check=file_check,
        limits=limits,
    )
    return Path(destination)
