"""The checked copy of a published file: where it is found, which copy is used, how it is
checked, and when a bad copy is removed. Generic file plumbing: no torch.

The copy is looked for in :mod:`hear_mn.hub.locations`' order (the user's folders, the
package, the cache) and downloaded into the cache (:mod:`hear_mn.hub.download`) when none
is found. A found file is read once, whole (:mod:`hear_mn.hub.regular_files`), and the
bytes checked are the bytes handed back: a file swapped on disk after its check is never
used.

Integrity (:mod:`hear_mn.hub.integrity`): a file with a SHA-256 on record
(:attr:`RemoteFile.sha256`) is checked against it (pinned). Otherwise a download from a
GitHub release is checked against the digest the release publishes
(:mod:`hear_mn.hub.published`), and without one it is trusted on first use, with a warning;
the caller's check (say, the CRCs of a torch zip archive) runs before a download enters
the cache and on local copies, and the SHA-256 of the first verified cached copy is
recorded next to it (``<file>.sha256``, with its trust level) and checked on later uses.

Only the cache is ever cleaned (:func:`evict`): a cached file proven bad is removed with a
message naming it. Files the user gave (a path or ``$HEAR_MN_WEIGHTS_DIR``) and shipped files
are refused but never deleted, and a file that cannot be read (permissions, I/O errors) is
reported as such and left alone.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from hear_mn.hub import published
from hear_mn.hub.download import ContentCheck, download_bytes, same_sha256
from hear_mn.hub.errors import (
    BadFileError,
    FileAccessError,
    FileError,
    FileUnavailableError,
    os_error_text,
)
from hear_mn.hub.integrity import (
    FIRST_USE,
    PINNED,
    PUBLISHED,
    UNPINNED,
    IntegrityRecord,
    read_record,
    record_path,
    write_record,
)
from hear_mn.hub.locations import (
    CACHED,
    ENV_HOME,
    ENV_MIRROR,
    ENV_OFFLINE,
    ENV_WEIGHTS_DIR,
    SHIPPED,
    RemoteFile,
    cache_dir,
    download_url,
    env_flag,
    find,
    offline_dirs,
    unreadable_error,
)
from hear_mn.hub.regular_files import read_regular_file

__all__ = ["Fetched", "evict", "fetch_content", "integrity_of"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fetched:
    """A checked copy: where it was found (``origin``, ``path``), its bytes as checked, how
    far it is trusted (:mod:`hear_mn.hub.integrity`), and whether this call downloaded it."""

    origin: str
    path: Path
    data: bytes
    trust: str
    downloaded: bool = False


def integrity_of(spec: RemoteFile) -> str:
    """How far the copy :func:`find` finds (or the next download) is trusted, without
    reading it: pinned, published digest or trust on first use (a cached copy's record),
    else unpinned."""
    if spec.sha256:
        return PINNED
    try:
        found = find(spec.file_name, spec.kind)
        record = read_record(found[1]) if found and found[0] == CACHED else None
    except (FileError, OSError):
        return UNPINNED
    return record.trust if record else UNPINNED


# --------------------------------------------------------------------------- integrity


def _local_problem(
    data: bytes, path: Path, origin: str, spec: RemoteFile, check: ContentCheck | None
) -> tuple[str | None, str]:
    """(why ``data``, read from ``path``, is not an intact copy of ``spec``'s file, or None;
    its trust level).

    Size and SHA-256 when on record, else the SHA-256 recorded for the first verified copy
    (files in the cache), else ``check`` (then recorded, for files in the cache).
    """
    if spec.num_bytes is not None and len(data) != spec.num_bytes:
        return f"it has {len(data)} bytes, expected {spec.num_bytes}", PINNED
    actual = hashlib.sha256(data).hexdigest()
    if spec.sha256:
        if same_sha256(spec.sha256, actual):
            return None, PINNED
        return f"its sha256 is {actual}, expected {spec.sha256.lower()}", PINNED
    cached = origin == CACHED
    try:
        record = read_record(path) if cached else None
    except OSError as error:
        raise unreadable_error(record_path(path), error, spec.kind) from error
    if record is not None:
        if actual != record.sha256:
            return f"its sha256 is {actual}, not {record.sha256} as when it was first verified", ""
        return None, record.trust
    try:
        problem = check(data, path, downloaded=cached) if check is not None else None
    except OSError as error:
        raise unreadable_error(Path(error.filename or path), error, spec.kind) from error
    if problem is None and cached:
        logger.warning(
            "%s: a cached copy with no record; it passed its checks and is now trusted "
            "(trust on first use)",
            path,
        )
        write_record(path, IntegrityRecord(actual, FIRST_USE))
        return None, FIRST_USE
    return problem, UNPINNED


def _read_found(path: Path, spec: RemoteFile) -> bytes | None:
    """The bytes of a file :func:`find` found, or None when it vanished since."""
    try:
        return read_regular_file(path, spec.kind)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise unreadable_error(path, error, spec.kind) from error


# --------------------------------------------------------------------------- fetch


def evict(origin: str, path: Path, reason: str = "") -> str | None:
    """Remove ``path``, proven bad (``reason`` is logged), when it is a cached copy.

    Returns what happened, for the error message, or None when the file is not the cache's
    to delete (the user's or a shipped file): those are refused, never deleted.
    """
    if origin != CACHED:
        return None
    if reason:
        logger.warning("cached file %s is corrupt: %s", path, reason)
    try:
        path.unlink(missing_ok=True)
        record_path(path).unlink(missing_ok=True)
    except OSError as error:
        text = os_error_text(error)
        logger.warning("could not remove %s from the cache: %s", path, text)
        return f"could not remove {path} from the cache ({text}): delete it by hand"
    logger.warning("removed %s from the cache", path)
    return f"removed {path} from the cache"


def _refusal(spec: RemoteFile, origin: str, path: Path, problem: str) -> BadFileError:
    if origin == SHIPPED:
        advice = "the installation of hear-mn is damaged: reinstall it"
    else:
        advice = f"replace it with a fresh copy from {spec.url} or remove it from {ENV_WEIGHTS_DIR}"
    return BadFileError(
        f"{spec.kind} file {path} is not a good copy of the release: {problem}. It was left "
        f"as it is; {advice}."
    )


def _unavailable(spec: RemoteFile, reason: str) -> FileUnavailableError:
    dirs = offline_dirs()
    listed = os.pathsep.join(str(d) for d in dirs) if dirs else "not set"
    mirror = f", or set {ENV_MIRROR} to a mirror of the release files" if spec.mirrored else ""
    return FileUnavailableError(
        f"{spec.kind} file {spec.file_name!r} is not available: {reason}. "
        f"Download it from {spec.url} and put it in the cache directory {cache_dir()} "
        f"(i.e. {cache_dir() / spec.file_name}; set {ENV_HOME} to use another directory), "
        f"or in a directory listed in {ENV_WEIGHTS_DIR} "
        f"({os.pathsep!r}-separated; currently {listed}){mirror}.",
        reason,
    )


def _cache_unwritable(spec: RemoteFile, cached: Path, error: FileAccessError) -> FileAccessError:
    cause = error.__cause__
    reason = os_error_text(cause) if isinstance(cause, OSError) else str(error)
    return FileAccessError(
        f"cannot write to the {spec.kind} cache directory {cached.parent} ({reason}), so "
        f"{spec.file_name} cannot be downloaded. Set {ENV_HOME} to a writable folder, or "
        f"download {spec.url} yourself and put it in a directory listed in "
        f"{ENV_WEIGHTS_DIR}{spec.supply_hint}."
    )


def _published_digest(spec: RemoteFile, url: str) -> published.PublishedDigest | None:
    """The digest published for ``spec``'s file, or None (logged: trust on first use)."""
    asset = published.release_asset(spec.url)
    try:
        if asset is None:
            raise published.DigestUnavailableError(f"{spec.url} is no GitHub release asset")
        return published.published_digest(asset)
    except published.DigestUnavailableError as error:
        logger.warning(
            "%s file %s: no published digest to check the download from %s against (%s); "
            "trusting it on first use: its sha256 is recorded and later loads must match",
            spec.kind,
            spec.file_name,
            url,
            error,
        )
        return None


def _download(
    spec: RemoteFile, progress: bool | None, check: ContentCheck | None, stale: str
) -> Fetched:
    """Download ``spec``'s file into the cache, checked against the best hash there is."""
    url = download_url(spec)
    digest = None if spec.sha256 else _published_digest(spec, url)
    sha256 = spec.sha256 or (digest.sha256 if digest else None)
    num_bytes = spec.num_bytes
    if num_bytes is None and digest is not None:
        num_bytes = digest.num_bytes
    cached = cache_dir() / spec.file_name
    try:
        data = download_bytes(
            url,
            cached,
            sha256=sha256,
            expected_source=f"the published digest and size, {digest.source}" if digest else "",
            num_bytes=num_bytes,
            progress=progress,
            check=None if spec.sha256 else check,
        )
    except FileAccessError as error:
        raise _cache_unwritable(spec, cached, error) from error
    except FileUnavailableError as error:
        raise _unavailable(spec, stale + str(error)) from error
    if spec.sha256:
        return Fetched(CACHED, cached, data, PINNED, downloaded=True)
    trust = PUBLISHED if digest else FIRST_USE
    if digest:
        logger.info(
            "%s matches the published digest sha256:%s (%s)", cached, digest.sha256, digest.source
        )
    record = IntegrityRecord(
        sha256 or hashlib.sha256(data).hexdigest(), trust, digest.source if digest else ""
    )
    write_record(cached, record)
    return Fetched(CACHED, cached, data, trust, downloaded=True)


def fetch_content(
    spec: RemoteFile,
    *,
    download: bool = True,
    progress: bool | None = None,
    check: ContentCheck | None = None,
) -> Fetched:
    """The checked copy of ``spec``'s file, downloaded when needed, with its bytes.

    Looks where :func:`find` does, then downloads into the cache when the file is absent and
    downloading is allowed (``download=True`` and ``$HEAR_MN_OFFLINE`` not set). A found
    file is read once and checked (see the module's docstring; ``check`` runs when no
    SHA-256 is on record): a bad file in an offline directory or the package raises
    :class:`BadFileError` and is left alone; a bad file in the cache is removed and
    downloaded again. The bytes returned are the bytes checked.

    Raises :class:`FileUnavailableError` when there is no good copy to be had (its
    ``reason`` says why), :class:`FileAccessError` when a file cannot be read or the cache
    cannot be written, :class:`BadFileError` when a file is refused, :class:`FileError`
    when a path is not usable (too long, not a regular file).
    """
    found = find(spec.file_name, spec.kind)
    data = _read_found(found[1], spec) if found is not None else None
    stale_reason = ""
    if found is not None and data is not None:
        origin, path = found
        problem, trust = _local_problem(data, path, origin, spec, check)
        if problem is None:
            logger.debug("using %s (%s, %s)", path, origin, trust)
            return Fetched(origin, path, data, trust)
        removal = evict(origin, path, problem)
        if removal is None:
            raise _refusal(spec, origin, path, problem)
        stale_reason = f"the cached copy {path} was corrupt ({problem}; {removal}), and "

    if not download:
        raise _unavailable(spec, stale_reason + "downloading was disabled (download=False)")
    if env_flag(ENV_OFFLINE):
        raise _unavailable(
            spec, stale_reason + f"downloading is disabled because {ENV_OFFLINE} is set"
        )
    return _download(spec, progress, check, stale_reason)
