"""Shared test helpers: where the fixtures live, how to skip (or, in CI, fail) without them,
the agreement measure and the exactness checks every parity test uses.

``tests/data/`` holds a small subset of ../shared's fixtures (see its README.md), checked in
every clone by test_parity_subset.py; the full set in ../shared is checked where it exists.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REFERENCE = SHARED / "fixtures" / "reference"
SEED_SYSTEM = SHARED / "fixtures" / "seed_system"
AUDIOMLP = SHARED / "fixtures" / "audiomlp"
MN04_WEIGHTS = REFERENCE / "mn04_seed1.pt"  # random mn04 weights (4 MB), read in place
DATA = Path(__file__).resolve().parent / "data"  # the subset shipped with the repository


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


def build_wheel(folder: Path, leave_out: tuple[str, ...] = ()) -> Path:
    """The wheel ``pip wheel`` builds from a copy of the project in ``folder`` (offline, no
    build isolation), the package's files matching ``leave_out`` not copied."""
    project = Path(__file__).resolve().parents[1]
    source = folder / "source"
    source.mkdir()
    for name in ("setup.py", "setup.cfg", "README.md", "LICENSE"):
        if (project / name).exists():
            shutil.copy(project / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", *leave_out)
    shutil.copytree(project / "hear_mn", source / "hear_mn", ignore=ignore)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation"]
        + ["--no-index", "-q", "-w", str(folder / "dist")],
        cwd=source,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, f"building the wheel failed:\n{build.stdout}{build.stderr}"
    (wheel,) = (folder / "dist").glob("hear_mn-*.whl")
    return wheel


def run_cli(capsys: pytest.CaptureFixture, *argv: object) -> tuple[int, str, str]:
    """hear-mn in this process: (exit code, stdout, stderr)."""
    from hear_mn import cli

    return (cli.main([str(a) for a in argv]), *capsys.readouterr())


def save_random_checkpoint(path: Path, config: str, seed: int = 0) -> Path:
    """A randomly initialised backbone of ``config`` (seeded by ``seed``) saved at ``path``,
    for runs that must load weights without downloading any."""
    from hear_mn.registry import create_model

    torch.manual_seed(seed)
    torch.save(create_model(config, pretrained=False).backbone.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory) -> Path:
    """A folder holding a random mn04 checkpoint under its release file name (every mn04
    configuration loads it), for ``$HEAR_MN_WEIGHTS_DIR``."""
    from hear_mn.registry import get_config

    folder = tmp_path_factory.mktemp("weights")
    save_random_checkpoint(folder / get_config("mn04_e1_l").weights.file_name, "mn04_e1_l")
    return folder


@pytest.fixture
def weights_env(_isolated_weights_cache, monkeypatch, random_weights) -> Path:
    """``$HEAR_MN_WEIGHTS_DIR`` set to :func:`random_weights`: mn04 loads without a download."""
    monkeypatch.setenv("HEAR_MN_WEIGHTS_DIR", str(random_weights))
    return random_weights


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

# The suite's slowest files (each takes a minute or more on a 2-core machine): the fast tier,
# `python -m pytest -m "not slow"`, leaves them out; the full suite (CI) runs them.
SLOW_FILES = frozenset(
    {
        "test_evaluation_heareval.py",
        "test_hear_tools.py",
        "test_ray_engine.py",
        "test_snippets.py",
        "test_test_tiers.py",
        "test_packaging.py",
        "test_classifier_integration.py",
        "test_benchmarks.py",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the slow files; deselect upstream_bug tests (they watch upstream tools and never
    decide a run) unless ``-m`` names them."""
    for item in items:
        if item.path.name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)
    if "upstream_bug" in (config.option.markexpr or ""):
        return
    watchers = [item for item in items if item.get_closest_marker("upstream_bug")]
    if watchers:
        config.hook.pytest_deselected(items=watchers)
        items[:] = [item for item in items if not item.get_closest_marker("upstream_bug")]
