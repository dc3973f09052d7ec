"""Exactness: every reference fixture reproduced through the HEAR modules.

Each entry of ../shared/fixtures/reference/manifest.json was produced by the original
EfficientAT_HEAR code with a random checkpoint. We load that checkpoint through our HEAR
module with the entry's features and compare scene embeddings, timestamp embeddings and
timestamps against the stored arrays.
"""

from __future__ import annotations

import pytest
from support.reference import (
    REFERENCE,
    assert_reference_fixture,
    reference_manifest,
    require_shared,
)

# Every fixture of ../shared: slow; tests/parity/test_parity_subset.py checks the subset fast.
pytestmark = pytest.mark.slow

MANIFEST = reference_manifest()


@pytest.mark.parametrize("key", sorted(MANIFEST) or ["manifest-missing"])
def test_reference_fixture(key: str) -> None:
    require_shared()
    assert_reference_fixture(REFERENCE, key, MANIFEST[key])


def test_manifest_covers_both_widths_and_the_256_mel_frontend() -> None:
    require_shared()
    checkpoints = {(entry["checkpoint"], entry["n_mels"]) for entry in MANIFEST.values()}
    assert ("mn04_seed1.pt", 128) in checkpoints
    assert ("mn10_seed1.pt", 256) in checkpoints
