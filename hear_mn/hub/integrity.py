"""How far a published file is trusted, and the record kept next to a cached copy.

Four levels, shown in the log and by ``hear-mn list``:

* :data:`PINNED`: the package itself holds the file's SHA-256 (and size), checked on every use;
* :data:`PUBLISHED`: the download matched the digest its GitHub release publishes
  (:mod:`hear_mn.hub.published`);
* :data:`FIRST_USE`: nothing to check the first download against, so it was trusted (its
  CRCs or format checked) and its SHA-256 recorded, which later uses must match;
* :data:`UNPINNED`: no hash known yet (not downloaded, or a copy the user gave).

A cached file's record is ``<file>.sha256``: ``sha256sum``'s format (``<hex>  <name>``, so
``sha256sum -c`` reads it), then comment lines with the trust level and where the digest
was published.
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass
from pathlib import Path

from hear_mn.atomic import atomic_write
from hear_mn.hub.errors import os_error_text

__all__ = [
    "FIRST_USE",
    "PINNED",
    "PUBLISHED",
    "UNPINNED",
    "IntegrityRecord",
    "read_record",
    "record_path",
    "write_record",
]

logger = logging.getLogger(__name__)

PINNED = "pinned"
PUBLISHED = "published digest"
FIRST_USE = "trust on first use"
UNPINNED = "unpinned"

_TRUST_LINE = "# trust: "
_SOURCE_LINE = "# published at: "


@dataclass(frozen=True)
class IntegrityRecord:
    """A cached file's SHA-256, how it was established (``trust``) and its ``source``."""

    sha256: str
    trust: str = FIRST_USE
    source: str = ""


def record_path(path: Path) -> Path:
    """Where the record of ``path`` is kept: ``<file>.sha256`` beside it."""
    return path.with_name(path.name + ".sha256")


def read_record(path: Path) -> IntegrityRecord | None:
    """The record of ``path``, or None when there is none (or it holds no SHA-256).

    A record of an older version (the hash line alone) reads as trust on first use.
    Raises OSError when the record exists but cannot be read.
    """
    try:
        text = record_path(path).read_text(encoding="ascii", errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except OSError as error:
        if error.errno == errno.ENAMETOOLONG:
            return None
        raise
    lines = text.splitlines()
    words = lines[0].split() if lines else []
    if not words or len(words[0]) != 64:
        return None
    trust, source = FIRST_USE, ""
    for line in lines[1:]:
        if line.startswith(_TRUST_LINE):
            trust = line[len(_TRUST_LINE) :].strip() or FIRST_USE
        elif line.startswith(_SOURCE_LINE):
            source = line[len(_SOURCE_LINE) :].strip()
    return IntegrityRecord(words[0].lower(), trust, source)


def write_record(path: Path, record: IntegrityRecord) -> None:
    """Write the record of ``path`` atomically; best effort (a warning when it cannot)."""
    lines = [f"{record.sha256}  {path.name}", f"{_TRUST_LINE}{record.trust}"]
    if record.source:
        lines.append(f"{_SOURCE_LINE}{record.source}")
    try:
        atomic_write(record_path(path), ("\n".join(lines) + "\n").encode("utf-8"))
    except OSError as error:
        logger.warning("could not record the sha256 of %s: %s", path, os_error_text(error))
