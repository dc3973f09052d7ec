"""Long files embedded block by block (issue 22, item 7): decoded in blocks, pushed through the
model's streams, never held whole, with the numbers of the whole-file computation.

Block-wise results are compared with the whole-file HEAR calls on signals of several blocks
(random weights; MobileNet BatchNorm statistics randomized so that every layer matters),
within the project's float32 rule (1e-5 of the largest value); a long clip already in
memory (what the Ray engine and the evaluator hold) goes through the same blocks, bit for
bit. "Long" and the block size are lowered here so that the signals stay short.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from support.reference import randomize_batchnorm, relative_error

from hear_mn import audio_io, batch, input_decoding, long_audio
from hear_mn.registry import create_model

sf = pytest.importorskip("soundfile")

MODELS = ("kwmlp", "audiomae", "mn04_e1_l")


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    built = {}
    for name in MODELS:
        torch.manual_seed(0)
        built[name] = create_model(name, pretrained=False)
        if name.startswith("mn"):
            randomize_batchnorm(built[name].backbone)
    return built


def _signal(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """Noise with a slow envelope, so that windows and chunks differ from one another."""
    n = int(seconds * rate)
    rng = np.random.default_rng(seed)
    envelope = 0.5 + 0.4 * np.sin(np.arange(n) * (2 * np.pi / (1.7 * rate)))
    return (0.2 * envelope * rng.standard_normal(n)).astype(np.float32)


def _pieces(audio: np.ndarray, sizes: tuple[int, ...]) -> list[np.ndarray]:
    """``audio`` cut into pieces of the given sizes, cycled (as a decoder's slices come)."""
    pieces, start, index = [], 0, 0
    while start < len(audio):
        size = sizes[index % len(sizes)]
        pieces.append(audio[start : start + size])
        start, index = start + size, index + 1
    return pieces


# (model, mode, seconds of signal, block seconds): each signal spans several blocks; the
# MobileNet scene cases cover a clip past 10 s (mean of 10 s windows) and one below it.
CASES = [
    ("kwmlp", "timestamps", 5.3, 0.77),
    ("kwmlp", "scene", 5.3, 0.77),
    ("audiomae", "timestamps", 4.1, 1.13),
    ("audiomae", "scene", 4.1, 1.13),
    ("mn04_e1_l", "timestamps", 3.3, 0.41),
    ("mn04_e1_l", "scene", 23.0, 3.1),
    ("mn04_e1_l", "scene", 7.0, 1.9),
]


@pytest.mark.parametrize(("name", "mode", "seconds", "block"), CASES)
def test_blockwise_equals_the_whole_file(models, monkeypatch, name, mode, seconds, block) -> None:
    model = models[name]
    monkeypatch.setattr(long_audio, "BLOCK_SECONDS", block)
    rate = model.sample_rate
    audio = _signal(seconds, rate)
    timestamps = mode == "timestamps"
    seen: list[float] = []
    result = long_audio.embed_blocks(
        model, _pieces(audio, (7919, 20011, 1, 104729)), timestamps, progress=seen.append
    )
    whole = torch.from_numpy(audio)[None]
    if timestamps:
        embeddings, times = model.timestamp_embeddings(whole)
        assert result["embedding"].shape == tuple(embeddings.shape[1:])
        assert relative_error(result["embedding"], embeddings[0]) <= 1e-5
        np.testing.assert_array_equal(result["timestamps"], times[0].numpy())
    else:
        scene = model.scene_embeddings(whole)[0]
        assert result["embedding"].shape == tuple(scene.shape)
        assert relative_error(result["embedding"], scene) <= 1e-5
        assert "timestamps" not in result
    assert result["embedding"].dtype == np.float32
    assert len(seen) >= 3 and seen == sorted(seen) and seen[-1] == pytest.approx(seconds, abs=1e-3)


@pytest.mark.parametrize("timestamps", [False, True])
def test_a_long_clip_in_memory_goes_through_the_same_blocks(
    models, monkeypatch, timestamps
) -> None:
    """embed_clips (the Ray engine's and the evaluator's path) on a long clip gives the
    numbers of the block-wise file path bit for bit; short clips keep the batched path."""
    monkeypatch.setattr(long_audio, "LONG_SECONDS", 2.0)
    monkeypatch.setattr(long_audio, "BLOCK_SECONDS", 0.9)
    model = models["kwmlp"]
    audio = _signal(4.5, model.sample_rate, seed=3)
    blocks = long_audio.embed_blocks(model, _pieces(audio, (5000, 33333)), timestamps)
    (in_memory,) = batch.embed_clips(model, [audio], timestamps)
    assert not isinstance(in_memory, str)
    for key, value in blocks.items():
        np.testing.assert_array_equal(in_memory[key], value)
    short = audio[: int(1.5 * model.sample_rate)]
    (batched,) = batch.embed_clips(model, [short], timestamps)
    np.testing.assert_array_equal(
        batched["embedding"], batch.embed_arrays(model, short[None], timestamps)[0]["embedding"]
    )


def test_decoding_in_blocks_gives_the_samples_of_load_audio(tmp_path) -> None:
    """A 44.1 kHz stereo file resampled to 16 kHz: the slices a receiver gets, joined, are
    load_audio's samples bit for bit; an error of the receiver is raised as itself, not
    taken for an unreadable file."""
    path = tmp_path / "stereo.wav"
    stereo = np.stack([_signal(3.2, 44100, 1), _signal(3.2, 44100, 2)], axis=1)
    sf.write(path, stereo, 44100, subtype="FLOAT")
    slices: list[np.ndarray] = []
    count = audio_io.stream_audio(path, 16000, lambda: slices.append)
    joined = np.concatenate(slices)
    np.testing.assert_array_equal(joined, audio_io.load_audio(path, 16000))
    assert count == len(joined) and len(slices) > 1

    class ModelBrokeError(RuntimeError):
        pass

    def broken() -> object:
        def receive(samples: np.ndarray) -> None:
            raise ModelBrokeError("out of patience")

        return receive

    with pytest.raises(ModelBrokeError, match="out of patience"):
        audio_io.stream_audio(path, 16000, broken)


@pytest.mark.parametrize("timestamps", [False, True])
def test_a_long_file_is_embedded_without_decoding_it_whole(
    models, monkeypatch, tmp_path, timestamps
) -> None:
    """embed_files on a long file beside a short one: the long one is never decoded whole
    (load_audio is not called for it), and both outputs match the whole-file computation."""
    monkeypatch.setattr(long_audio, "LONG_SECONDS", 2.0)
    monkeypatch.setattr(long_audio, "BLOCK_SECONDS", 0.8)
    model = models["kwmlp"]
    long_file, short_file = tmp_path / "in" / "long.wav", tmp_path / "in" / "short.wav"
    long_file.parent.mkdir()
    sf.write(long_file, _signal(6.2, 22050, 4), 22050, subtype="FLOAT")
    sf.write(short_file, _signal(1.2, 16000, 5), 16000, subtype="FLOAT")
    expected = {path: audio_io.load_audio(path, 16000) for path in (long_file, short_file)}

    def refuse_whole(path: object, sample_rate: int) -> np.ndarray:
        raise AssertionError(f"{path} was decoded whole")

    monkeypatch.setattr(audio_io, "load_audio", refuse_whole)
    monkeypatch.setattr(input_decoding, "load_audio", refuse_whole)
    report = batch.embed_files([tmp_path / "in"], model, tmp_path / "out", timestamps=timestamps)
    assert not report.failures and len(report.written) == 2
    for path, audio in expected.items():
        whole = torch.from_numpy(audio)[None]
        reference = (
            model.timestamp_embeddings(whole)[0][0]
            if timestamps
            else model.scene_embeddings(whole)[0]
        )
        with np.load(tmp_path / "out" / f"{path.name}.npz") as data:
            assert relative_error(data["embedding"], reference) <= 1e-5
            settings = data["settings"]
        assert "sha256" in str(settings)


def test_a_failing_model_fails_the_long_file_alone(monkeypatch, tmp_path) -> None:
    """A model error while a long file is embedded block by block is that file's failure
    ("embedding failed: ..."), not an unreadable file, and the run goes on."""
    monkeypatch.setattr(long_audio, "LONG_SECONDS", 2.0)
    monkeypatch.setattr(long_audio, "BLOCK_SECONDS", 0.8)
    model = create_model("kwmlp", pretrained=False)
    folder = tmp_path / "in"
    folder.mkdir()
    sf.write(folder / "a_long.wav", _signal(5.0, 16000, 6), 16000)
    sf.write(folder / "b_long.wav", _signal(4.0, 16000, 7), 16000)

    def chunk_frames(chunks: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("simulated model failure")

    monkeypatch.setattr(model, "chunk_frames", chunk_frames)
    report = batch.embed_files([folder], model, tmp_path / "out")
    failed = {Path(path).name: why for path, why in report.failures}
    assert sorted(failed) == ["a_long.wav", "b_long.wav"]
    for why in failed.values():
        assert why == "embedding failed: simulated model failure"


# Rows collected for an output (a long file's timestamp embeddings): the peak may pass the
# output by little more than one piece, whatever the output's size; growing one array by a
# quarter at a time (zero-filled) passed it by up to a quarter of the output.
_ROWS_PEAK = """
import resource, sys, numpy as np
from hear_mn.long_audio import _Rows
rows, piece = _Rows(3840), np.ones((128, 3840), np.float32)
for _ in range(4):
    rows.add(piece)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for _ in range(int(sys.argv[1]) - 4):
    rows.add(piece)
out = rows.array()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert out.shape == (128 * int(sys.argv[1]), 3840) and (out == 1).all()
print((after - before) / 1024 - out.nbytes / 2**20)
"""


@pytest.mark.parametrize("pieces", [160, 200])
def test_collected_rows_exist_once(pieces) -> None:
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", _ROWS_PEAK, str(pieces)], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    beyond_output = float(run.stdout.split()[-1])
    assert beyond_output < 10, f"peak passed the output by {beyond_output:.0f} MiB"
