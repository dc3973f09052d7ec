"""Hostile cases (issue 21, items 9, 14 and 15's audio part): memory bombs in audio files,
and inputs that once got raw torch, pathlib, numpy or ONNX errors instead of clear ones.

Each test was written first and failed on the code before its fix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

import hear_mn
from hear_mn import cli, mn01_all_b_mel_avgs
from hear_mn.audio_io import AudioReadError, load_audio
from hear_mn.registry import create_model

sf = pytest.importorskip("soundfile")
soxr = pytest.importorskip("soxr")

SMALL = "mn01_all_b_mel_avgs"
FAMILIES = ["mn04_e1_l", "dymn04_all_b_mel_avgs", "kwmlp"]


def _write_wav(path: Path, frames: int, rate: int) -> Path:
    noise = np.random.default_rng(0).standard_normal(frames) * 0.1
    sf.write(path, noise.astype(np.float32), rate, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def small_model() -> torch.nn.Module:
    return create_model(SMALL, pretrained=False)


# --------------------------------------------------------------------------- item 9


def test_a_wav_declaring_a_tiny_rate_is_resampled_in_bounded_slices(tmp_path, monkeypatch) -> None:
    """Item 9: soxr gets a block in slices, so the peak is the result plus a slice's output
    (it was the result plus all that one 64k-frame block resampled to: twice the result)."""
    path = _write_wav(tmp_path / "hundred_hz.wav", 20000, 100)  # 6.4 M samples at 32 kHz
    monkeypatch.delenv("HEAR_MN_MAX_AUDIO_SECONDS", raising=False)
    tracemalloc.start()
    try:
        audio = load_audio(path, 32000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    mono = sf.read(path, dtype="float32")[0]
    np.testing.assert_array_equal(audio, soxr.resample(mono, 100, 32000, quality="HQ"))
    assert peak < audio.nbytes * 1.25, (
        f"peak {peak / 2**20:.1f} MiB, result {audio.nbytes / 2**20:.1f}"
    )


def test_a_wav_declaring_1_hz_decodes_exactly(tmp_path) -> None:
    """Item 9: slicing changes no sample, also at the most extreme ratio (1 Hz -> 32 kHz)."""
    path = _write_wav(tmp_path / "one_hz.wav", 300, 1)
    mono = sf.read(path, dtype="float32")[0]
    expected = soxr.resample(mono, 1, 32000, quality="HQ")
    np.testing.assert_array_equal(load_audio(path, 32000), expected)


def test_audio_over_the_configured_limit_fails_alone_and_named(tmp_path, monkeypatch) -> None:
    """Item 9: HEAR_MN_MAX_AUDIO_SECONDS refuses a file before its samples are allocated."""
    path = _write_wav(tmp_path / "one_hz.wav", 20000, 1)  # the 40 KB file: 2.4 GiB decoded
    monkeypatch.setenv("HEAR_MN_MAX_AUDIO_SECONDS", "3600")
    tracemalloc.start()
    try:
        with pytest.raises(AudioReadError) as error:
            load_audio(path, 32000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(error.value)
    assert str(path) in message and "HEAR_MN_MAX_AUDIO_SECONDS" in message and "1 Hz" in message
    assert peak < 50 * 2**20


def test_a_bad_limit_setting_is_a_clear_error(tmp_path, monkeypatch) -> None:
    path = _write_wav(tmp_path / "ok.wav", 3200, 32000)
    monkeypatch.setenv("HEAR_MN_MAX_AUDIO_SECONDS", "lots")
    with pytest.raises(ValueError, match="HEAR_MN_MAX_AUDIO_SECONDS"):
        load_audio(path, 32000)


def test_audio_over_the_memory_available_fails_named(tmp_path, monkeypatch) -> None:
    """Item 9: without a configured limit, a file whose samples cannot fit in the memory
    available is refused before allocating, naming the file and the sizes."""
    path = _write_wav(tmp_path / "one_hz.wav", 20000, 1)
    monkeypatch.delenv("HEAR_MN_MAX_AUDIO_SECONDS", raising=False)
    monkeypatch.setattr("hear_mn.decode_limits.available_memory", lambda: 2**30)
    with pytest.raises(AudioReadError) as error:
        load_audio(path, 32000)
    assert str(path) in str(error.value) and "memory" in str(error.value)


def test_memory_error_inside_the_resampler_is_a_named_failure(tmp_path, monkeypatch) -> None:
    """Item 9: soxr's std::bad_alloc (a MemoryError) becomes this file's AudioReadError."""

    class FailingStream:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def resample_chunk(self, *args: object, **kwargs: object) -> np.ndarray:
            raise MemoryError("std::bad_alloc")

    path = _write_wav(tmp_path / "one_hz.wav", 100, 1)
    monkeypatch.setattr(soxr, "ResampleStream", FailingStream)
    with pytest.raises(AudioReadError) as error:
        load_audio(path, 32000)
    assert str(path) in str(error.value) and "memory" in str(error.value)


_UNDER_LIMIT = """
import json, resource, sys
import torch
from hear_mn.batch import embed_files
from hear_mn.registry import create_model
torch.set_num_threads(1)
model = create_model(sys.argv[1], pretrained=False)
limit = 3 * 2**30
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
report = embed_files([sys.argv[2]], model, sys.argv[3])
written = [p.name for p in report.written]
print("RESULT", json.dumps([written, [[p.name, r] for p, r in report.failures]]))
"""


@pytest.mark.slow  # a child process decodes a memory bomb
@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS as Linux enforces it")
def test_under_a_3_gb_address_space_limit_the_neighbour_is_still_written(tmp_path) -> None:
    """Item 9: a 60 KB WAV declaring 1 Hz (3.6 GiB at 32 kHz, more than the whole limit)
    under a 3 GB address-space limit: the run goes on and the neighbour is written (such a
    run died with ``MemoryError: std::bad_alloc`` or numpy's ``_ArrayMemoryError``, naming no
    file, nothing written). Since long files are embedded block by block (issue 22, item 7),
    the 8-hour signal never needs its 3.6 GiB at once, so it is embedded too; a file that
    must be decoded whole beyond the memory available fails alone, named (the tests above)."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    _write_wav(inputs / "a_one_hz.wav", 30000, 1)
    _write_wav(inputs / "b_fine.wav", 16000, 32000)
    env = {k: v for k, v in os.environ.items() if k != "HEAR_MN_MAX_AUDIO_SECONDS"}
    result = subprocess.run(
        [sys.executable, "-c", _UNDER_LIMIT, SMALL, inputs, tmp_path / "out"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT"))
    written, failures = json.loads(line[len("RESULT") :])
    assert sorted(written) == ["a_one_hz.wav.npz", "b_fine.wav.npz"], failures
    assert failures == []


# --------------------------------------------------------------------------- item 14


@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_sparse_audio_is_refused_clearly(small_model, layout: str) -> None:
    audio = torch.rand(1, 32000)
    sparse = audio.to_sparse() if layout == "coo" else audio.to_sparse_csr()
    with pytest.raises(TypeError, match=r"sparse.*to_dense\(\)"):
        hear_mn.get_scene_embeddings(sparse, small_model)


@pytest.mark.parametrize("device", ["mps", "xpu"])
def test_an_unavailable_device_type_is_refused_clearly(device: str) -> None:
    with pytest.raises(ValueError, match=rf"device '{device}'.*(not available|no )"):
        create_model(SMALL, pretrained=False, device=device)
    with pytest.raises(ValueError, match=rf"device '{device}'"):
        mn01_all_b_mel_avgs.load_model(pretrained=False, device=device)


def test_cli_device_mps_is_a_usage_error(tmp_path, capsys) -> None:
    """Item 14: ``--device mps`` is a usage error (exit 2), found before any weights."""
    wav = _write_wav(tmp_path / "a.wav", 3200, 32000)
    code = cli.main(["embed", str(wav), "--out", str(tmp_path / "out"), "--device", "mps"])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert "mps" in captured.err and "Traceback" not in captured.err


@pytest.mark.parametrize("name", FAMILIES)
def test_a_half_precision_model_is_refused_clearly(name: str) -> None:
    """Item 14: after ``model.half()`` the HEAR calls say what to do (they raised torch's
    "expected scalar type Float but found Half" from deep inside the frontend)."""
    model = create_model(name, pretrained=False).half()
    audio = torch.rand(1, model.sample_rate)
    for call in (hear_mn.get_scene_embeddings, hear_mn.get_timestamp_embeddings):
        with pytest.raises(TypeError, match=r"float16.*model\.float\(\)"):
            call(audio, model)
    with pytest.raises(TypeError, match=r"float16.*model\.float\(\)"):
        model.stream()
    model.float()
    assert hear_mn.get_scene_embeddings(audio, model).dtype == torch.float32


@pytest.mark.parametrize(
    "option, value",
    [
        ("timestamp_hop", float("inf")),
        ("timestamp_hop", float("-inf")),
        ("timestamp_window", float("inf")),
        ("timestamp_window", 1e9),
        ("timestamp_hop", 1e9),
    ],
)
def test_unreasonable_timestamp_windows_are_refused_at_load(option: str, value: float) -> None:
    """Item 14: an infinite hop raised OverflowError; a 1e9 ms window was accepted and asked
    for a 256 GB allocation on the first call."""
    with pytest.raises(ValueError, match=rf"{option}=.*ms") as error:
        mn01_all_b_mel_avgs.load_model(pretrained=False, **{option: value})
    assert "at most" in str(error.value) or "finite" in str(error.value)


def test_an_unreasonable_window_size_in_a_call_is_refused(small_model) -> None:
    """Item 14: window_size/pad in samples at call time are bounded as at load time."""
    audio = torch.rand(1, 32000)
    for keywords in ({"window_size": 10**9}, {"pad": 10**9}, {"hop": 10**12}):
        with pytest.raises(ValueError, match="at most"):
            small_model.timestamp_embeddings(audio, **keywords)


@pytest.mark.parametrize("path", [123, 4.5, ["a.pt"], b"\x00"])
def test_a_model_file_path_of_the_wrong_type_is_refused_clearly(path: object) -> None:
    with pytest.raises(TypeError, match="model_file_path.*file name"):
        mn01_all_b_mel_avgs.load_model(path)
    with pytest.raises(TypeError, match="weights.*file name"):
        create_model(SMALL, weights=path)


# --------------------------------------------------------------------------- item 14: ONNX


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory, small_model) -> Path:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from hear_mn.export import onnx_bytes

    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    path.write_bytes(onnx_bytes(small_model, frontend=False))
    return path


def _damaged(onnx_file: Path, folder: Path) -> dict[str, Path]:
    data = onnx_file.read_bytes()
    files = {
        "truncated": data[: len(data) // 2],
        "cut_early": data[:10],
        "garbage": np.random.default_rng(1).bytes(5000),
        "text": b"hello, I am not an ONNX model\n",
        "empty": b"",
    }
    for name, content in files.items():
        (folder / f"{name}.onnx").write_bytes(content)
    return {name: folder / f"{name}.onnx" for name in files}


def test_damaged_onnx_files_are_called_damaged(onnx_file, small_model, tmp_path) -> None:
    """Item 14: read_metadata and verify_onnx on damaged files raised protobuf's DecodeError
    or onnxruntime's INVALID_ARGUMENT; now OnnxFileError naming the file and the cause."""
    from hear_mn.export import OnnxFileError, read_metadata, verify_onnx

    for name, path in _damaged(onnx_file, tmp_path).items():
        for call in (lambda p: read_metadata(p), lambda p: verify_onnx(small_model, p)):
            with pytest.raises(OnnxFileError) as error:
                call(path)
            message = str(error.value)
            assert str(path) in message and ("damaged" in message or "empty" in message), name
        with pytest.raises(OnnxFileError, match="damaged|empty"):
            read_metadata(path.read_bytes())


def test_missing_or_unreadable_onnx_paths_are_named(small_model, tmp_path) -> None:
    from hear_mn.export import read_metadata, verify_onnx
    from hear_mn.hub.errors import FileError

    for path, reason in ((tmp_path / "missing.onnx", "No such file"), (tmp_path, "directory")):
        for call in (read_metadata, lambda p: verify_onnx(small_model, p)):
            with pytest.raises(FileError, match=reason) as error:
                call(path)
            assert str(path) in str(error.value)
    for bad in (123, None, ["model.onnx"]):
        with pytest.raises(TypeError, match="ONNX model"):
            read_metadata(bad)
        with pytest.raises(TypeError, match="ONNX model"):
            verify_onnx(small_model, bad)


def test_verify_onnx_of_another_models_file_names_both(onnx_file) -> None:
    """Item 14: a file of another model was "shape (2, 911) where the torch model gives
    (2, 1024)"; now the mismatch names the file's model and the given one."""
    from hear_mn.export import OnnxVerificationError, verify_onnx

    for other in ("kwmlp", "mn04_e1_l"):
        model = create_model(other, pretrained=False)
        with pytest.raises(OnnxVerificationError) as error:
            verify_onnx(model, onnx_file)
        message = str(error.value)
        assert SMALL in message and other in message and "nothing was written" not in message


def test_verify_onnx_of_a_file_with_changed_numbers_says_so(
    onnx_file, small_model, tmp_path
) -> None:
    """A file whose weights were overwritten parses but disagrees: verify_onnx reports the
    disagreement, without claiming that it did not write anything (it writes nothing)."""
    from hear_mn.export import OnnxFileError, OnnxVerificationError, verify_onnx

    data = bytearray(onnx_file.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4000] = b"\x7f" * 4000
    path = tmp_path / "overwritten.onnx"
    path.write_bytes(bytes(data))
    with pytest.raises((OnnxVerificationError, OnnxFileError)) as error:
        verify_onnx(small_model, path)
    assert "nothing was written" not in str(error.value) and str(path) in str(error.value)


# --------------------------------------------------------------------------- item 15


@pytest.mark.parametrize("value", [1e300, -1e39, 3.5e38])
def test_finite_audio_beyond_float32_range_is_called_so(small_model, value: float) -> None:
    """Item 15: finite float64 audio too large for float32 was called "NaN or Inf"."""
    for audio in (np.full((1, 32000), value), torch.full((1, 32000), value, dtype=torch.float64)):
        with pytest.raises(ValueError) as error:
            hear_mn.get_scene_embeddings(audio, small_model)
        message = str(error.value)
        assert "float32" in message and "range" in message and "NaN" not in message
    audio = np.zeros((1, 32000))
    audio[0, 5] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        hear_mn.get_scene_embeddings(audio, small_model)
