"""Hostile cases (issue 21): misuse that once gave silently wrong results or unclear errors.

Each test was written first and failed on the code before its fix.
"""

from __future__ import annotations

import pytest
import torch
from support.reference import randomize_batchnorm

import hear_mn
from hear_mn.registry import create_model

FAMILIES = ["mn04_e1_l", "dymn04_all_b_mel_avgs", "kwmlp"]


def _audio(model, seconds: float = 1.5, clips: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(clips, int(seconds * model.sample_rate), generator=generator) * 2 - 1


def _buffers(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in model.named_buffers()}


@pytest.mark.parametrize("name", FAMILIES)
def test_hear_calls_on_a_model_in_train_mode_compute_in_eval_mode(name: str) -> None:
    """Item 1: a model left in train() mode gives its eval-mode embeddings, rewrites no
    buffer, and stays in train mode (also its modules set apart, e.g. a frozen one)."""
    torch.manual_seed(0)
    model = create_model(name, pretrained=name == "kwmlp")
    randomize_batchnorm(model)
    audio = _audio(model)
    scene, (stamps, times) = model.scene_embeddings(audio), model.timestamp_embeddings(audio)
    model.train()
    frozen = next(m for m in model.modules() if m is not model)
    frozen.eval()
    before = _buffers(model)
    scene_train = hear_mn.get_scene_embeddings(audio, model)
    stamps_train, times_train = hear_mn.get_timestamp_embeddings(audio, model)
    torch.testing.assert_close(scene_train, scene, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(stamps_train, stamps, rtol=1e-5, atol=1e-6)
    assert torch.equal(times_train, times)
    after = _buffers(model)
    assert all(torch.equal(before[key], after[key]) for key in before), "a buffer changed"
    assert model.training and not frozen.training
    assert all(m.training for m in model.modules() if m is not frozen and m not in frozen.modules())
    model.eval()
    torch.testing.assert_close(model.scene_embeddings(audio), scene, rtol=1e-5, atol=1e-6)


def test_fine_tuning_in_train_mode_still_works_through_autograd() -> None:
    """Item 1: train() for fine-tuning: forward() keeps autograd and batch statistics."""
    torch.manual_seed(0)
    model = create_model("mn04_e1_l", pretrained=False).train()
    before = _buffers(model)
    output = model(_audio(model, 1.0))
    output.pow(2).mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads[:5])
    after = _buffers(model)
    assert any(not torch.equal(before[k], after[k]) for k in before), "BatchNorm did not train"


def test_a_model_of_another_configuration_is_refused_naming_both() -> None:
    """Item 3: kwmlp's functions with an mn04 model (32 kHz audio taken as 16 kHz) refuse."""
    from hear_mn import kwmlp, mn04_e1_l, mn10_e1_l

    mn04 = mn04_e1_l.load_model(pretrained=False)
    audio = _audio(mn04, 1.0, 1)
    for module in (kwmlp, mn10_e1_l):
        for call in (module.get_scene_embeddings, module.get_timestamp_embeddings):
            with pytest.raises(ValueError) as error:
                call(audio, mn04)
            message = str(error.value)
            assert module.__name__ in message and "mn04_e1_l" in message
    # The same configuration with other options is the module's own model.
    variant = mn04_e1_l.load_model(pretrained=False, features="e1_l_all_se")
    assert mn04_e1_l.get_scene_embeddings(audio, variant).shape == (1, 1335)
    # The package-level functions take any model.
    assert hear_mn.get_scene_embeddings(audio, mn04).shape == (1, 911)


def test_export_onnx_is_at_the_package_top_level(tmp_path) -> None:
    """Item 16: hear_mn.export_onnx(model, path, ...), as an earlier issue asked."""
    pytest.importorskip("onnxruntime", reason="needs onnxruntime (pip install -e '.[test]')")
    from hear_mn.export import export_onnx

    assert hear_mn.export_onnx is export_onnx
    assert "export_onnx" in dir(hear_mn)
    model = hear_mn.create_model("mn04_e1_l", pretrained=False)
    path = hear_mn.export_onnx(model, tmp_path / "mn04.onnx")
    assert path.stat().st_size > 0


@pytest.mark.parametrize("option", ["autocast", "pretrained", "download"])
@pytest.mark.parametrize("value", ["no", "false", 0.5, "yes"])
def test_boolean_options_take_booleans_only(option: str, value: object) -> None:
    """Item 15: autocast='no' or pretrained='no' once counted as true."""
    from hear_mn import mn04_e1_l

    with pytest.raises(TypeError, match=f"{option} must be True or False"):
        mn04_e1_l.load_model(
            **{option: value, **({} if option == "pretrained" else {"pretrained": False})}
        )
