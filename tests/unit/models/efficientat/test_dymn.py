"""EfficientAT's dynamic MobileNets (DyMN) as hear-mn models.

* Parity: every fixture of ../shared/fixtures/dymn/ was made by the HEAR reference of
  ../shared/notes/DYMN.md (the newer wrapper on the original DyMN) with random weights in the
  released format; we load them through our modules and compare scene embeddings, timestamp
  embeddings and timestamps, offline, streamed and through the command line.
* The released state-dict layout (key names and shapes) loads strictly; other checkpoints
  and squeeze-excitation features are refused with a clear message.
"""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import torch
from support.reference import (
    DYMN,
    MN04_WEIGHTS,
    REFERENCE,
    SHARED,
    assert_matches_reference,
    load_dymn_fixture,
    reference_manifest,
    relative_error,
    require_shared,
)

import hear_mn
from hear_mn import cli
from hear_mn.hub.errors import BadFileError
from hear_mn.models.efficientat.dymn_network import DyMN, DyMNEmbedder
from hear_mn.registry import create_model, get_config

MANIFEST = reference_manifest(DYMN)
INPUTS = REFERENCE / "inputs.npz"
WIDTHS = {"dymn04": 0.4, "dymn10": 1.0, "dymn20": 2.0}


@pytest.mark.slow  # every ../shared DyMN fixture
@pytest.mark.parametrize("name", sorted(MANIFEST) or ["manifest-missing"])
def test_dymn_fixture(name: str) -> None:
    require_shared(DYMN)
    module, model = load_dymn_fixture(name)
    assert isinstance(model, DyMNEmbedder)
    assert model.scene_embedding_size == MANIFEST[name]["embedding_size"]
    assert model.backbone.layers[0].depth_conv.temperature == MANIFEST[name]["dyconv_temperature"]
    assert_matches_reference(module, model, np.load(DYMN / f"{name}.npz"), INPUTS)


def test_catalog_rows_are_the_fixtures_configurations() -> None:
    assert get_config("dymn10_all_b_mel_avgs").features == ("mel_avgs", "b5", "b11", "b13", "b15")
    assert get_config("dymn04_clf1_logits").features == ("clf1", "logits")
    assert get_config("dymn20_clf1_logits").weights.file_name == "dymn20_as_mAP_493.pt"
    assert get_config("dymn10_all_b_mel_avgs").embedding_sizes == (600, 600)
    assert get_config("dymn04_clf1_logits").embedding_sizes == (911, 911)


@pytest.mark.parametrize("arch", sorted(WIDTHS))
def test_state_dict_is_the_released_layout(arch: str) -> None:
    """Random init has the release's keys and shapes, and a state dict of exactly those
    loads strictly (dymn20: the weights too large for a fixture)."""
    shapes = json.loads((require_shared(DYMN) / "state_dict_shapes.json").read_text())[arch]
    model = create_model(f"{arch}_clf1_logits", pretrained=False)
    ours = {key: list(value.shape) for key, value in model.backbone.state_dict().items()}
    assert ours == shapes
    if arch == "dymn20":
        released = {key: torch.full(shape, 0.5) for key, shape in shapes.items()}
        model.load_checkpoint(released, source="dymn20_as_mAP_493.pt")
        assert torch.equal(model.backbone.out_c[1].running_var, torch.full([960 * 2], 0.5))


def test_squeeze_excitation_features_are_refused() -> None:
    module = importlib.import_module("hear_mn.dymn10_all_b_mel_avgs")
    for options in ({"features": "se5_mel_avgs"}, {"mode": ["all_se"]}):
        with pytest.raises(ValueError, match="DyMN has no squeeze-excitation"):
            module.load_model(pretrained=False, **options)
    with pytest.raises(ValueError, match="DyMN has no squeeze-excitation"):
        get_config("dymn04_se13_b5")


def test_other_options_and_the_original_keywords() -> None:
    with pytest.raises(ValueError, match="'mlp' head only"):
        create_model("dymn04_clf1_logits", pretrained=False, head="fully_convolutional")
    with pytest.raises(ValueError, match="unknown DyMN checkpoint"):
        create_model("dymn04_clf1_logits", pretrained=False, checkpoint="mn04_as")
    module = importlib.import_module("hear_mn.dymn04_clf1_logits")
    model = module.load_model(
        pretrained=False, model_name="dymn10_as", mode=["b3", "clf2"], all_blocks=True
    )
    assert model.features == ("clf2", "b3") and model.scene_embedding_size == 1280 + 24


def test_a_mismatched_checkpoint_is_refused_clearly() -> None:
    require_shared(DYMN)
    module = importlib.import_module("hear_mn.dymn10_clf1_logits")
    with pytest.raises(BadFileError, match="does not fit DyMN") as error:
        module.load_model(str(DYMN / "dymn04_seed1.pt"))
    assert "shape mismatches" in str(error.value)
    with pytest.raises(BadFileError, match="does not fit DyMN") as error:
        module.load_model(str(MN04_WEIGHTS))
    assert "missing keys" in str(error.value)


def test_streaming_equals_the_reference_timestamps() -> None:
    require_shared(DYMN)
    _, model = load_dymn_fixture("dymn04_clf1_logits")
    reference = np.load(DYMN / "dymn04_clf1_logits.npz")
    audio = torch.from_numpy(np.load(INPUTS)["len1.07"][1])
    stream = hear_mn.stream(model)
    parts = [stream.push(audio[start : start + 9001]) for start in range(0, len(audio), 9001)]
    parts.append(stream.close())
    embeddings = torch.cat([part[0] for part in parts])
    timestamps = torch.cat([part[1] for part in parts])
    error = relative_error(embeddings, reference["len1.07/timestamp_embeddings"][1])
    assert error <= 1e-5
    np.testing.assert_array_equal(timestamps.numpy(), reference["len1.07/timestamps"][1])


def test_embed_through_the_command_line(tmp_path, capsys) -> None:
    require_shared(DYMN)
    sf = pytest.importorskip("soundfile")
    reference = np.load(DYMN / "dymn10_b5_b11_b13_b15_mel_avgs.npz")
    source = tmp_path / "clip.wav"
    sf.write(source, np.load(INPUTS)["len1.07"][0], 32000, subtype="FLOAT")
    out = tmp_path / "emb"
    weights = DYMN / "dymn10_seed1.pt"
    argv = ["embed", source, "--model", "dymn10_all_b_mel_avgs", "--weights", weights]
    code = cli.main([str(arg) for arg in [*argv, "--out", out, "--quiet"]])
    assert code == 0, capsys.readouterr().err
    with np.load(out / "clip.wav.npz") as data:
        assert str(data["model"]) == "dymn10_all_b_mel_avgs"
        assert relative_error(data["embedding"], reference["len1.07/scene"][0]) <= 1e-5


def test_the_backbone_computes_only_what_the_features_need() -> None:
    torch.manual_seed(0)
    model = create_model("dymn04_all_b_mel_avgs", pretrained=False, features="b3")
    assert model.plan.last == 3 and not model.plan.classifier
    called = []
    for index, layer in enumerate(model.backbone.components()):
        layer.register_forward_hook(lambda *_, index=index: called.append(index))
    with torch.enable_grad():  # the modules as built (not the inference copy)
        model.get_scene_embeddings(torch.zeros(1, 32000))
    assert called == [0, 1, 2, 3]
    assert isinstance(DyMN(0.4).forward(torch.zeros(1, 1, 128, 20)).logits, torch.Tensor)


def test_tag_through_the_command_line(tmp_path, capsys, monkeypatch) -> None:
    """``hear-mn tag`` with a DyMN: the scores are the sigmoid of the reference's logits."""
    labels = require_shared(SHARED / "fixtures" / "audioset" / "class_labels_indices.csv")
    require_shared(DYMN)
    sf = pytest.importorskip("soundfile")
    reference = np.load(DYMN / "dymn04_clf1_logits.npz")["len1.07/scene"][0]
    logits = reference[-527:]  # clf1, then the 527 logits
    source = tmp_path / "clip.wav"
    sf.write(source, np.load(INPUTS)["len1.07"][0], 32000, subtype="FLOAT")
    monkeypatch.setenv("HEAR_MN_OFFLINE", "1")
    argv = ["tag", source, "--model", "dymn04_clf1_logits", "--weights", DYMN / "dymn04_seed1.pt"]
    code = cli.main([str(arg) for arg in [*argv, "--labels", labels, "--json", "--top-k", "3"]])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    tags = json.loads(captured.out)["files"][0]["segments"][0]["tags"]
    top = np.argsort(-logits)[:3]
    assert [tag["index"] for tag in tags] == top.tolist()
    expected = 1 / (1 + np.exp(-logits[top].astype(np.float64)))
    np.testing.assert_allclose([tag["score"] for tag in tags], expected, rtol=1e-4)
