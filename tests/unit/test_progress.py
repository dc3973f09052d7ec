"""The progress bar over seconds of audio (issue 22, item 2): it never passes 100 %, never
prints a warning into the bar, and advances inside a long file, block by block.

The bar is written to a StringIO (standing in for stderr) and read back; a long file is made
"long" by lowering :data:`hear_mn.long_audio.LONG_SECONDS`, so the test stays fast.
"""

from __future__ import annotations

import io
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from hear_mn.batch import embed_files
from hear_mn.progress import AudioProgress
from hear_mn.registry import create_model

sf = pytest.importorskip("soundfile")

RATE = 16000


def _write(path: Path, seconds: float, rate: int = RATE) -> Path:
    samples = int(round(seconds * rate))
    signal = 0.1 * np.sin(np.arange(samples) * 0.05, dtype=np.float64)
    sf.write(path, signal.astype(np.float32), rate)
    return path


def _bar_text(stream: io.StringIO) -> str:
    return stream.getvalue().replace("\r", "\n")


def _assert_never_past_the_end(text: str) -> None:
    assert "Warning" not in text, text
    percentages = [int(value) for value in re.findall(r"(\d+)%", text)]
    assert percentages and max(percentages) <= 100, text
    for done, total in re.findall(r"([\d.]+)/([\d.]+) s of audio", text):
        assert float(done) <= float(total), text
    assert "-" not in "".join(re.findall(r"<([^,\]]*)", text)), f"negative time left: {text}"


def _run_bar(monkeypatch, files: list[Path], seconds: dict[Path, float]) -> tuple[str, list]:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bar = AudioProgress("embed", files, True)
        for path in files:
            bar.done(path, seconds[path])
        bar.close()
    return _bar_text(stream), caught


def test_a_tiny_clip_and_durations_that_round_down_never_pass_100_percent(
    monkeypatch, tmp_path
) -> None:
    """A 0.05 s clip beside a 0.99 s file: the total (1.04 s) must not be rounded below the
    sum of what is counted (it was: 1.0 s, then 104 % with a TqdmWarning in the bar)."""
    files = [_write(tmp_path / "tiny.wav", 0.05), _write(tmp_path / "a.wav", 0.99)]
    text, caught = _run_bar(monkeypatch, files, {files[0]: 0.05, files[1]: 0.99})
    assert not [w for w in caught if "tqdm" in type(w.message).__name__.lower()], caught
    assert not caught, [str(w.message) for w in caught]
    _assert_never_past_the_end(text)
    assert "100%" in text


def test_files_whose_header_gives_no_duration_do_not_overshoot(monkeypatch, tmp_path) -> None:
    """A file with no duration in its header (here: not audio at all) counted with what was
    decoded, and a file that decoded longer than its header said: still at most 100 %."""
    unknown = tmp_path / "unknown.bin"
    unknown.write_bytes(b"not audio")
    known = _write(tmp_path / "known.wav", 1.0)
    text, caught = _run_bar(monkeypatch, [known, unknown], {known: 1.5, unknown: 3.0})
    assert not caught, [str(w.message) for w in caught]
    _assert_never_past_the_end(text)


def test_the_bar_advances_inside_a_long_file(monkeypatch, tmp_path) -> None:
    """One long file: progress is reported block by block while it is embedded, each time
    below its length, and the bar's count moves before the file is done."""
    from hear_mn import long_audio

    monkeypatch.setattr(long_audio, "LONG_SECONDS", 2.0)
    monkeypatch.setattr(long_audio, "BLOCK_SECONDS", 1.0)
    path = _write(tmp_path / "long.wav", 6.0)
    torch.manual_seed(0)
    model = create_model("kwmlp", pretrained=False)
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    bar = AudioProgress("embed", [path], True)
    within: list[tuple[float, float]] = []
    finished: list[float] = []

    def advance(where: Path, seconds: float) -> None:
        assert Path(where) == path
        bar.advance(where, seconds)
        within.append((seconds, bar.done_seconds))

    def done(where: Path, seconds: float) -> None:
        bar.done(where, seconds)
        finished.append(bar.done_seconds)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = embed_files(
            [path], model, tmp_path / "out", progress=done, progress_in_file=advance
        )
        bar.close()
    assert report.written and not report.failures
    assert len(within) >= 3, within
    assert all(0 < seconds <= 6.0 for seconds, _ in within), within
    assert [shown for _, shown in within] == sorted(shown for _, shown in within)
    assert 0 < within[0][1] < 6.0
    assert finished == [pytest.approx(6.0)]
    assert not caught, [str(w.message) for w in caught]
    _assert_never_past_the_end(_bar_text(stream))
