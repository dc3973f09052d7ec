"""AudioSet class names, in the order of the MobileNets' 527 logits.

They come from AudioSet's published ``class_labels_indices.csv`` (CC BY 4.0), found and
cached exactly like a weights file (see :mod:`hear_mn.hub`): first in the directories of
``$HEAR_MN_WEIGHTS_DIR``, then in the cache directory, else downloaded once into the cache
(unless ``$HEAR_MN_OFFLINE`` is set). A malformed copy in the cache is removed and downloaded
again; one the user gave is refused and left alone.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from hear_mn.hub import (
    ENV_HOME,
    ENV_WEIGHTS_DIR,
    FileError,
    FileUnavailableError,
    RemoteFile,
    cache_dir,
    fetch,
)

__all__ = [
    "LABELS_FILE",
    "LABELS_URL",
    "NUM_CLASSES",
    "AudioSetLabel",
    "LabelsError",
    "load_labels",
    "read_labels",
    "resolve_labels",
]

LABELS_FILE = "class_labels_indices.csv"
LABELS_URL = (
    "http://storage.googleapis.com/us_audioset/youtube_corpus/v1/csv/class_labels_indices.csv"
)
NUM_CLASSES = 527


class LabelsError(FileError):
    """The AudioSet class list is unavailable or malformed."""


class _LabelsFile(RemoteFile):
    """``class_labels_indices.csv`` as a published file, worded for hub's messages."""

    kind: ClassVar[str] = "labels"
    supply_hint: ClassVar[str] = ", or pass its path (load_labels(path), hear-mn tag --labels)"


@dataclass(frozen=True)
class AudioSetLabel:
    """One AudioSet class: its logit ``index``, ontology ``mid`` and ``name``."""

    index: int
    mid: str
    name: str


def read_labels(path: str | os.PathLike[str]) -> list[AudioSetLabel]:
    """Parse a ``class_labels_indices.csv`` file; raises :class:`LabelsError` if malformed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise LabelsError(f"cannot read the AudioSet class list {path}: {error}") from error
    return _parse(text, path)


def _parse(text: str, path: Path) -> list[AudioSetLabel]:
    """The classes listed in ``text``, read from ``path``; :class:`LabelsError` if malformed."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [cell.strip() for cell in rows[0]] != ["index", "mid", "display_name"]:
        raise LabelsError(
            f"{path} is not AudioSet's {LABELS_FILE}: its first line should be "
            "'index,mid,display_name'"
        )
    labels = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != 3 or not row[0].strip().isdigit():
            raise LabelsError(f"{path}, line {line}: expected 'index,mid,display_name'")
        index = int(row[0])
        if index != len(labels):
            raise LabelsError(f"{path}, line {line}: index {index}, expected {len(labels)}")
        labels.append(AudioSetLabel(index, row[1].strip(), row[2].strip()))
    if len(labels) != NUM_CLASSES:
        raise LabelsError(f"{path} lists {len(labels)} classes, expected {NUM_CLASSES}")
    return labels


def _check_labels(path: Path, *, downloaded: bool) -> str | None:
    """hub's check: why ``path`` is not AudioSet's class list, or None (OSError: unreadable)."""
    try:
        _parse(path.read_text(encoding="utf-8-sig"), path)
    except UnicodeDecodeError as error:
        return f"it is not UTF-8 text ({error})"
    except LabelsError as error:
        return str(error)
    return None


def resolve_labels(*, download: bool = True, progress: bool | None = None) -> Path:
    """Local path of ``class_labels_indices.csv``, checked: found where weights are looked
    for (:func:`hear_mn.hub.fetch`), or downloaded into the cache. Raises :class:`LabelsError`.
    """
    spec = _LabelsFile(LABELS_FILE, LABELS_URL)  # the URL read now: tests point it elsewhere
    try:
        return fetch(spec, download=download, progress=progress, check=_check_labels)[1]
    except FileUnavailableError as error:
        raise LabelsError(_unavailable_message(error.reason)) from error
    except FileError as error:  # a copy the user gave is malformed, or a file is unreadable
        raise LabelsError(str(error)) from error


def _unavailable_message(reason: str) -> str:
    return (
        f"the AudioSet class list {LABELS_FILE} is not available ({reason}); download it "
        f"from {LABELS_URL} into {cache_dir()} (set {ENV_HOME} to use another directory) "
        f"or into a directory listed in {ENV_WEIGHTS_DIR}"
    )


def load_labels(
    path: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    progress: bool | None = None,
) -> list[AudioSetLabel]:
    """The 527 AudioSet classes in logit order, from ``path`` or the cached official file.

    A malformed file in the cache (say, an error page saved by a proxy) is deleted and
    downloaded again once; one given by ``path`` or found in ``$HEAR_MN_WEIGHTS_DIR`` is
    reported and left alone.
    """
    if path is not None and os.fspath(path) != "":
        return read_labels(Path(path).expanduser())
    return read_labels(resolve_labels(download=download, progress=progress))
