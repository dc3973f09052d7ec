"""ONNX export (hear_mn.export, ``hear-mn export``): exported files reproduce the reference
fixtures when run with onnxruntime, with and without the frontend; verification refuses a
graph that disagrees; files are written atomically; a process without torch runs them.

Parity uses the agreement rule of ../shared/README.md (max|ours - ref| <= 1e-5 max|ref|) for
every file, the frontend included. The graph with the frontend is one pass over its input,
so on a whole clip of up to 10 s it gives the scene embedding, and on each timestamp window
(cut from the reflect-padded clip as the reference does) the timestamp embedding.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from support.reference import (
    AUDIOMLP,
    DATA,
    MN04_WEIGHTS,
    REFERENCE,
    SEED_SYSTEM,
    reference_manifest,
    reference_module,
    relative_error,
    require_shared,
)

ort = pytest.importorskip(
    "onnxruntime", reason="onnxruntime is not installed (pip install hear-mn[onnx])"
)
pytest.importorskip("onnx", reason="onnx is not installed (pip install hear-mn[onnx])")

import hear_mn.kwmlp  # noqa: E402
from hear_mn import cli  # noqa: E402
from hear_mn.export import (  # noqa: E402
    OnnxVerificationError,
    export_onnx,
    onnx_bytes,
    read_metadata,
    verify_onnx,
)
from hear_mn.hub.errors import FileAccessError  # noqa: E402
from hear_mn.models.efficientat import mobilenet_graph  # noqa: E402
from hear_mn.registry import create_model  # noqa: E402

RTOL = 1e-5
SCENE_ONE_PASS = 320000  # samples: clips up to 10 s are one pass (MobileNetEmbedder)
# (fixture folder, kind, name): the subset in tests/data runs in every clone.
SUBSET_CASES = [
    (DATA / "seed_system", "seed_system", "mn01_all_b_mel_avgs"),
    (DATA / "seed_system", "seed_system", "mn01_all_b_avg_max_time_pool"),
]
SHARED_CASES = [
    (REFERENCE, "reference", "mn04_e1_l"),
    (REFERENCE, "reference", "mn04_clf_all_se_mels"),
    (SEED_SYSTEM, "seed_system", "mn04_all_b_mel_avgs"),
    (REFERENCE, "reference", "mn10_mels256_e1_l"),  # 256 mel bands
    (SEED_SYSTEM, "seed_system", "mn10_all_b_mel_avgs_fc"),  # fully convolutional head
    (SEED_SYSTEM, "seed_system", "mn10_all_b_mel_avgs_hop5"),  # STFT hop 5 ms
]


def _fixture_model(folder: Path, kind: str, name: str) -> tuple[object, np.lib.npyio.NpzFile]:
    """A fixture's model (its checkpoint through its HEAR module) and reference arrays."""
    entry = reference_manifest(folder)[name]
    if kind == "reference":
        module = importlib.import_module(reference_module(entry))
        model = module.load_model(str(folder / entry["checkpoint"]), features=entry["features"])
    else:
        weights = folder / entry["weights"]
        if not weights.exists():
            weights = folder.parent / "reference" / entry["weights"]
        model = importlib.import_module(f"hear_mn.{name}").load_model(str(weights))
    assert model.scene_embedding_size == entry["embedding_size"]
    return model, np.load(folder / f"{name}.npz")


def _timestamp_windows(audio: np.ndarray, size: int, hop: int) -> np.ndarray:
    """(n, samples) -> (n, T, size): the reference's windows of the reflect-padded clip."""
    padded = np.pad(audio, ((0, 0), (size // 2, size // 2)), mode="reflect")
    count = (padded.shape[1] - size) // hop + 1
    return padded[:, np.arange(count)[:, None] * hop + np.arange(size)]


def _assert_parity(model, reference, inputs: Path, path: Path, frontend: bool) -> None:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = read_metadata(path)
    assert meta["frontend"] == str(frontend).lower()
    assert meta["input_name"] == session.get_inputs()[0].name
    assert int(meta["embedding_size"]) == model.scene_embedding_size
    audio_inputs = np.load(inputs)
    for key in audio_inputs.files:
        audio = audio_inputs[key]
        if audio.shape[1] > SCENE_ONE_PASS:
            continue  # longer clips average 10 s windows: many passes of this graph
        x = audio if frontend else model.frontend(torch.from_numpy(audio)).numpy()
        (scene,) = session.run(["embeddings"], {meta["input_name"]: x})
        assert relative_error(scene, reference[f"{key}/scene"]) <= RTOL, key
        if frontend and f"{key}/timestamps" in reference.files:
            windows = _timestamp_windows(audio, model.windows.size, model.windows.hop)
            (flat,) = session.run(
                ["embeddings"], {"audio": windows.reshape(-1, model.windows.size)}
            )
            ours = flat.reshape(*windows.shape[:2], -1)
            assert relative_error(ours, reference[f"{key}/timestamp_embeddings"]) <= RTOL, key


def _check_case(folder: Path, kind: str, name: str, frontend: bool, tmp_path: Path) -> None:
    model, reference = _fixture_model(folder, kind, name)
    path = export_onnx(model, tmp_path / f"{name}.onnx", frontend=frontend)
    _assert_parity(model, reference, folder.parent / "reference" / "inputs.npz", path, frontend)


@pytest.mark.parametrize("frontend", [True, False], ids=["audio", "log_mels"])
@pytest.mark.parametrize("case", SUBSET_CASES, ids=[case[2] for case in SUBSET_CASES])
def test_exported_subset_fixtures(case, frontend: bool, tmp_path) -> None:
    _check_case(*case, frontend, tmp_path)


@pytest.mark.slow  # every ../shared fixture exported twice; the subset's stay fast
@pytest.mark.parametrize("frontend", [True, False], ids=["audio", "log_mels"])
@pytest.mark.parametrize("case", SHARED_CASES, ids=[case[2] for case in SHARED_CASES])
def test_exported_shared_fixtures(case, frontend: bool, tmp_path) -> None:
    require_shared(case[0])
    _check_case(*case, frontend, tmp_path)


def _stitched_timestamps(frames: np.ndarray, n_sounds: int, n_samples: int) -> np.ndarray:
    """Encoder frames (n_sounds * chunks, 98, D) -> timestamp embeddings, as AudioMLPModel."""
    chunks = np.concatenate([frames[:, :1], frames, frames[:, -1:]], axis=1)
    stitched = chunks.reshape(n_sounds, -1, frames.shape[-1])[:, 1:-1]
    return stitched[:, : max(1, n_samples // 160)]


@pytest.mark.parametrize("name", ["kwmlp", "audiomae"])
def test_exported_audiomlp_matches_the_reference(name: str, tmp_path) -> None:
    if name == "kwmlp":  # the shipped checkpoint and the subset's reference: every clone
        model, folder = hear_mn.kwmlp.load_model(), DATA / "audiomlp"
    else:
        folder = require_shared(AUDIOMLP)
        model = importlib.import_module("hear_mn.audiomae").load_model(str(folder / "audiomae.pth"))
    reference = np.load(folder / f"{name}_ref.npz")
    inputs = np.load(folder / "audiomlp_inputs.npz")
    whole = ort.InferenceSession(onnx_bytes(model))
    encoder_only = ort.InferenceSession(onnx_bytes(model, frontend=False))
    for key in inputs.files:
        audio = inputs[key]
        (scene,) = whole.run(["embeddings"], {"audio": audio})
        assert relative_error(scene, reference[f"{key}/scene"]) <= RTOL, key
        padded = torch.nn.functional.pad(torch.from_numpy(audio), (80, 240))
        padded = torch.nn.functional.pad(padded, (0, -padded.shape[1] % 16000))
        features = model.frontend(padded.reshape(-1, 16000)).numpy()
        (frames,) = encoder_only.run(["embeddings"], {"features": features})
        timestamps = _stitched_timestamps(frames, *audio.shape)
        assert relative_error(timestamps, reference[f"{key}/timestamp_embeddings"]) <= RTOL, key


# --------------------------------------------------------------------------- API behaviour


@pytest.fixture(scope="module")
def small_model():
    """A random mn01 with every kind of tap (mean mels, pooled blocks, SE, head)."""
    torch.manual_seed(0)
    return create_model("mn01_all_b_mel_avgs", pretrained=False, features="mel_avgs_clf2_se13_b5")


def test_short_and_odd_lengths_match_the_torch_model(small_model) -> None:
    """Down to one sample (the library's mirror rule where reflect padding would refuse).

    Below one STFT frame (513 samples) the mean log-mel (``mel_avgs``) is the log-mel of one
    heavily mirrored frame, whose float32 rounding is not averaged out: there torch's FFT and
    the graph's DFT each differ from a float64 computation by up to 5e-5, so those columns
    are held to the export tolerance (1e-4); the network's taps stay within 1e-5.
    """
    session = ort.InferenceSession(onnx_bytes(small_model))
    n_mels = small_model.frontend.n_mels  # mel_avgs come first in the embedding
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 319, 513, 514, 515, 1024, 5120):
        audio = (0.3 * rng.standard_normal((2, n))).astype(np.float32)
        (ours,) = session.run(["embeddings"], {"audio": audio})
        expected = small_model.scene_embeddings(torch.from_numpy(audio))
        assert relative_error(ours[:, n_mels:], expected[:, n_mels:]) <= RTOL, n
        assert relative_error(ours, expected) <= (RTOL if n >= 513 else 1e-4), n


def test_verification_refuses_a_sabotaged_graph(small_model, tmp_path, monkeypatch) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(b"an older file")
    forward = mobilenet_graph.MobileNetGraph.forward
    monkeypatch.setattr(
        mobilenet_graph.MobileNetGraph, "forward", lambda self, x: forward(self, x) * 1.001
    )
    with pytest.raises(OnnxVerificationError, match="disagrees with the torch model"):
        export_onnx(small_model, target)
    assert target.read_bytes() == b"an older file"  # untouched
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temporary file left
    monkeypatch.undo()
    with pytest.raises(OnnxVerificationError, match="above the tolerance 1e-12"):
        export_onnx(small_model, tmp_path / "new.onnx", tolerance=1e-12)
    assert not (tmp_path / "new.onnx").exists()


def test_verify_onnx_measures_and_catches_changed_weights(tmp_path) -> None:
    torch.manual_seed(1)
    model = create_model("mn01_all_b_mel_avgs", pretrained=False)
    path = export_onnx(model, tmp_path / "m.onnx", frontend=False)
    assert verify_onnx(model, path) <= RTOL
    with torch.no_grad():
        model.backbone.features[1].block[0][0].weight.mul_(1.5)
    model.refresh_inference()
    with pytest.raises(OnnxVerificationError):
        verify_onnx(model, path)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)], ids=["022", "027"])
def test_files_are_written_atomically_with_the_umask(small_model, tmp_path, umask, mode) -> None:
    previous = os.umask(umask)
    try:
        path = export_onnx(small_model, tmp_path / "sub" / "m.onnx", verify=False)
    finally:
        os.umask(previous)
    assert oct(path.stat().st_mode & 0o777) == oct(mode)
    assert [p.name for p in path.parent.iterdir()] == ["m.onnx"]


def test_metadata_describes_the_file(small_model) -> None:
    meta = read_metadata(onnx_bytes(small_model, frontend=False))
    assert meta["model"] == "mn01_all_b_mel_avgs" and meta["frontend"] == "false"
    assert meta["input_name"] == "log_mels" and meta["output_name"] == "embeddings"
    assert meta["features"] == "mel_avgs,clf2,se13,b5" and meta["pooling"] == "avg_ch_pool"
    sizes = json.loads(meta["feature_sizes"])
    assert len(sizes) == 4 and sum(sizes) == int(meta["embedding_size"])
    assert (meta["sample_rate"], meta["n_mels"], meta["stft_hop_samples"]) == (
        "32000",
        "128",
        "320",
    )
    # Issue 22, item 10: the keys say their unit; milliseconds as load_model takes them.
    assert (meta["timestamp_window_ms"], meta["timestamp_hop_ms"]) == ("160.0", "50.0")
    assert (meta["timestamp_window_samples"], meta["timestamp_hop_samples"]) == ("5120", "1600")
    assert not {"timestamp_window", "timestamp_hop", "stft_hop"} & set(meta)
    assert meta["weights_file"] == ""  # random weights: no file
    assert meta["hear_mn_version"] == hear_mn.__version__


def test_bad_arguments_give_clear_errors(small_model, tmp_path) -> None:
    with pytest.raises(TypeError, match="must be an EmbeddingModel"):
        onnx_bytes(torch.nn.Linear(2, 2))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="frontend must be True or False"):
        onnx_bytes(small_model, frontend="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="opset"):
        onnx_bytes(small_model, opset=9)
    with pytest.raises(ValueError, match="tolerance"):
        export_onnx(small_model, tmp_path / "m.onnx", tolerance=-1.0)
    (tmp_path / "a_file").write_text("")
    with pytest.raises(FileAccessError, match="cannot write"):
        export_onnx(small_model, tmp_path / "a_file" / "m.onnx")
    with pytest.raises(FileAccessError, match="is a directory"):
        export_onnx(small_model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_missing_onnxruntime_says_how_to_install(small_model, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r"pip install hear-mn\[onnx\]"):
        export_onnx(small_model, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


# --------------------------------------------------------------------------- apps and CLI


@pytest.mark.slow  # a fresh interpreter that imports onnxruntime
def test_a_process_without_torch_runs_the_file(tmp_path) -> None:
    require_shared()
    model, reference = _fixture_model(REFERENCE, "reference", "mn04_e1_l")
    path = export_onnx(model, tmp_path / "mn04.onnx")
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None  # an app: onnxruntime and numpy only
        import numpy as np
        import onnxruntime as ort
        session = ort.InferenceSession({str(path)!r}, providers=["CPUExecutionProvider"])
        meta = session.get_modelmeta().custom_metadata_map
        audio = np.load({str(DATA / "reference" / "inputs.npz")!r})["len1.07"]
        (out,) = session.run([meta["output_name"]], {{meta["input_name"]: audio}})
        np.save({str(tmp_path / "out.npy")!r}, out)
        try:
            import torch
        except ImportError:
            print("no torch")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "no torch"
    assert relative_error(np.load(tmp_path / "out.npy"), reference["len1.07/scene"]) <= RTOL


def test_cli_export_writes_a_verified_file(tmp_path, capsys) -> None:
    weights = str(require_shared(MN04_WEIGHTS))
    out = tmp_path / "model.onnx"
    assert cli.main(["export", "mn04_e1_l", "--weights", weights, "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    meta = read_metadata(out)
    assert (meta["model"], meta["features"], meta["embedding_size"]) == ("mn04_e1_l", "l,e1", "911")
    assert meta["weights_file"] == "mn04_seed1.pt" and meta["input_name"] == "audio"
    other = tmp_path / "backbone.onnx"
    argv = ["export", "mn04_e1_l", "--weights", weights, "--features", "clf_all_se_mels"]
    assert cli.main([*argv, "--no-frontend", "--out", str(other), "-q", "--threads", "1"]) == 0
    assert capsys.readouterr().out == ""
    meta = read_metadata(other)
    assert (meta["input_name"], meta["embedding_size"]) == ("log_mels", "1064")


def test_cli_export_refuses_bad_names_and_paths(tmp_path, capsys) -> None:
    assert cli.main(["export", "mn99_nothing", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert cli.main(["export", "mn04_e1_l", "--features", "e7", "--out", "x.onnx"]) == 2
    assert cli.main(["export", "mn04_e1_l"]) == 2  # --out is required
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["mn01_all_b_mel_avgs", "kwmlp", "dymn04_all_b_mel_avgs"])
def test_the_output_axes_have_names_that_say_what_they_are(name: str) -> None:
    """Issue 22, item 10: no exporter-made axis name ('Reshapeembeddings_dim_1'): the batch
    axis is named, every fixed size is a number."""
    onnx = pytest.importorskip("onnx")
    model = create_model(name, pretrained=name == "kwmlp")
    graph = onnx.load_from_string(onnx_bytes(model, frontend=True)).graph
    dims = graph.output[0].type.tensor_type.shape.dim
    assert [(d.dim_param, d.dim_value) for d in dims] == [
        ("batch", 0),
        ("", model.scene_embedding_size),
    ]
