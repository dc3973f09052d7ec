"""Typed configuration end to end: run options validated where they are declared, one
refusal of an unknown option, the original load_model keywords as one table, and every
model's sample rate read from its configuration's checkpoint."""

from __future__ import annotations

import importlib
import re
from dataclasses import replace
from pathlib import Path

import pytest

import hear_mn
from hear_mn.config import CONFIG_OPTIONS
from hear_mn.registry import create_model, get_config

PACKAGE = Path(hear_mn.__file__).parent


def test_run_options_are_validated_where_they_are_declared() -> None:
    from hear_mn.run_options import RunOptions

    assert RunOptions() == RunOptions(device=None, autocast=False, backend="auto")
    with pytest.raises(TypeError, match="autocast must be True or False, got 'no'"):
        RunOptions(autocast="no")
    with pytest.raises(ValueError, match="unknown backend 'tvm'; choose one of auto, torch, onnx"):
        RunOptions(backend="tvm")
    with pytest.raises(ValueError, match="window_batch_size must be a positive int, got 0"):
        RunOptions(window_batch_size=0)
    with pytest.raises(TypeError, match="threads must be a positive int, got 2.5"):
        RunOptions(threads=2.5)
    with pytest.raises(ValueError, match="unknown device 'tpu0'"):
        RunOptions(device="tpu0")


@pytest.mark.parametrize("name", ["mn01_e1_l", "dymn04_e1_l", "kwmlp"])
def test_an_unknown_option_is_refused_in_one_place_with_one_message(name: str) -> None:
    """It used to reach the model's constructor (Python's "unexpected keyword argument")
    from create_model, and get_config refused it with a message of its own."""
    message = "unknown option(s) colour; configuration options: features, "
    for build in (
        lambda: create_model(name, pretrained=False, colour=1),
        lambda: get_config(name, colour=1),
        lambda: get_config(name).with_options(colour=1),
        lambda: importlib.import_module(f"hear_mn.{name}").load_model(pretrained=False, colour=1),
    ):
        with pytest.raises(TypeError, match=re.escape(message)) as error:
            build()
        assert "run options: device, autocast, backend, threads, window_batch_size" in str(
            error.value
        )
    sources = [path.read_text() for path in PACKAGE.rglob("*.py")]
    assert sum(text.count('"unknown option(s)') for text in sources) == 1


def test_the_original_keywords_are_one_table() -> None:
    from hear_mn.hear import ORIGINAL_KEYWORDS

    assert set(ORIGINAL_KEYWORDS) == {
        "mode",
        "model_name",
        "feature_pooling_fn",
        "head_type",
        "all_blocks",
    }
    for keyword in ORIGINAL_KEYWORDS.values():
        assert keyword.option is None or keyword.option in CONFIG_OPTIONS
    module = importlib.import_module("hear_mn.mn10_all_b")
    with pytest.raises(ValueError, match="checkpoint='mn10_as' and model_name='mn10_as_fc'"):
        module.load_model(pretrained=False, checkpoint="mn10_as", model_name="mn10_as_fc")
    agreeing = module.load_model(pretrained=False, checkpoint="mn10_as", model_name="mn10_as")
    assert agreeing.backbone.head == "mlp"


@pytest.mark.parametrize("name", ["mn01_e1_l", "dymn04_e1_l", "kwmlp"])
def test_every_model_reads_its_sample_rate_from_its_checkpoint(name: str) -> None:
    from hear_mn.run_options import RunOptions

    config = get_config(name)
    assert create_model(name, pretrained=False).sample_rate == config.checkpoint.sample_rate
    other = replace(config, checkpoint=replace(config.checkpoint, sample_rate=8000))
    model = other.family.build(other, RunOptions())
    assert model.sample_rate == 8000
    if hasattr(model, "windows"):  # EfficientAT: 160 ms windows every 50 ms at 8 kHz
        assert (model.windows.size, model.windows.hop, model.frontend.sample_rate) == (
            1280,
            400,
            8000,
        )
        assert model.scene_windows.size == 80000


def test_no_model_module_declares_a_sample_rate_of_its_own() -> None:
    """The checkpoint rows are the only sample rates (the EfficientAT and Audio-MLP rows
    declare theirs where they are written)."""
    for path in (PACKAGE / "models").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^SAMPLE_RATE\s*=", text, re.MULTILINE) or path.name in (
            "efficientat_family.py",
            "family.py",
        ), path
    assert "32000" not in (PACKAGE / "batch.py").read_text()
