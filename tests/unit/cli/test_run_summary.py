"""What ``hear-mn embed`` says after a rerun (issue 22, item 3): how many outputs were
computed again and why, counted by reason, with the files listed (the first ten), and
docs/batch_embedding.md showing the same summary. Runs the command line in-process on short
generated clips with a random mn04 checkpoint in ``$HEAR_MN_WEIGHTS_DIR``."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from support import ROOT

from hear_mn import cli

sf = pytest.importorskip("soundfile")

MODEL = "mn04_e1_l"
RATE = 16000
DOCS = ROOT / "docs" / "batch_embedding.md"
SUMMARY = re.compile(
    r"recomputed (\d+) output\(s\) that could not be reused: (.+)$", flags=re.MULTILINE
)


def _clip(path: Path, seed: int) -> None:
    noise = 0.2 * np.random.default_rng(seed).standard_normal(RATE // 2)
    sf.write(path, noise.astype(np.float32), RATE)


def _embed(capsys, corpus: Path, out: Path) -> str:
    assert cli.main(["embed", str(corpus), "--model", MODEL, "--out", str(out)]) == 0
    return capsys.readouterr().out


def _drop_input_record(output: Path) -> None:
    """Rewrite ``output`` as an older hear-mn wrote it: settings without the input record."""
    with np.load(output) as data:
        arrays = {name: data[name] for name in data.files}
    settings = json.loads(str(arrays["settings"]))
    settings.pop("input")
    arrays["settings"] = np.array(json.dumps(settings, sort_keys=True))
    np.savez(output, **arrays)


def test_a_rerun_counts_the_recomputed_outputs_by_reason(
    monkeypatch, random_weights, tmp_path, capsys
) -> None:
    monkeypatch.setenv("HEAR_MN_WEIGHTS_DIR", str(random_weights))
    corpus, out = tmp_path / "corpus", tmp_path / "out"
    corpus.mkdir()
    for index in range(15):
        _clip(corpus / f"clip{index:02d}.wav", index)
    _embed(capsys, corpus, out)
    for index in range(11):  # 11 inputs edited since their outputs were written
        _clip(corpus / f"clip{index:02d}.wav", 100 + index)
    damaged = out / "clip11.wav.npz"
    damaged.write_bytes(damaged.read_bytes()[:100])
    _drop_input_record(out / "clip12.wav.npz")
    assert zipfile.is_zipfile(out / "clip12.wav.npz")

    stdout = _embed(capsys, corpus, out)

    assert f"embedded 13 file(s) with {MODEL} into {out}" in stdout
    assert "skipped 2 file(s)" in stdout
    summary = SUMMARY.search(stdout)
    assert summary, stdout
    assert summary.group(1) == "13"
    assert summary.group(2) == (
        "11 whose input changed, 1 written by an older hear-mn (no input record), "
        "1 that could not be read"
    )
    listed = [line for line in stdout.splitlines() if line.startswith("  ")]
    assert len(listed) == 11, stdout  # the first ten, then how many more
    assert listed[-1] == "  ... and 3 more", stdout
    assert "clip00.wav changed since it was written" in listed[0]


def test_the_docs_show_the_summary_the_command_prints() -> None:
    """docs/batch_embedding.md quotes the rerun summary in the command's own words."""
    text = DOCS.read_text()
    summary = SUMMARY.search(text)
    assert summary, "docs/batch_embedding.md shows no 'recomputed N output(s) ...: ...' line"
    assert "whose input changed" in summary.group(2)
    assert "what a rerun recomputes" in text.lower() or "what a rerun reuses" in text.lower()
