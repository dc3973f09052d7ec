"""AudioSet class names, in the order of the classifiers' 527 logits.

They come from AudioSet's ``class_labels_indices.csv`` (Google, CC BY 4.0; see
``hear_mn/audioset/ATTRIBUTION.md``), shipped inside the package and checked against its
pinned SHA-256 on every read: tagging needs no network and no cache, and no copy found
elsewhere can change which name a logit gets. A list given by the user (say, with translated
names) must name AudioSet's classes in AudioSet's order; only the display names may differ.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

from hear_mn.hub.errors import FileError, os_error_text

__all__ = [
    "LABELS_FILE",
    "LABELS_SHA256",
    "NUM_CLASSES",
    "SHIPPED_LABELS",
    "AudioSetLabel",
    "LabelsError",
    "load_labels",
    "read_labels",
]

LABELS_FILE = "class_labels_indices.csv"
LABELS_SHA256 = "cdd1049833c4b86127c2773ac0d14a2754b6a6d0d1798002ed5c66e699708429"
NUM_CLASSES = 527
SHIPPED_LABELS = Path(__file__).resolve().parent / "audioset" / LABELS_FILE


class LabelsError(FileError):
    """The AudioSet class list is damaged, malformed or not in AudioSet's order."""


@dataclass(frozen=True)
class AudioSetLabel:
    """One AudioSet class: its logit ``index``, ontology ``mid`` and ``name``."""

    index: int
    mid: str
    name: str


def read_labels(path: str | os.PathLike[str]) -> list[AudioSetLabel]:
    """Parse a ``class_labels_indices.csv`` file: 527 rows, indices 0..526 in order.

    Checks the form only; :func:`load_labels` also checks the classes against AudioSet's.
    Raises :class:`LabelsError` if the file is unreadable or malformed.
    """
    path = Path(path)
    return _parse(_read_text(_read_bytes(path), path), path)


def load_labels(path: str | os.PathLike[str] | None = None) -> list[AudioSetLabel]:
    """The 527 AudioSet classes in logit order: the shipped list, or the one at ``path``.

    The shipped list is checked against :data:`LABELS_SHA256`. A list at ``path`` must give
    every logit AudioSet's class (the same ``mid`` at the same index), so that a reordered or
    foreign list is refused instead of printing wrong names; its display names are used.
    Raises :class:`LabelsError`.
    """
    official = _shipped_labels()
    if path is None or os.fspath(path) == "":
        return official
    path = Path(path).expanduser()
    given = read_labels(path)
    for ours, theirs in zip(official, given):
        if ours.mid != theirs.mid:
            raise LabelsError(
                f"{path} lists class {theirs.mid} ({theirs.name!r}) at index {theirs.index}, "
                f"where AudioSet has {ours.mid} ({ours.name!r}): the list is reordered or "
                "not AudioSet's; a class list must keep AudioSet's classes in AudioSet's "
                "order (only the display names may differ), or leave out --labels to use "
                "the list shipped with hear-mn"
            )
    return given


def _shipped_labels() -> list[AudioSetLabel]:
    """The list shipped in the package, after checking its SHA-256."""
    data = _read_bytes(SHIPPED_LABELS)
    digest = hashlib.sha256(data).hexdigest()
    if digest != LABELS_SHA256:
        raise LabelsError(
            f"the AudioSet class list shipped with hear-mn, {SHIPPED_LABELS}, is damaged: "
            f"its SHA-256 is {digest}, expected {LABELS_SHA256}; reinstall hear-mn "
            "(pip install --force-reinstall hear-mn)"
        )
    return _parse(_read_text(data, SHIPPED_LABELS), SHIPPED_LABELS)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        message = f"cannot read the AudioSet class list {path}: {os_error_text(error)}"
        raise LabelsError(message) from None


def _read_text(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise LabelsError(f"{path} is not UTF-8 text ({error}); expected {LABELS_FILE}") from None


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
