"""Where the reference fixtures live, how to skip (or, in CI, fail) without them, the
agreement measure and the exactness checks every parity test uses.

``tests/data/`` holds a small subset of ../shared's fixtures (see its README.md), checked in
every clone by tests/parity/test_parity_subset.py; the full set in ../shared is checked where
it exists.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
import torch

from support import ROOT

SHARED = ROOT.parent / "shared"
REFERENCE = SHARED / "fixtures" / "reference"
SEED_SYSTEM = SHARED / "fixtures" / "seed_system"
AUDIOMLP = SHARED / "fixtures" / "audiomlp"
MN04_WEIGHTS = REFERENCE / "mn04_seed1.pt"  # random mn04 weights (4 MB), read in place
DATA = ROOT / "tests" / "data"  # the subset shipped with the repository
DYMN = SHARED / "fixtures" / "dymn"


def in_ci() -> bool:
    """Whether the environment variable CI is set to a true value (true, 1, yes)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def require_shared(path: Path = REFERENCE) -> Path:
    """``path`` when it exists. Without it the calling test skips (a user's clone has no
    ../shared), except in CI (``CI=true``), where the full fixture set must be there: it fails.
    """
    if not path.exists():
        message = f"needs the reference fixtures at {path} (only on the project's machines)"
        if in_ci():
            pytest.fail(f"{message}; CI must run the full set, so a missing ../shared fails")
        pytest.skip(message)
    return path


def reference_manifest(folder: Path = REFERENCE) -> dict:
    """The fixture folder's manifest.json ({} when the fixtures are absent)."""
    if not (folder / "manifest.json").exists():
        return {}
    return json.loads((folder / "manifest.json").read_text())


def _as_float64(array: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    return np.asarray(array, dtype=np.float64)


def relative_error(ours: torch.Tensor | np.ndarray, ref: torch.Tensor | np.ndarray) -> float:
    """max|ours - ref| / max|ref| (in float64), the agreement measure of ../shared/README.md.

    Usage: ``assert relative_error(ours, reference) <= 1e-5``; shapes must be equal.
    """
    ours, ref = _as_float64(ours), _as_float64(ref)
    assert ours.shape == ref.shape, f"shape {ours.shape} != reference {ref.shape}"
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


def randomize_batchnorm(module: torch.nn.Module) -> torch.nn.Module:
    """Random BatchNorm statistics (running mean ~ N(0, 0.1), running variance ~ U(0.5, 1.5),
    from torch's global generator), so that every layer matters, as in the reference fixtures.
    Returns ``module``."""
    for name, buffer in module.named_buffers():
        if name.endswith("running_mean"):
            buffer.normal_(0, 0.1)
        elif name.endswith("running_var"):
            buffer.uniform_(0.5, 1.5)
    return module


def assert_matches_reference(
    module: object,
    model: object,
    reference: np.lib.npyio.NpzFile,
    inputs: Path = REFERENCE / "inputs.npz",
    keys: Iterable[str] = (),
) -> None:
    """Scene and timestamp embeddings of ``inputs`` (``keys`` of it, else all) through
    ``module`` equal ``reference``.

    Within ``max|ours - ref| <= 1e-5 max|ref|`` (../shared/README.md), timestamps exactly;
    timestamp arrays are compared where the reference has them (inputs up to 3 s).
    """
    audio_inputs = np.load(inputs)
    for key in keys or audio_inputs.files:
        audio = torch.from_numpy(audio_inputs[key])
        scene = module.get_scene_embeddings(audio, model)
        assert scene.dtype == torch.float32
        assert relative_error(scene, reference[f"{key}/scene"]) <= 1e-5, key
        if f"{key}/timestamps" not in reference.files:
            continue
        embeddings, timestamps = module.get_timestamp_embeddings(audio, model)
        error = relative_error(embeddings, reference[f"{key}/timestamp_embeddings"])
        assert error <= 1e-5, key
        np.testing.assert_array_equal(timestamps.numpy(), reference[f"{key}/timestamps"])


def reference_module(entry: dict) -> str:
    """The HEAR module of a reference/manifest.json entry."""
    arch = entry["checkpoint"].split("_")[0]
    return f"hear_mn.{arch}_mels_256_e1_l" if entry["n_mels"] == 256 else f"hear_mn.{arch}_e1_l"


def assert_reference_fixture(folder: Path, key: str, entry: dict, **options: object) -> None:
    """A reference/ fixture (``entry`` of ``folder``'s manifest): its checkpoint loaded through
    the HEAR module with the entry's features (and ``options``, e.g. a backend) reproduces
    ``folder/<key>.npz``."""
    module = importlib.import_module(reference_module(entry))
    path = str(folder / entry["checkpoint"])
    model = module.load_model(path, features=entry["features"], **options)
    assert model.scene_embedding_size == entry["embedding_size"]
    inputs = folder.parent / "reference" / "inputs.npz"
    assert_matches_reference(module, model, np.load(folder / f"{key}.npz"), inputs)


def assert_seed_system_fixture(folder: Path, name: str, entry: dict, **options: object) -> None:
    """A seed_system/ fixture: module ``name`` with its default options and the entry's
    weights (in ``folder``, else in ../reference/) is configured as the original and
    reproduces ``folder/<name>.npz``."""
    module = importlib.import_module(f"hear_mn.{name}")
    weights = folder / entry["weights"]
    if not weights.exists():
        weights = folder.parent / "reference" / entry["weights"]
    model = module.load_model(str(weights), **options)
    assert model.scene_embedding_size == model.timestamp_embedding_size == entry["embedding_size"]
    assert model.frontend.n_mels == entry["frontend"]["n_mels"]
    assert model.frontend.hop_length == entry["frontend"]["hopsize"]
    assert model.windows.size == entry["timestamp_window_samples"]
    assert model.windows.hop == entry["timestamp_hop_samples"]
    assert model.pooling == entry["feature_pooling"]
    inputs = folder.parent / "reference" / "inputs.npz"
    assert_matches_reference(module, model, np.load(folder / f"{name}.npz"), inputs)


def load_dymn_fixture(name: str, **options: object) -> tuple[object, object]:
    """A DyMN fixture's HEAR module and model (../shared/fixtures/dymn/): its weights and mode
    through the module of its architecture."""
    entry = reference_manifest(DYMN)[name]
    arch = entry["released_file"].split("_")[0]
    module = importlib.import_module(f"hear_mn.{arch}_all_b_mel_avgs")
    model = module.load_model(
        str(DYMN / entry["weights"]), mode=entry["mode"], all_blocks=entry["all_blocks"], **options
    )
    return module, model
