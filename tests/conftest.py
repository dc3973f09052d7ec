"""Shared test helpers: where the read-only fixtures live, and how to skip without them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REFERENCE = SHARED / "fixtures" / "reference"
SEED_SYSTEM = SHARED / "fixtures" / "seed_system"


def require_shared(path: Path = REFERENCE) -> Path:
    """Skip the calling test when the fixtures in ../shared are absent (e.g. on a user's machine)."""
    if not path.exists():
        pytest.skip(f"needs the reference fixtures at {path} (only on the project's machines)")
    return path


def reference_manifest(folder: Path = REFERENCE) -> dict:
    """The fixture folder's manifest.json ({} when the fixtures are absent)."""
    if not (folder / "manifest.json").exists():
        return {}
    return json.loads((folder / "manifest.json").read_text())


def relative_error(ours: torch.Tensor | np.ndarray, ref: np.ndarray) -> float:
    """max|ours - ref| / max|ref|, the agreement measure of ../shared/README.md."""
    ours = ours.detach().cpu().numpy() if isinstance(ours, torch.Tensor) else np.asarray(ours)
    assert ours.shape == ref.shape, f"shape {ours.shape} != reference {ref.shape}"
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


def assert_matches_reference(
    module: object, model: object, reference: np.lib.npyio.NpzFile
) -> None:
    """Scene and timestamp embeddings of ``inputs.npz`` through ``module`` equal ``reference``.

    Within ``max|ours - ref| <= 1e-5 max|ref|`` (../shared/README.md), timestamps exactly;
    timestamp arrays are compared where the reference has them (inputs up to 3 s).
    """
    inputs = np.load(REFERENCE / "inputs.npz")
    for key in inputs.files:
        audio = torch.from_numpy(inputs[key])
        scene = module.get_scene_embeddings(audio, model)
        assert scene.dtype == torch.float32
        assert relative_error(scene, reference[f"{key}/scene"]) <= 1e-5, key
        if f"{key}/timestamps" not in reference.files:
            continue
        embeddings, timestamps = module.get_timestamp_embeddings(audio, model)
        error = relative_error(embeddings, reference[f"{key}/timestamp_embeddings"])
        assert error <= 1e-5, key
        np.testing.assert_array_equal(timestamps.numpy(), reference[f"{key}/timestamps"])


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """In-process CLI runs set torch's thread count; give every test the same start."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _isolated_weights_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's weights cache or the network from a test."""
    monkeypatch.setenv("HEAR_MN_HOME", str(tmp_path_factory.mktemp("hear_mn_home")))
    monkeypatch.delenv("HEAR_MN_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("HEAR_MN_QUIET", "1")


from local_http import _http_server, server  # noqa: E402,F401  (shared fixtures)
