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


@pytest.fixture(autouse=True)
def _isolated_weights_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's weights cache or the network from a test."""
    monkeypatch.setenv("HEAR_MN_HOME", str(tmp_path_factory.mktemp("hear_mn_home")))
    monkeypatch.delenv("HEAR_MN_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("HEAR_MN_QUIET", "1")


from local_http import _http_server, server  # noqa: E402,F401  (shared fixtures)
