"""Labelled audio for a classifier: a folder of class sub-folders or a CSV, and its split.

``DATA/dog/a.wav`` is an example of "dog" (deeper folders belong to their top class folder).
A CSV lists ``file,label[,label...]`` (several labels: a multi-label example; a file alone:
an example of no class, multi-label only) or ``file,label,start,end`` (seconds: a segment
of the file is the example; rows of the same segment and other labels add labels). Paths
are relative to the CSV's folder. Everything is checked before any audio is decoded: a
missing file, an empty class folder, a malformed row is one error that names it.
"""

from __future__ import annotations

import csv
import math
import os
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ClassifierDataError",
    "Example",
    "LabelledData",
    "class_counts",
    "examples_needed",
    "read_labelled",
    "split_examples",
]

HEADER_FILE_NAMES = ("file", "filename", "path", "audio")
SHOWN = 10  # problems listed in one message


class ClassifierDataError(ValueError):
    """Labelled data that cannot train a classifier (the message says what and how to fix it)."""


@dataclass(frozen=True)
class Example:
    """One labelled example: a file, or the segment ``[start, end)`` seconds of it."""

    path: Path
    labels: tuple[str, ...]
    start: float | None = None
    end: float | None = None

    def describe(self) -> str:
        if self.start is None:
            return str(self.path)
        return f"{self.path} [{self.start:g}-{self.end:g} s]"


@dataclass
class LabelledData:
    """What a DATA argument holds: its examples, and the files found but not used (why)."""

    source: str
    examples: list[Example]
    ignored: list[tuple[Path, str]] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return sorted({label for example in self.examples for label in example.labels})

    @property
    def multilabel(self) -> bool:
        return any(len(example.labels) != 1 for example in self.examples)


def _listed(problems: Sequence[str]) -> str:
    shown = "; ".join(problems[:SHOWN])
    more = len(problems) - SHOWN
    return shown + (f"; and {more} more" if more > 0 else "")


def _read_folder(root: Path) -> LabelledData:
    from hear_mn.audio_io import scan_audio_inputs

    scan = scan_audio_inputs([root])
    by_class: dict[str, list[Path]] = {}
    ignored = list(scan.ignored)
    for path, relative in scan.files:
        if len(relative.parts) < 2:
            ignored.append((path, "not in a class sub-folder (DATA/<class>/<file>)"))
            continue
        by_class.setdefault(relative.parts[0], []).append(path)
    folders = sorted(
        entry.name
        for entry in os.scandir(root)
        if entry.is_dir() and not entry.name.startswith(".")
    )
    empty = [name for name in folders if name not in by_class]
    if empty:
        raise ClassifierDataError(
            f"class folder(s) with no audio files in {root}: {', '.join(empty)}; add examples "
            "to them or remove them"
        )
    if not by_class:
        raise ClassifierDataError(
            f"{root} holds no class sub-folders with audio: put each class's files in "
            f"{root}/<class>/ (e.g. {root}/dog/a.wav), or give a CSV of file,label rows"
        )
    examples = [Example(path, (label,)) for label in sorted(by_class) for path in by_class[label]]
    return LabelledData(str(root), examples, ignored, list(scan.unreadable))


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _csv_rows(path: Path) -> list[tuple[int, list[str]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = [
                (number, [cell.strip() for cell in row])
                for number, row in enumerate(csv.reader(handle), start=1)
                if row and any(cell.strip() for cell in row) and not row[0].lstrip().startswith("#")
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ClassifierDataError(f"cannot read the CSV {path}: {error}") from None
    if not rows:
        raise ClassifierDataError(
            f"the CSV {path} has no rows; write one file,label row per example"
        )
    return rows


def _segment_columns(rows: list[tuple[int, list[str]]]) -> tuple[bool, list[tuple[int, list[str]]]]:
    """Whether the rows are segments (file,label,start,end), and the rows without a header."""
    first = [cell.lower() for cell in rows[0][1]]
    if first[0] in HEADER_FILE_NAMES:
        return ("start" in first and "end" in first), rows[1:]
    segments = all(
        len(cells) == 4 and _number(cells[2]) is not None and _number(cells[3]) is not None
        for _, cells in rows
    )
    return segments, rows


def _read_csv(path: Path) -> LabelledData:
    segments, rows = _segment_columns(_csv_rows(path))
    base = path.parent
    problems, missing = [], []
    merged: dict[tuple, list[str]] = {}
    for number, cells in rows:
        name = cells[0]
        if not name:
            problems.append(f"row {number}: no file name")
            continue
        labels = [cell for cell in cells[1:] if cell]
        start = end = None
        if segments:
            if len(cells) != 4 or not cells[1]:
                problems.append(f"row {number}: expected file,label,start,end")
                continue
            start, end = _number(cells[2]), _number(cells[3])
            if start is None or end is None or not 0 <= start < end:
                problems.append(
                    f"row {number}: start {cells[2]!r} and end {cells[3]!r} must be seconds, 0 <= start < end"
                )
                continue
            labels = [cells[1]]
        file = base / name
        if not file.is_file():
            missing.append(f"row {number}: {name}")
            continue
        labels_so_far = merged.setdefault((file, start, end), [])
        labels_so_far.extend(label for label in labels if label not in labels_so_far)
    if missing:
        raise ClassifierDataError(
            f"{path} names {len(missing)} file(s) that do not exist (paths are relative to the "
            f"CSV's folder {base}): {_listed(missing)}"
        )
    if problems:
        raise ClassifierDataError(f"{path} has malformed rows: {_listed(problems)}")
    examples = [
        Example(file, tuple(labels), start, end) for (file, start, end), labels in merged.items()
    ]
    return LabelledData(str(path), examples)


def read_labelled(source: str | os.PathLike[str]) -> LabelledData:
    """The examples of ``source``: a folder of class sub-folders, or a CSV file."""
    path = Path(source)
    if path.is_dir():
        return _read_folder(path)
    if path.is_file():
        return _read_csv(path)
    raise ClassifierDataError(
        f"labelled data {str(path)!r} does not exist; give a folder of class sub-folders "
        "(DATA/dog/a.wav) or a CSV of file,label rows"
    )


def class_counts(examples: Sequence[Example], labels: Sequence[str]) -> dict[str, int]:
    """Examples per class, in the order of ``labels``."""
    counts = Counter(label for example in examples for label in example.labels)
    return {label: counts.get(label, 0) for label in labels}


def _held_out(n: int, fraction: float) -> int:
    return max(1, round(n * fraction)) if fraction > 0 else 0


def examples_needed(valid_fraction: float, test_fraction: float) -> int:
    """The fewest examples of a class that a stratified split into train (at least one),
    valid and test (at least one each, when their fraction is not zero) can take."""
    n = 1
    while n - _held_out(n, valid_fraction) - _held_out(n, test_fraction) < 1:
        n += 1
    return n


def _split_names(valid_fraction: float, test_fraction: float) -> str:
    parts = ["train", "valid"] + (["test"] if test_fraction > 0 else [])
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _stratum(example: Example, counts: dict[str, int]) -> str:
    """The class an example is split with: its rarest label ("" for none)."""
    return min(example.labels, key=lambda label: (counts[label], label), default="")


def split_examples(
    examples: Sequence[Example],
    labels: Sequence[str],
    *,
    valid_fraction: float,
    test_fraction: float,
    seed: int,
) -> dict[str, list[Example]]:
    """A stratified, seeded split of ``examples`` into train, valid and (with a non-zero
    ``test_fraction``) test: per class (multi-label: the example's rarest label) the examples
    are shuffled with ``random.Random(seed)`` and ``round(n * fraction)`` (at least one) go to
    valid and to test. Raises :class:`ClassifierDataError` when a class has too few examples,
    saying how many it needs."""
    counts = class_counts(examples, labels)
    needed = examples_needed(valid_fraction, test_fraction)
    short = {label: n for label, n in counts.items() if n < needed}
    if short:
        shown = ", ".join(f"{label!r} has {n}" for label, n in short.items())
        raise ClassifierDataError(
            f"too few examples for a stratified split into "
            f"{_split_names(valid_fraction, test_fraction)} (valid fraction {valid_fraction:g}, "
            f"test fraction {test_fraction:g}): {shown}; each class needs at least {needed}. "
            "Add examples, or give the validation (and test) examples yourself (--valid, --test)"
        )
    strata: dict[str, list[Example]] = {}
    for example in examples:
        strata.setdefault(_stratum(example, counts), []).append(example)
    generator = random.Random(seed)
    split: dict[str, list[Example]] = {"train": [], "valid": [], "test": []}
    for key in sorted(strata):
        group = list(strata[key])
        generator.shuffle(group)
        n_valid = _held_out(len(group), valid_fraction)
        n_test = _held_out(len(group), test_fraction)
        if len(group) - n_valid - n_test < 1:  # a multi-label stratum smaller than its class
            n_valid, n_test = min(n_valid, len(group) - 1), 0
        split["valid"] += group[:n_valid]
        split["test"] += group[n_valid : n_valid + n_test]
        split["train"] += group[n_valid + n_test :]
    order = {example: index for index, example in enumerate(examples)}
    result = {name: sorted(rows, key=order.__getitem__) for name, rows in split.items()}
    return {name: rows for name, rows in result.items() if rows or name != "test"}
