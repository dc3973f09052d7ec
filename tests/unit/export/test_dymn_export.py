"""DyMN through ONNX: exported files (hear_mn.export, ``hear-mn export``) reproduce the DyMN
fixtures of ../shared/fixtures/dymn/ with onnxruntime, with and without the frontend, for any
batch size and length; ``backend="onnxruntime"`` reproduces them through the HEAR API.

Every file, the frontend included, is held to the agreement rule of ../shared/README.md
(max|ours - ref| <= 1e-5 max|ref|; measured at most 2.2e-6 without the frontend, 2.8e-6 with
it). The graph with the frontend is one pass over its input: the scene embedding on a whole
clip of up to 10 s, the timestamp embedding on each window cut from the reflect-padded clip.
Export's own check against torch uses DyMN's looser default (hear_mn.export.spec's note).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support.reference import (
    REFERENCE,
    SHARED,
    load_dymn_fixture,
    reference_manifest,
    relative_error,
    require_shared,
)

ort = pytest.importorskip(
    "onnxruntime", reason="onnxruntime is not installed (pip install hear-mn[onnx])"
)
pytest.importorskip("onnx", reason="onnx is not installed (pip install hear-mn[onnx])")

from hear_mn import cli  # noqa: E402
from hear_mn.export import export_onnx, read_metadata, verify_onnx  # noqa: E402
from hear_mn.models.efficientat.graph_specs import DYMN_TOLERANCE  # noqa: E402

# Every DyMN fixture exported (minutes); test_export.py exports a DyMN in the fast tier.
pytestmark = pytest.mark.slow

DYMN = SHARED / "fixtures" / "dymn"
MANIFEST = reference_manifest(DYMN)
INPUTS = REFERENCE / "inputs.npz"
RTOL = 1e-5
ONE_PASS_SAMPLES = 320000  # clips up to 10 s are one pass; longer ones average windows
# Two feature sets of dymn04 (blocks and mel averages; head) and one of dymn10.
CASES = ("dymn04_b5_b11_b13_b15_mel_avgs", "dymn04_clf1_logits", "dymn10_b5_b11_b13_b15_mel_avgs")


def _windows(audio: np.ndarray, size: int, hop: int) -> np.ndarray:
    """(n, samples) -> (n, T, size): the reference's windows of the reflect-padded clip."""
    padded = np.pad(audio, ((0, 0), (size // 2, size // 2)), mode="reflect")
    count = (padded.shape[1] - size) // hop + 1
    return padded[:, np.arange(count)[:, None] * hop + np.arange(size)]


@pytest.mark.parametrize("frontend", [False, True], ids=["log_mels", "audio"])
@pytest.mark.parametrize("name", CASES)
def test_exported_dymn_reproduces_the_fixtures(name: str, frontend: bool, tmp_path) -> None:
    require_shared(DYMN)
    _, model = load_dymn_fixture(name)
    reference = np.load(DYMN / f"{name}.npz")
    path = export_onnx(model, tmp_path / f"{name}.onnx", frontend=frontend)
    meta = read_metadata(path)
    assert meta["family"] == "dymn" and meta["frontend"] == str(frontend).lower()
    assert int(meta["embedding_size"]) == model.scene_embedding_size
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].name == meta["input_name"]
    inputs = np.load(INPUTS)
    for key in inputs.files:
        audio = inputs[key]
        if audio.shape[1] > ONE_PASS_SAMPLES:
            continue
        x = audio if frontend else model.frontend(torch.from_numpy(audio)).numpy()
        expected = reference[f"{key}/scene"]
        for rows in ([0], [0, 1], [1, 0, 1]):  # batch sizes 1, 2 and 3
            (scene,) = session.run(["embeddings"], {meta["input_name"]: x[rows]})
            assert relative_error(scene, expected[rows]) <= RTOL, (key, rows)
        if frontend:
            windows = _windows(audio, model.windows.size, model.windows.hop)
            (flat,) = session.run(["embeddings"], {"audio": windows.reshape(-1, windows.shape[2])})
            ours = flat.reshape(*windows.shape[:2], -1)
            assert relative_error(ours, reference[f"{key}/timestamp_embeddings"]) <= RTOL, key


def test_dymn_through_the_onnxruntime_backend() -> None:
    """Scene embeddings (10 s windows averaged beyond 10 s), timestamp embeddings and
    timestamps of a fixture, the backbone and taps run by ONNX Runtime."""
    require_shared(DYMN)
    name = "dymn04_clf1_logits"
    module, model = load_dymn_fixture(name, backend="onnxruntime")
    assert model.runtime is not None and model.output_settings()["backend"] == "onnxruntime"
    reference = np.load(DYMN / f"{name}.npz")
    inputs = np.load(INPUTS)
    for key in inputs.files:
        audio = torch.from_numpy(inputs[key])
        scene = module.get_scene_embeddings(audio, model)
        assert relative_error(scene, reference[f"{key}/scene"]) <= RTOL, key
        if f"{key}/timestamps" not in reference.files:
            continue
        embeddings, timestamps = module.get_timestamp_embeddings(audio, model)
        error = relative_error(embeddings, reference[f"{key}/timestamp_embeddings"])
        assert error <= RTOL, key
        np.testing.assert_array_equal(timestamps.numpy(), reference[f"{key}/timestamps"])


def test_cli_exports_a_dymn(tmp_path, capsys) -> None:
    """``hear-mn export`` of a DyMN configuration with other weights and features."""
    require_shared(DYMN)
    weights = str(DYMN / "dymn04_seed1.pt")
    out = tmp_path / "dymn.onnx"
    argv = ["export", "dymn04_all_b_mel_avgs", "--weights", weights, "--features", "clf1_logits"]
    assert cli.main([*argv, "--no-frontend", "--out", str(out), "-q"]) == 0, capsys.readouterr()
    meta = read_metadata(out)
    assert meta["model"] == "dymn04_all_b_mel_avgs" and meta["family"] == "dymn"
    assert meta["features"] == "clf1,logits" and meta["input_name"] == "log_mels"
    _, model = load_dymn_fixture("dymn04_clf1_logits")
    audio = torch.from_numpy(np.load(INPUTS)["len1.07"])
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (scene,) = session.run(["embeddings"], {"log_mels": model.frontend(audio).numpy()})
    expected = np.load(DYMN / "dymn04_clf1_logits.npz")["len1.07/scene"]
    assert relative_error(scene, expected) <= RTOL
    assert verify_onnx(model, out) <= DYMN_TOLERANCE  # on short inputs (see its note)
