"""The AudioSet class list: shipped in the package, pinned by SHA-256, never downloaded.

Issue 21, item 8: the list used to come over plain http with no hash, so a reordered copy was
accepted and cached and ``hear-mn tag`` printed wrong names. Now the names come from the file
shipped in the package (checked against a pinned SHA-256 on every read), ``tag`` works with
no network and no cache, and a list given by the user must keep AudioSet's classes in
AudioSet's order.
"""

from __future__ import annotations

import hashlib
import inspect
import socket
import zipfile
from pathlib import Path

import pytest
from support import ROOT
from support.reference import SHARED, require_shared
from support.runs import build_wheel

from hear_mn import labels
from hear_mn.labels import NUM_CLASSES, LabelsError, load_labels

PROJECT = ROOT
SHIPPED_DIR = PROJECT / "hear_mn" / "audioset"
SHIPPED_CSV = SHIPPED_DIR / "class_labels_indices.csv"
# The SHA-256 of AudioSet's class_labels_indices.csv as published (v1), the copy in ../shared.
PINNED_SHA256 = "cdd1049833c4b86127c2773ac0d14a2754b6a6d0d1798002ed5c66e699708429"


def _rows(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _write(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_the_names_come_from_the_shipped_file_pinned_by_sha256() -> None:
    assert hashlib.sha256(SHIPPED_CSV.read_bytes()).hexdigest() == PINNED_SHA256
    assert labels.LABELS_SHA256 == PINNED_SHA256
    assert Path(labels.SHIPPED_LABELS) == SHIPPED_CSV
    names = [label.name for label in load_labels()]
    assert len(names) == NUM_CLASSES
    assert names[0] == "Speech" and names[137] == "Music" and names[-1] == "Field recording"
    shared = SHARED / "fixtures" / "audioset" / "class_labels_indices.csv"
    if shared.is_file():
        assert SHIPPED_CSV.read_bytes() == shared.read_bytes()


def test_the_list_needs_no_network_and_no_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HEAR_MN_HOME", str(home))
    monkeypatch.delenv("HEAR_MN_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("HEAR_MN_OFFLINE", raising=False)  # not even offline mode is needed

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the class list must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    assert len(load_labels()) == NUM_CLASSES
    assert list(home.iterdir()) == []  # nothing cached
    source = inspect.getsource(labels)
    assert "http" not in source and not hasattr(labels, "resolve_labels")


def test_a_damaged_shipped_list_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = _rows(SHIPPED_CSV)
    rows[1], rows[2] = rows[2], rows[1]  # two rows swapped: the bytes are not the pinned ones
    damaged = _write(tmp_path / "class_labels_indices.csv", rows)
    monkeypatch.setattr(labels, "SHIPPED_LABELS", damaged)
    with pytest.raises(LabelsError) as info:
        load_labels()
    message = str(info.value)
    assert str(damaged) in message and "SHA-256" in message and "reinstall" in message


def test_a_reordered_user_list_is_refused(tmp_path: Path) -> None:
    rows = _rows(SHIPPED_CSV)
    # Rows swapped, indices renumbered: well formed, but names at the wrong logits.
    body = [row.split(",", 1)[1] for row in rows[1:]]
    body[0], body[1] = body[1], body[0]
    renumbered = [rows[0]] + [f"{i},{rest}" for i, rest in enumerate(body)]
    reordered = _write(tmp_path / "reordered.csv", renumbered)
    with pytest.raises(LabelsError) as info:
        load_labels(reordered)
    message = str(info.value)
    assert str(reordered) in message and "index 0" in message and "/m/09x0r" in message
    # Rows swapped with their indices: the indices are out of order.
    swapped = rows[:]
    swapped[1], swapped[2] = swapped[2], swapped[1]
    with pytest.raises(LabelsError, match="index 1, expected 0"):
        load_labels(_write(tmp_path / "swapped.csv", swapped))
    # A row missing, or an HTML page instead of the list.
    with pytest.raises(LabelsError, match="526 classes, expected 527"):
        load_labels(_write(tmp_path / "short.csv", rows[:-1]))
    with pytest.raises(LabelsError, match="index,mid,display_name"):
        load_labels(_write(tmp_path / "page.csv", ["<html>blocked</html>"]))


def test_a_user_list_may_rename_the_classes_in_audioset_order(tmp_path: Path) -> None:
    rows = _rows(SHIPPED_CSV)
    translated = [rows[0]] + [
        f'{row.rsplit(",", 1)[0]},"Klasse {i}"' for i, row in enumerate(rows[1:])
    ]
    names = [label.name for label in load_labels(_write(tmp_path / "de.csv", translated))]
    assert names[0] == "Klasse 0" and names[-1] == f"Klasse {NUM_CLASSES - 1}"


def test_wheel_ships_the_class_list_and_its_attribution(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, leave_out=("*.pth",))  # the checkpoints are not needed here
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read("hear_mn/audioset/class_labels_indices.csv")
        assert hashlib.sha256(shipped).hexdigest() == PINNED_SHA256
        attribution = archive.read("hear_mn/audioset/ATTRIBUTION.md").decode()
    assert "CC BY 4.0" in attribution and "Google" in attribution


def test_the_shared_fixture_is_the_published_file() -> None:
    shared = require_shared(SHARED / "fixtures" / "audioset" / "class_labels_indices.csv")
    assert hashlib.sha256(shared.read_bytes()).hexdigest() == PINNED_SHA256
