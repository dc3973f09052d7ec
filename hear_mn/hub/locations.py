"""Where published files are looked for and fetched from, as data and paths: the
environment variables, the lookup order (:func:`find`), the mirror (:func:`download_url`),
and :class:`RemoteFile`. No I/O beyond examining paths; :mod:`hear_mn.hub.fetch` reads,
checks and downloads.

Lookup order, after a path the caller was given explicitly:

1. every directory listed in ``$HEAR_MN_WEIGHTS_DIR`` (``os.pathsep``-separated), for files
   the user downloaded by hand (machines without internet);
2. the files shipped inside the package (:data:`PACKAGED_DIR`), so that they work offline;
3. the cache directory (:func:`cache_dir`): ``$HEAR_MN_HOME``, else
   ``$XDG_CACHE_HOME/hear_mn``, else ``~/.cache/hear_mn``;
4. a download into the cache, unless ``download=False`` or ``$HEAR_MN_OFFLINE`` is set; for
   weights from ``$HEAR_MN_WEIGHTS_MIRROR/<file name>`` when that is set.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from hear_mn.hub.errors import FileAccessError, FileError, os_error_text
from hear_mn.hub.regular_files import is_regular_file

__all__ = [
    "CACHED",
    "ENV_HOME",
    "ENV_MIRROR",
    "ENV_OFFLINE",
    "ENV_WEIGHTS_DIR",
    "OFFLINE",
    "PACKAGED_DIR",
    "SHIPPED",
    "RemoteFile",
    "cache_dir",
    "download_url",
    "env_flag",
    "find",
    "offline_dirs",
    "unreadable_error",
]

ENV_HOME = "HEAR_MN_HOME"
ENV_WEIGHTS_DIR = "HEAR_MN_WEIGHTS_DIR"
ENV_OFFLINE = "HEAR_MN_OFFLINE"
ENV_MIRROR = "HEAR_MN_WEIGHTS_MIRROR"

# Files shipped with the package (looked up after $HEAR_MN_WEIGHTS_DIR).
PACKAGED_DIR = Path(__file__).parents[1] / "checkpoints"

# Where a found file comes from; only files in the cache are ever deleted.
OFFLINE, SHIPPED, CACHED = "offline", "shipped", "cached"

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class RemoteFile:
    """A file published at ``url``, described as data; ``sha256`` and ``num_bytes`` are
    checked when known.

    Class attributes word the messages and choose the source: ``kind`` names the file
    ("weights" gives "weights file ..."); ``supply_hint`` ends the advice given when the
    cache cannot be written (how else the user may supply the file); ``mirrored``: the
    file is downloaded from ``$HEAR_MN_WEIGHTS_MIRROR`` when that is set.
    """

    file_name: str
    url: str
    sha256: str | None = None
    num_bytes: int | None = None

    kind: ClassVar[str] = "data"
    supply_hint: ClassVar[str] = ""
    mirrored: ClassVar[bool] = False


def unreadable_error(path: Path, error: OSError, kind: str) -> FileAccessError:
    """The error for a ``kind`` file (e.g. "weights") that cannot be read; it is kept."""
    return FileAccessError(
        f"cannot read {kind} file {path}: {os_error_text(error)}. It was left as it is. Check "
        "that this process may read it (the permissions of the file and its folders, the disk "
        f"or network share), or use another copy: a directory listed in {ENV_WEIGHTS_DIR}, "
        f"another cache directory ({ENV_HOME}), or a path to the file."
    )


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


def find(file_name: str, kind: str = "data") -> tuple[str, Path] | None:
    """Where ``file_name`` is found locally, in lookup order, without checking or downloading.

    Returns ``("offline" | "shipped" | "cached", path)``, or None when it is nowhere. Raises
    :class:`FileError` for a path too long for the system, :class:`FileAccessError` for a
    folder that cannot be searched.
    """
    candidates = [(OFFLINE, directory) for directory in offline_dirs()]
    candidates += [(SHIPPED, PACKAGED_DIR), (CACHED, cache_dir())]
    for origin, directory in candidates:
        path = directory / file_name
        try:
            if is_regular_file(path, kind):
                return origin, path
        except FileError:
            raise
        except OSError as error:
            raise unreadable_error(path, error, kind) from error
    return None


def download_url(spec: RemoteFile) -> str:
    """Where ``spec``'s file is downloaded from: ``$HEAR_MN_WEIGHTS_MIRROR/<file name>`` for a
    mirrored kind when that is set, else its published URL."""
    mirror = os.environ.get(ENV_MIRROR, "").strip() if spec.mirrored else ""
    if not mirror:
        return spec.url
    return f"{mirror.rstrip('/')}/{urllib.parse.quote(spec.file_name)}"
