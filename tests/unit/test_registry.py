"""The registry: names, sizes, parameter counts and state-dict layouts of every width."""

from __future__ import annotations

import importlib
import importlib.util
import json

import pytest
from support import ROOT
from support.reference import require_shared

from hear_mn.models.efficientat.mobilenet_family import WIDTHS
from hear_mn.models.efficientat.mobilenet_network import MobileNet
from hear_mn.registry import (
    CHECKPOINTS,
    NAMED_CONFIGS,
    PAPER_CONFIGS,
    create_model,
    get_config,
)

# Parameter counts stated in ../shared/notes/REFERENCE.md.
REFERENCE_PARAMETERS = {"mn04": 983_599, "mn10": 4_876_831, "mn40": 68_427_303}


def test_embedding_sizes_equal_reference_for_all_36_entries() -> None:
    sizes = json.loads((require_shared() / "embedding_sizes.json").read_text())
    assert len(sizes) == 36
    ours = {name: get_config(name).embedding_sizes[0] for name in sizes}
    assert ours == sizes


@pytest.mark.parametrize("arch", sorted(WIDTHS))
def test_state_dict_layout_of_every_width(arch: str) -> None:
    shapes = json.loads((require_shared() / "state_dict_shapes.json").read_text())[arch]
    model = MobileNet(WIDTHS[arch])
    ours = {key: list(value.shape) for key, value in model.state_dict().items()}
    assert ours == shapes


@pytest.mark.parametrize("arch", sorted(REFERENCE_PARAMETERS))
def test_parameter_counts(arch: str) -> None:
    assert MobileNet(WIDTHS[arch]).num_parameters() == REFERENCE_PARAMETERS[arch]


def test_registry_parameter_counts_are_the_built_models() -> None:
    for name, checkpoint in CHECKPOINTS.items():
        model = get_config(name if checkpoint.family == "audiomlp" else f"{name}_e1").build()
        assert sum(p.numel() for p in model.parameters()) == checkpoint.num_params, name


@pytest.mark.parametrize(
    ("name", "checkpoint", "features", "n_mels"),
    [
        ("mn40_ext_e1_l", "mn40_as_ext", ("l", "e1"), 128),
        ("mn40_as_ext_e1_l_all_se", "mn40_as_ext", ("l", "e1", "all_se"), 128),
        ("mn10_mels_256_e1_l", "mn10_as_mels_256", ("l", "e1"), 256),
        ("mn10_mels256_e1_l", "mn10_as_mels_256", ("l", "e1"), 256),
        ("mn10_as_mels_256_e1_l", "mn10_as_mels_256", ("l", "e1"), 256),
        ("mn04_mels_e1", "mn04_as", ("e1", "mels"), 128),
        ("mn40_ext_clf_all_se_mels", "mn40_as_ext", ("mels", "clf", "all_se"), 128),
        ("mn02_as_block_se", "mn02_as", ("block", "se"), 128),
    ],
)
def test_name_parsing(name: str, checkpoint: str, features: tuple, n_mels: int) -> None:
    config = get_config(name)
    assert config.checkpoint.name == checkpoint
    assert config.features == features
    assert config.checkpoint.n_mels == n_mels


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("mn99_e1", "unknown model"),
        ("mn04", "names no embedding features"),
        ("mn04_ext_e1", "no released checkpoint 'mn04_as_ext'"),
        ("mn04_e2", "unknown embedding feature 'e2'"),
        ("mn04_e1_e1", "appears twice"),
        ("mn04_se_all_se", "part of 'all_se'"),
        ("", "non-empty"),
    ],
)
def test_bad_names_are_explained(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_config(name)


def test_features_override_keeps_checkpoint() -> None:
    config = get_config("mn40_ext_e1_l", features="e1_l_all_se")
    assert config.checkpoint.name == "mn40_as_ext"
    assert config.embedding_sizes == (8423, 8423)


def test_every_checkpoint_has_a_release_url_and_file_name() -> None:
    for checkpoint in CHECKPOINTS.values():
        assert checkpoint.weights.url.endswith("/" + checkpoint.weights.file_name)
        assert checkpoint.weights.url.startswith("https://")


@pytest.mark.parametrize("name", NAMED_CONFIGS)
def test_every_named_configuration_has_a_hear_module(name: str) -> None:
    module = importlib.import_module(f"hear_mn.{name}")
    for attribute in ("load_model", "get_scene_embeddings", "get_timestamp_embeddings"):
        assert callable(getattr(module, attribute))
    if name in PAPER_CONFIGS:
        old = importlib.import_module(f"hear_mn.old_configs.{name}")
        assert old.load_model is module.load_model


@pytest.mark.parametrize("name", ["mn04_e1_l", "mn10_mels_256_e1_l", "mn40_ext_e1_l_all_se"])
def test_random_init_builds_without_weights(name: str) -> None:
    model = importlib.import_module(f"hear_mn.{name}").load_model(pretrained=False)
    size = get_config(name).embedding_sizes[0]
    assert model.scene_embedding_size == model.timestamp_embedding_size == size
    assert model.sample_rate == 32000
    assert not model.training


def test_create_model_rejects_unknown_device() -> None:
    with pytest.raises(ValueError, match="unknown device"):
        create_model("mn04_e1_l", pretrained=False, device="tpu0")


def _generator():
    path = ROOT / "scripts" / "generate_modules.py"
    spec = importlib.util.spec_from_file_location("generate_modules", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hear_modules_are_generated_from_the_catalog() -> None:
    generator = _generator()
    expected = generator.expected_files()
    assert len(expected) == len(NAMED_CONFIGS) + len(PAPER_CONFIGS) == 99 + 14
    stale = [p.name for p, text in expected.items() if not p.exists() or p.read_text() != text]
    assert not stale, f"run python scripts/generate_modules.py: {stale[:5]} are out of date"
    assert not generator.stale_files(expected), "run python scripts/generate_modules.py"


def test_complexity_table_is_what_the_counter_counts() -> None:
    """hear-mn list reads this table; every row is recounted by the hook counter here."""
    path = ROOT / "scripts" / "update_complexity_table.py"
    spec = importlib.util.spec_from_file_location("update_complexity_table", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.table_source() == script.TABLE.read_text(), (
        "run python scripts/update_complexity_table.py"
    )
    from hear_mn.complexity_table import COMPLEXITY_10S

    assert list(COMPLEXITY_10S) == list(NAMED_CONFIGS)
