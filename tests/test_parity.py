"""Exactness: every reference fixture reproduced through the HEAR modules.

Each entry of ../shared/fixtures/reference/manifest.json was produced by the original
EfficientAT_HEAR code with a random checkpoint. We load that checkpoint through our HEAR
module with the entry's features and compare scene embeddings, timestamp embeddings and
timestamps against the stored arrays.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from conftest import REFERENCE, reference_manifest, relative_error, require_shared

TOLERANCE = 1e-5
MANIFEST = reference_manifest()


def _module_for(entry: dict) -> str:
    arch = entry["checkpoint"].split("_")[0]
    return f"hear_mn.{arch}_mels_256_e1_l" if entry["n_mels"] == 256 else f"hear_mn.{arch}_e1_l"


@pytest.mark.parametrize("key", sorted(MANIFEST) or ["manifest-missing"])
def test_reference_fixture(key: str) -> None:
    require_shared()
    entry = MANIFEST[key]
    module = importlib.import_module(_module_for(entry))
    model = module.load_model(str(REFERENCE / entry["checkpoint"]), features=entry["features"])
    assert model.scene_embedding_size == entry["embedding_size"]
    reference = np.load(REFERENCE / f"{key}.npz")
    inputs = np.load(REFERENCE / "inputs.npz")
    for name in inputs.files:
        audio = torch.from_numpy(inputs[name])
        scene = module.get_scene_embeddings(audio, model)
        assert scene.dtype == torch.float32
        assert relative_error(scene, reference[f"{name}/scene"]) <= TOLERANCE, name
        if f"{name}/timestamps" not in reference.files:
            continue
        embeddings, timestamps = module.get_timestamp_embeddings(audio, model)
        assert relative_error(embeddings, reference[f"{name}/timestamp_embeddings"]) <= TOLERANCE
        np.testing.assert_array_equal(timestamps.numpy(), reference[f"{name}/timestamps"])


def test_manifest_covers_both_widths_and_the_256_mel_frontend() -> None:
    require_shared()
    checkpoints = {(entry["checkpoint"], entry["n_mels"]) for entry in MANIFEST.values()}
    assert ("mn04_seed1.pt", 128) in checkpoints
    assert ("mn10_seed1.pt", 256) in checkpoints
