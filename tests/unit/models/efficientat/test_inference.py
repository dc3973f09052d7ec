"""The inference rewrites of the backbone compute the same function as the plain network."""

from __future__ import annotations

import pytest
import torch
from support.reference import randomize_batchnorm, relative_error
from torch import nn

from hear_mn.models.efficientat.inference_rewrites import (
    fold_batchnorm,
    inference_backbone,
    work_in_place,
)
from hear_mn.models.efficientat.mobilenet_network import ChannelSqueezeExcite, ConvBNAct, MobileNet


def _random_network(width: float, seed: int, **architecture: object) -> MobileNet:
    torch.manual_seed(seed)
    network = randomize_batchnorm(MobileNet(width, **architecture).eval())
    for module in network.modules():
        if isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.normal_(module.bias, 0, 0.1)
    return network


def _mels(batch: int, frames: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 1, 128, frames, generator=generator)


def _assert_same_outputs(got, expected) -> None:
    pairs = [
        (got.logits, expected.logits),
        *((got.pooled[k], v) for k, v in expected.pooled.items()),
        *((got.se_bottlenecks[k], v) for k, v in expected.se_bottlenecks.items()),
    ]
    if expected.hidden is not None:
        pairs.append((got.hidden, expected.hidden))
    assert got.pooled.keys() == expected.pooled.keys() == set(range(17))
    assert got.se_bottlenecks.keys() == expected.se_bottlenecks.keys()
    for ours, reference in pairs:
        assert ours.shape == reference.shape
        assert relative_error(ours, reference) <= 1e-5


@pytest.mark.parametrize("width", [0.4, 1.0])
@pytest.mark.parametrize(("batch", "frames"), [(1, 16), (3, 16), (40, 16), (2, 101)])
def test_inference_backbone_equals_the_plain_network(width: float, batch: int, frames: int) -> None:
    network = _random_network(width, seed=int(width * 10) + batch)
    mels = _mels(batch, frames)
    with torch.inference_mode():
        expected = network(mels)
        folded = fold_batchnorm(network)
        _assert_same_outputs(folded(mels.contiguous(memory_format=torch.channels_last)), expected)
        in_place = work_in_place(fold_batchnorm(network))
        _assert_same_outputs(in_place(mels.contiguous(memory_format=torch.channels_last)), expected)
        fast = inference_backbone(network)
        _assert_same_outputs(fast(mels.contiguous(memory_format=torch.channels_last)), expected)
        _assert_same_outputs(fast(mels), expected)  # any memory layout works


@pytest.mark.parametrize(
    "architecture",
    [{"head": "fully_convolutional"}, {"head": "fully_convolutional", "strides": (2, 2, 1, 1)}],
)
def test_inference_rewrites_of_other_heads_and_strides(architecture: dict) -> None:
    network = _random_network(1.0, seed=7, **architecture)
    mels = _mels(3, 21)
    with torch.inference_mode():
        _assert_same_outputs(inference_backbone(network)(mels), network(mels))


def test_rewrites_leave_the_original_untouched() -> None:
    network = _random_network(0.4, seed=3)
    before = {k: v.clone() for k, v in network.state_dict().items()}
    fast = inference_backbone(network)
    assert network.state_dict().keys() == before.keys()
    assert all(torch.equal(network.state_dict()[k], v) for k, v in before.items())
    assert not any(getattr(module, "inplace", False) for module in network.modules()), (
        "the original network must keep out-of-place activations (autograd needs them)"
    )
    assert any(isinstance(module, ConvBNAct) for module in network.modules())
    gates = [m for m in fast.modules() if isinstance(m, ChannelSqueezeExcite)]
    assert gates and all(gate.inplace for gate in gates)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
