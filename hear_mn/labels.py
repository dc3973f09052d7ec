"""AudioSet class names, in the order of the MobileNets' 527 logits.

They come from AudioSet's published ``class_labels_indices.csv`` (CC BY 4.0), found and
cached exactly like a weights file (see :mod:`hear_mn.weights`): first in the directories of
``$HEAR_MN_WEIGHTS_DIR``, then in the cache directory, else downloaded once into the cache
(unless ``$HEAR_MN_OFFLINE`` is set).
"""

from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from hear_mn.weights import (
    ENV_HOME,
    ENV_OFFLINE,
    ENV_WEIGHTS_DIR,
    WeightsError,
    WeightsUnavailableError,
    cache_dir,
    download_file,
    offline_dirs,
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

logger = logging.getLogger(__name__)

LABELS_FILE = "class_labels_indices.csv"
LABELS_URL = (
    "http://storage.googleapis.com/us_audioset/youtube_corpus/v1/csv/class_labels_indices.csv"
)
NUM_CLASSES = 527
_TRUE = {"1", "true", "yes", "on"}


class LabelsError(WeightsError):
    """The AudioSet class list is unavailable or malformed."""


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


def resolve_labels(*, download: bool = True, progress: bool | None = None) -> Path:
    """Local path of ``class_labels_indices.csv``: offline directories, cache, or download."""
    for directory in offline_dirs():
        candidate = directory / LABELS_FILE
        if candidate.is_file():
            return candidate
    cached = cache_dir() / LABELS_FILE
    if cached.is_file():
        return cached
    offline = os.environ.get(ENV_OFFLINE, "").strip().lower() in _TRUE
    if not download or offline:
        why = f"{ENV_OFFLINE} is set" if offline else "downloading was disabled"
        raise LabelsError(_unavailable_message(why))
    try:
        return download_file(LABELS_URL, cached, progress=progress)
    except WeightsUnavailableError as error:
        raise LabelsError(_unavailable_message(str(error))) from error


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
    resolved = resolve_labels(download=download, progress=progress)
    try:
        return read_labels(resolved)
    except LabelsError as error:
        if resolved.parent != cache_dir():
            raise
        logger.warning("removing malformed cached %s: %s", resolved, error)
        resolved.unlink(missing_ok=True)
        return read_labels(resolve_labels(download=download, progress=progress))
