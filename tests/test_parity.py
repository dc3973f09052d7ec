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
from conftest import REFERENCE, assert_matches_reference, reference_manifest, require_shared

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
    assert_matches_reference(module, model, np.load(REFERENCE / f"{key}.npz"))


def test_manifest_covers_both_widths_and_the_256_mel_frontend() -> None:
    require_shared()
    checkpoints = {(entry["checkpoint"], entry["n_mels"]) for entry in MANIFEST.values()}
    assert ("mn04_seed1.pt", 128) in checkpoints
    assert ("mn10_seed1.pt", 256) in checkpoints
