"""examples/edge_stream.py, the on-device streaming example: run as an app developer would
(in a process where torch and hear_mn cannot be imported) on an exported file, its windows
equal hear_mn's offline timestamp embeddings with the same indices; bad inputs give a clear
message and a non-zero exit.

The model is the mn04 test checkpoint (../shared's reference/mn04_seed1.pt, random weights
with random BatchNorm statistics). Its embeddings change little from one window to the next
(about 1e-4 of their largest value), so besides the agreement rule of ../shared/README.md
(max|ours - ref| <= 1e-5 max|ref|, tighter than the 1e-4 the example promises) the test checks
that each streamed window is far closer to its own offline window than to a neighbour's: a
stream off by one hop fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from support import ROOT
from support.reference import MN04_WEIGHTS, relative_error, require_shared

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (hear-mn[onnx])")
pytest.importorskip("onnx", reason="onnx is not installed (hear-mn[onnx])")
sf = pytest.importorskip("soundfile", reason="soundfile is not installed")

import hear_mn.mn04_e1_l as mn04  # noqa: E402
from hear_mn.export import export_onnx, read_metadata  # noqa: E402

EXAMPLE = ROOT / "examples" / "edge_stream.py"
SAMPLE_RATE = 32000
RTOL = 1e-5
# Runs the example with torch and hear_mn made unimportable, as on a device.
NO_TORCH = (
    "import sys, runpy; sys.modules['torch'] = None; sys.modules['hear_mn'] = None; "
    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


def run_example(*args: object, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python examples/edge_stream.py args...`` without torch and hear_mn."""
    return subprocess.run(
        [sys.executable, "-c", NO_TORCH, str(EXAMPLE), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def make_signal(seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """A rising tone with a 3 Hz envelope, plus noise in its second half (float32 mono)."""
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    rng = np.random.default_rng(seed)
    phase = 2 * np.pi * np.cumsum(200.0 + 3000.0 * t) / SAMPLE_RATE
    tone = 0.25 * (1.0 + np.sin(2 * np.pi * 3.0 * t)) * np.sin(phase)
    noise = 0.05 * rng.standard_normal(n) * (t > seconds / 2)
    return (tone + noise).astype(np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path, Path]:
    """The mn04 test model, its ONNX file (with the frontend) and a 1.5 s WAV file."""
    folder = tmp_path_factory.mktemp("edge")
    model = mn04.load_model(str(require_shared(MN04_WEIGHTS)))
    onnx_path = export_onnx(model, folder / "mn04.onnx")
    wav = folder / "input.wav"
    sf.write(str(wav), make_signal(), SAMPLE_RATE, subtype="FLOAT")
    return model, onnx_path, wav


def test_stream_equals_offline_timestamp_embeddings(
    exported: tuple[object, Path, Path], tmp_path: Path
) -> None:
    model, onnx_path, wav = exported
    out = tmp_path / "out.json"
    done = run_example(onnx_path, wav, "--json", out, "--quiet")
    assert done.returncode == 0, done.stderr
    assert "windows, latency median" in done.stdout
    assert "window     2" not in done.stdout  # --quiet: the summary only
    record = json.loads(out.read_text())

    meta = read_metadata(onnx_path)
    size, hop = int(meta["timestamp_window_samples"]), int(meta["timestamp_hop_samples"])
    pad = size // 2
    audio = torch.from_numpy(sf.read(str(wav), dtype="float32")[0])[None]
    n = audio.shape[1]
    # The stream emits the windows wholly inside the audio: i * hop - pad >= 0 and
    # i * hop + pad <= n (here 2..28 of the offline 0..30).
    first, last = -(-pad // hop), (n - pad) // hop
    assert record["indices"] == list(range(first, last + 1))

    embeddings, timestamps = mn04.get_timestamp_embeddings(audio, model)
    offline = embeddings[0].numpy()
    indices = np.asarray(record["indices"])
    streamed = np.asarray(record["embeddings"], dtype=np.float64)
    error = relative_error(streamed, offline[indices])
    shifted = relative_error(streamed[1:], offline[indices[:-1]])
    print(f"stream vs offline: {error:.3g} (same index), {shifted:.3g} (one hop off)")
    assert error <= RTOL
    # Alignment: a neighbouring window is much further away than float32 rounding.
    assert shifted > 20 * max(error, 1e-7), (error, shifted)
    np.testing.assert_allclose(record["timestamps_ms"], timestamps[0].numpy()[indices])

    latencies = np.asarray(record["latencies_ms"])
    assert latencies.shape == indices.shape and (latencies > 0).all()
    summary = record["summary"]
    assert summary["windows"] == len(indices)
    assert 0 < summary["median_ms"] <= summary["p95_ms"]
    assert summary["real_time_factor"] > 0


def test_prints_each_window(exported: tuple[object, Path, Path], tmp_path: Path) -> None:
    """A stereo file is mixed to mono; without --quiet every window gets a line."""
    _, onnx_path, _ = exported
    wav = tmp_path / "stereo.wav"
    signal = make_signal()
    sf.write(str(wav), np.stack([signal, 0.5 * signal], axis=1), SAMPLE_RATE)
    done = run_example(onnx_path, wav, "--threads", 2)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("window")]
    assert len(lines) == 27
    assert lines[0].split()[:4] == ["window", "2", "t=", "100.0"]
    assert "D=911" in lines[0] and lines[0].endswith(" ms")
    assert "27 windows" in done.stdout and "(2 threads)" in done.stdout


def test_other_sample_rate_is_refused(exported: tuple[object, Path, Path], tmp_path: Path) -> None:
    _, onnx_path, _ = exported
    wav = tmp_path / "16k.wav"
    sf.write(str(wav), make_signal()[:16000], 16000)
    done = run_example(onnx_path, wav)
    assert done.returncode != 0
    assert "16000 Hz" in done.stderr and "32000 Hz" in done.stderr
    assert "resample" in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_or_bad_files(exported: tuple[object, Path, Path], tmp_path: Path) -> None:
    _, onnx_path, wav = exported
    done = run_example(tmp_path / "missing.onnx", wav)
    assert done.returncode != 0
    assert "model file not found" in done.stderr and "missing.onnx" in done.stderr
    assert "Traceback" not in done.stderr

    not_onnx = tmp_path / "not.onnx"
    not_onnx.write_bytes(b"not a model")
    done = run_example(not_onnx, wav)
    assert done.returncode != 0
    assert "cannot load" in done.stderr and "Traceback" not in done.stderr

    done = run_example(onnx_path, tmp_path / "missing.wav")
    assert done.returncode != 0
    assert "audio file not found" in done.stderr and "Traceback" not in done.stderr


def test_audio_shorter_than_the_first_window(
    exported: tuple[object, Path, Path], tmp_path: Path
) -> None:
    _, onnx_path, _ = exported
    wav, out = tmp_path / "short.wav", tmp_path / "short.json"
    sf.write(str(wav), make_signal()[:5759], SAMPLE_RATE)  # window 2 ends at sample 5760
    done = run_example(onnx_path, wav, "--json", out)
    assert done.returncode == 0, done.stderr
    assert "no window" in done.stdout
    record = json.loads(out.read_text())
    assert record["indices"] == [] and record["summary"]["windows"] == 0
