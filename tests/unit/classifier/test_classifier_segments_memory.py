"""Segments of a long file (``file,label,start,end``) are embedded without decoding the file
whole: the samples of the segments are kept as the file streams by, nothing else, and the
embeddings equal those of the segments cut from the whole signal."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import hear_mn
from hear_mn import long_audio
from hear_mn.audio_io import load_audio
from hear_mn.classifier.data import read_labelled
from hear_mn.classifier.features import embed_examples

RATE = 16000
MINUTES = 4  # 15 MB of float32 at 16 kHz; the segments are 6 s of it


@pytest.fixture(scope="module")
def long_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("long")
    rng = np.random.default_rng(0)
    t = np.arange(MINUTES * 60 * RATE) / RATE
    audio = np.where(t.astype(int) % 2, 0.5 * np.sin(2 * np.pi * 300 * t), 0.0)
    audio += 0.05 * rng.standard_normal(t.size)
    sf.write(str(folder / "long.wav"), audio.astype(np.float32), RATE, "PCM_16")
    rows = ["file,label,start,end"]
    rows += [
        f"long.wav,{'tone' if k % 2 else 'hiss'},{k * 40 + k % 2},{k * 40 + k % 2 + 1}"
        for k in range(6)
    ]
    rows.append(f"long.wav,tail,{MINUTES * 60 - 0.5},{MINUTES * 60 + 2}")  # ends after the file
    (folder / "segments.csv").write_text("\n".join(rows) + "\n")
    return folder


def _embed_holding_little(data: object, model: object, cache: Path) -> object:
    """embed_examples on ``data``, asserting that Python/numpy memory (tracemalloc) peaked
    below a quarter of the whole file's float32 samples."""
    tracemalloc.start()
    try:
        embedded = embed_examples(data.examples, model, cache)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    whole_file = MINUTES * 60 * RATE * 4
    assert peak < whole_file / 4, f"peak {peak / 1e6:.1f} MB of Python/numpy memory"
    return embedded


def test_segments_are_embedded_without_the_whole_file(long_file: Path, tmp_path: Path) -> None:
    data = read_labelled(long_file / "segments.csv")
    model = hear_mn.create_model("kwmlp")
    embedded = _embed_holding_little(data, model, tmp_path / "cache")
    assert not embedded.failures and len(embedded.embeddings) == 7
    # the same numbers as the segments cut from the whole signal
    audio = load_audio(long_file / "long.wav", RATE)
    for example in data.examples:
        clip = audio[round(example.start * RATE) : round(example.end * RATE)]
        expected = model.scene_embeddings(clip[None]).numpy()[0]
        np.testing.assert_allclose(embedded.embeddings[example], expected, atol=1e-5)
        assert embedded.seconds[example] == pytest.approx(len(clip) / RATE)


def test_a_segment_after_the_end_is_left_out(long_file: Path, tmp_path: Path) -> None:
    listing = tmp_path / "late.csv"
    listing.write_text(
        f"file,label,start,end\n{long_file}/long.wav,x,1,2\n{long_file}/long.wav,y,9999,10000\n"
    )
    data = read_labelled(listing)
    embedded = embed_examples(data.examples, hear_mn.create_model("kwmlp"), tmp_path / "cache")
    assert len(embedded.embeddings) == 1
    ((example, why),) = embedded.failures
    assert example.start == 9999 and "starts after the end of the file (240.000 s)" in why


def test_a_long_whole_file_example_is_embedded_block_by_block(
    long_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole-file example longer than LONG_SECONDS goes through the long-file path (decoded
    and embedded in blocks, as `hear-mn embed` does), never held whole, with the numbers of
    the whole-file computation. "Long" and the block are lowered (10 s, 4 s) so that what
    the path holds (the first LONG_SECONDS, a block) is small beside the 4-minute file."""
    monkeypatch.setattr(long_audio, "LONG_SECONDS", 10.0)
    monkeypatch.setattr(long_audio, "BLOCK_SECONDS", 4.0)
    (tmp_path / "sounds" / "drone").mkdir(parents=True)
    (tmp_path / "sounds" / "drone" / "long.wav").symlink_to(long_file / "long.wav")
    data = read_labelled(tmp_path / "sounds")
    model = hear_mn.create_model("kwmlp")
    embedded = _embed_holding_little(data, model, tmp_path / "cache")
    assert not embedded.failures and len(embedded.embeddings) == 1
    (example,) = data.examples
    audio = load_audio(long_file / "long.wav", RATE)
    expected = model.scene_embeddings(audio[None]).numpy()[0]
    np.testing.assert_allclose(embedded.embeddings[example], expected, atol=1e-5)
    assert embedded.seconds[example] == pytest.approx(MINUTES * 60)
