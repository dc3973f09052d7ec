"""Getting a published file onto the local disk: where it is looked for, which copy is
used, how it is checked, and when a bad copy is removed. Generic file plumbing: no torch.

Lookup order (:func:`find`, :func:`fetch`), after a path the caller was given explicitly:

1. every directory listed in ``$HEAR_MN_WEIGHTS_DIR`` (``os.pathsep``-separated), for files
   the user downloaded by hand (machines without internet);
2. the files shipped inside the package (:data:`PACKAGED_DIR`), so that they work offline;
3. the cache directory (:func:`cache_dir`): ``$HEAR_MN_HOME``, else
   ``$XDG_CACHE_HOME/hear_mn``, else ``~/.cache/hear_mn``;
4. a download into the cache (:func:`download_file`), unless ``download=False`` or
   ``$HEAR_MN_OFFLINE`` is set.

Integrity: a file with a SHA-256 on record (:attr:`RemoteFile.sha256`) is checked against
it. Otherwise the caller's :class:`FileCheck` (say, the CRCs of a torch zip archive) runs
before a download enters the cache and on local copies, and the SHA-256 of the first
verified cached copy is recorded next to it (``<file>.sha256``) and checked on later uses.

Only the cache is ever cleaned (:func:`evict`): a cached file proven bad is removed with a
message naming it. Files the user gave (a path or ``$HEAR_MN_WEIGHTS_DIR``) and shipped files
are refused but never deleted, and a file that cannot be read (permissions, I/O errors) is
reported as such and left alone.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from hear_mn.download import (
    ENV_QUIET,
    FileCheck,
    download_file,
    new_temp_file,
    same_sha256,
    sha256_of,
)
from hear_mn.file_errors import (
    BadFileError,
    FileAccessError,
    FileError,
    FileUnavailableError,
    os_error_text,
)

__all__ = [
    "CACHED",
    "ENV_HOME",
    "ENV_OFFLINE",
    "ENV_QUIET",
    "ENV_WEIGHTS_DIR",
    "OFFLINE",
    "PACKAGED_DIR",
    "SHIPPED",
    "BadFileError",
    "FileAccessError",
    "FileCheck",
    "FileError",
    "FileUnavailableError",
    "RemoteFile",
    "cache_dir",
    "download_file",
    "env_flag",
    "evict",
    "fetch",
    "find",
    "offline_dirs",
    "same_sha256",
    "sha256_of",
    "unreadable_error",
]

logger = logging.getLogger(__name__)

ENV_HOME = "HEAR_MN_HOME"
ENV_WEIGHTS_DIR = "HEAR_MN_WEIGHTS_DIR"
ENV_OFFLINE = "HEAR_MN_OFFLINE"

# Files shipped with the package (looked up after $HEAR_MN_WEIGHTS_DIR).
PACKAGED_DIR = Path(__file__).parent / "checkpoints"

# Where a found file comes from; only files in the cache are ever deleted.
OFFLINE, SHIPPED, CACHED = "offline", "shipped", "cached"

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class RemoteFile:
    """A file published at ``url``, described as data; ``sha256`` and ``num_bytes`` are
    checked when known.

    Two class attributes word the messages: ``kind`` names the file ("weights" gives
    "weights file ..."); ``supply_hint`` ends the advice given when the cache cannot be
    written (how else the user may supply the file).
    """

    file_name: str
    url: str
    sha256: str | None = None
    num_bytes: int | None = None

    kind: ClassVar[str] = "data"
    supply_hint: ClassVar[str] = ""


def unreadable_error(path: Path, error: OSError, kind: str) -> FileAccessError:
    """The error for a ``kind`` file (e.g. "weights") that cannot be read; it is kept."""
    return FileAccessError(
        f"cannot read {kind} file {path}: {os_error_text(error)}. It was left as it is. Check "
        "that this process may read it (the permissions of the file and its folders, the disk "
        f"or network share), or use another copy: a directory listed in {ENV_WEIGHTS_DIR}, "
        f"another cache directory ({ENV_HOME}), or a path to the file."
    )


# --------------------------------------------------------------------------- locations


def env_flag(name: str) -> bool:
    """Whether the environment variable ``name`` is 1, true, yes or on (any case)."""
    return os.environ.get(name, "").strip().lower() in _TRUE


def cache_dir() -> Path:
    """Directory where downloaded files are kept (read from the environment now)."""
    home = os.environ.get(ENV_HOME, "").strip()
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "hear_mn"


def offline_dirs() -> list[Path]:
    """Directories from ``$HEAR_MN_WEIGHTS_DIR``, searched before the shipped files and cache."""
    raw = os.environ.get(ENV_WEIGHTS_DIR, "")
    return [Path(part).expanduser() for part in raw.split(os.pathsep) if part.strip()]


def find(file_name: str) -> tuple[str, Path] | None:
    """Where ``file_name`` is found locally, in lookup order, without checking or downloading.

    Returns ``("offline" | "shipped" | "cached", path)``, or None when it is nowhere.
    """
    candidates = [(OFFLINE, directory) for directory in offline_dirs()]
    candidates += [(SHIPPED, PACKAGED_DIR), (CACHED, cache_dir())]
    for origin, directory in candidates:
        if (directory / file_name).is_file():
            return origin, directory / file_name
    return None


# --------------------------------------------------------------------------- integrity


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _recorded_sha256(path: Path) -> str | None:
    record = _record_path(path)
    if not record.is_file():
        return None
    words = record.read_text(encoding="ascii", errors="replace").split()
    return words[0].lower() if words and len(words[0]) == 64 else None


def _record_sha256(path: Path) -> None:
    """Write ``<file>.sha256`` (``sha256sum`` format) for a verified file; best effort."""
    try:
        text = f"{sha256_of(path)}  {path.name}\n".encode("ascii")
        temp, handle = new_temp_file(path.parent, _record_path(path).name)
        try:
            with handle:
                handle.write(text)
            os.replace(temp, _record_path(path))
        finally:
            temp.unlink(missing_ok=True)
    except OSError as error:
        logger.warning("could not record the sha256 of %s: %s", path, os_error_text(error))


def _local_problem(
    path: Path, spec: RemoteFile, check: FileCheck | None, *, record: bool
) -> str | None:
    """Why ``path`` is not an intact copy of ``spec``'s file, or None when it is.

    Size and SHA-256 when on record, else the SHA-256 recorded for the first verified copy
    (``record``: files in the cache), else ``check`` (then recorded when ``record``).
    Raises :class:`FileAccessError` when the file cannot be read.
    """
    try:
        size = path.stat().st_size if spec.num_bytes is not None else None
        if size != spec.num_bytes:
            return f"it has {size} bytes, expected {spec.num_bytes}"
        if spec.sha256:
            actual = sha256_of(path)
            if same_sha256(spec.sha256, actual):
                return None
            return f"its sha256 is {actual}, expected {spec.sha256.lower()}"
        recorded = _recorded_sha256(path) if record else None
        if recorded is not None:
            actual = sha256_of(path)
            if actual != recorded:
                return f"its sha256 is {actual}, not {recorded} as when it was first verified"
            return None
        problem = check(path, downloaded=False) if check is not None else None
    except OSError as error:  # the file, or its recorded hash, cannot be read
        raise unreadable_error(Path(error.filename or path), error, spec.kind) from error
    if problem is None and record:
        _record_sha256(path)
    return problem


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
        _record_path(path).unlink(missing_ok=True)
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
    return FileUnavailableError(
        f"{spec.kind} file {spec.file_name!r} is not available: {reason}. "
        f"Download it from {spec.url} and put it in the cache directory {cache_dir()} "
        f"(i.e. {cache_dir() / spec.file_name}; set {ENV_HOME} to use another directory), "
        f"or in a directory listed in {ENV_WEIGHTS_DIR} "
        f"({os.pathsep!r}-separated; currently {listed}).",
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


def fetch(
    spec: RemoteFile,
    *,
    download: bool = True,
    progress: bool | None = None,
    check: FileCheck | None = None,
) -> tuple[str, Path]:
    """The checked local copy of ``spec``'s file, downloaded when needed: (origin, path).

    Looks where :func:`find` does, then downloads into the cache when the file is absent and
    downloading is allowed (``download=True`` and ``$HEAR_MN_OFFLINE`` not set). A found
    file is checked (see the module's docstring; ``check`` runs when no SHA-256 is on
    record): a bad file in an offline directory or the package raises :class:`BadFileError`
    and is left alone; a bad file in the cache is removed and downloaded again.

    Raises :class:`FileUnavailableError` when there is no good copy to be had (its
    ``reason`` says why), :class:`FileAccessError` when a file cannot be read or the cache
    cannot be written, :class:`BadFileError` when a file is refused.
    """
    found = find(spec.file_name)
    stale_reason = ""
    if found is not None:
        origin, path = found
        problem = _local_problem(path, spec, check, record=origin == CACHED)
        if problem is None:
            logger.debug("using %s (%s)", path, origin)
            return found
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
    cached = cache_dir() / spec.file_name
    try:
        download_file(
            spec.url,
            cached,
            sha256=spec.sha256,
            num_bytes=spec.num_bytes,
            progress=progress,
            check=None if spec.sha256 else check,
        )
    except FileAccessError as error:
        raise _cache_unwritable(spec, cached, error) from error
    except FileUnavailableError as error:
        raise _unavailable(spec, stale_reason + str(error)) from error
    if not spec.sha256:
        _record_sha256(cached)
    return CACHED, cached
