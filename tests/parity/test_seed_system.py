"""The EfficientAT_HEAR package's 76 modules (newer wrapper), exact and complete.

* Parity: every fixture of ../shared/fixtures/seed_system/ was made by the original module
  with a random checkpoint in the released format; we load that checkpoint through our module
  of the same name and compare scene embeddings, timestamp embeddings and timestamps.
* Completeness: every module listed in ../shared/notes/SEED_SYSTEM.md exists here with the
  original's checkpoint, features, pooling, head, frontend and timestamp window, loads with
  random weights and outputs the size it declares.
"""

from __future__ import annotations

import importlib

import pytest
import torch
from support.reference import (
    SEED_SYSTEM,
    SHARED,
    assert_seed_system_fixture,
    reference_manifest,
    require_shared,
)

from hear_mn.catalog import EFFICIENTAT_HEAR, NAMED
from hear_mn.models.efficientat.feature_taps import parse_features
from hear_mn.registry import get_config

# All 76 modules against ../shared and the validator: slow; the subset's stay in the fast tier.
pytestmark = pytest.mark.slow

MANIFEST = reference_manifest(SEED_SYSTEM)
SEED_SYSTEM_NOTE = SHARED / "notes" / "SEED_SYSTEM.md"
# Where the original module declares a size its output does not have (README: Models).
DECLARED_SIZE_CORRECTIONS = {"mn40_clf2": (2016, 5120)}


@pytest.mark.parametrize("name", sorted(MANIFEST) or ["manifest-missing"])
def test_seed_system_fixture(name: str) -> None:
    require_shared(SEED_SYSTEM)
    assert_seed_system_fixture(SEED_SYSTEM, name, MANIFEST[name])


def test_fixtures_cover_every_kind_of_variant() -> None:
    require_shared(SEED_SYSTEM)
    defaults = [entry["load_model_defaults"] for entry in MANIFEST.values()]
    assert {entry["feature_pooling"] for entry in MANIFEST.values()} >= {
        "avg_ch_pool",
        "max_ch_pool",
        "add_avg_max_ch_pool",
        "cat_avg_max_ch_pool",
        "avg_time_pool",
        "avg_max_time_pool",
    }
    assert {d["model_name"] for d in defaults} >= {"mn01_as", "mn10_as_fc", "mn10_as_hop_5"}
    assert any(d.get("all_blocks") for d in defaults)


def _note_table() -> list[dict[str, str]]:
    """The module table of SEED_SYSTEM.md, one dict per row, keyed by its header (no remarks)."""
    lines = [line for line in SEED_SYSTEM_NOTE.read_text().splitlines() if line.startswith("|")]
    header = [cell.split(" (")[0].strip() for cell in lines[0].strip("|").split("|")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    return [dict(zip(header, row, strict=True)) for row in rows]


def test_every_module_of_the_note_is_in_the_catalog_as_the_original_defines_it() -> None:
    require_shared(SEED_SYSTEM_NOTE)
    table = _note_table()
    assert len(table) == 76
    ours = {name for name, row in NAMED.items() if row.group == EFFICIENTAT_HEAR}
    assert ours == {row["module"] for row in table}
    for row in table:
        config = get_config(row["module"])
        checkpoint = config.checkpoint
        assert checkpoint.name == row["checkpoint"], row["module"]
        assert set(config.features) == set(parse_features(row["mode"].split()))
        assert config.pooling == row["pooling"]
        assert checkpoint.head == {"mlp": "mlp", "fc": "fully_convolutional"}[row["head"]]
        assert checkpoint.n_mels == int(row["mels"])
        assert checkpoint.hop_length == int(row["STFT hop"])
        window = config.timestamp_window or 160
        assert window == int(row["timestamp window"]), row["module"]
        size, declared = config.embedding_sizes[0], int(row["declared size"])
        assert (declared, size) == DECLARED_SIZE_CORRECTIONS.get(row["module"], (size, size))


@pytest.mark.parametrize(
    "name", [name for name, row in NAMED.items() if row.group == EFFICIENTAT_HEAR]
)
def test_module_loads_and_outputs_the_size_it_declares(name: str) -> None:
    module = importlib.import_module(f"hear_mn.{name}")
    model = module.load_model(pretrained=False)
    audio = 0.1 * torch.randn(2, 6000, generator=torch.Generator().manual_seed(0))
    scene = module.get_scene_embeddings(audio, model)
    embeddings, timestamps = module.get_timestamp_embeddings(audio, model)
    assert scene.shape == (2, model.scene_embedding_size)
    assert embeddings.shape == (2, 4, model.timestamp_embedding_size)
    assert timestamps[0].tolist() == [0.0, 50.0, 100.0, 150.0]
    assert torch.isfinite(scene).all() and torch.isfinite(embeddings).all()
    assert model.scene_embedding_size == get_config(name).embedding_sizes[0]


@pytest.mark.parametrize(
    "name", [name for name, row in NAMED.items() if row.group == EFFICIENTAT_HEAR]
)
def test_module_passes_the_hear_validator_checks_with_random_weights(name: str, capsys) -> None:
    """hear-validator's checks (``hear-mn validate``, no TensorFlow) on every module."""
    from hear_mn import cli

    code = cli.main(["validate", f"hear_mn.{name}", "--random-weights"])
    output = capsys.readouterr().out
    assert code == 0, output
    assert "validate passed: 9 passed, 0 failed" in output
