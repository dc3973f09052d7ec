"""Inference-only rewrites of the MobileNet backbone: BatchNorm folding and in-place maps.

:func:`inference_backbone` returns a copy that computes the same function up to float
rounding and leaves the original (checkpoint layout, trainable) untouched:

* :func:`fold_batchnorm` folds every BatchNorm into the convolution before it;
* :func:`work_in_place` lets activations and squeeze-excitation gates overwrite their input;
* :func:`pointwise_as_matmul` runs 1x1 convolutions of small batches as one matrix product.

What each buys is measured by ``benchmarks/bench_ablation.py``. Fusing each convolution
with its activation into one oneDNN call was measured too and left out: on top of these
two it was within noise for mn04 and mn10 (and needs a private PyTorch operator).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from hear_mn.models.efficientat.mobilenet_network import ChannelSqueezeExcite, ConvBNAct, MobileNet


def inference_backbone(model: MobileNet) -> MobileNet:
    """The fastest equivalent copy of ``model`` for inference: folded, working in place."""
    return pointwise_as_matmul(work_in_place(fold_batchnorm(model)))


def fold_batchnorm(model: MobileNet) -> MobileNet:
    """An inference-only copy with every BatchNorm folded into the convolution before it.

    conv(x) * s + t with s = gamma / sqrt(var + eps), t = beta - mean * s becomes one conv with
    weight w * s and bias t: a fifth of the backbone's time on CPU, same function up to
    float rounding. The copy is in channels_last layout; the original (checkpoint layout)
    is left untouched.
    """
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if isinstance(module, ConvBNAct) and isinstance(module[1], nn.BatchNorm2d):
            conv, norm = module[0], module[1]
            scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
            conv.weight = nn.Parameter(conv.weight * scale[:, None, None, None])
            conv.bias = nn.Parameter(norm.bias - norm.running_mean * scale)
            module[1] = nn.Identity()
    return folded.to(memory_format=torch.channels_last)


def work_in_place(model: MobileNet) -> MobileNet:
    """Make activations and squeeze-excitation gates of an inference copy work in place.

    Every map they change is a fresh intermediate that nothing else reads, so this only
    saves a map-sized allocation and memory pass each: on 2 CPU cores mn10's batched
    timestamp embeddings ran about 9 % faster. Not for training (autograd needs the inputs).
    """
    for module in model.modules():
        if isinstance(module, (nn.ReLU, nn.Hardswish, ChannelSqueezeExcite)):
            module.inplace = True
    return model


# Below this batch size PyTorch runs a 1x1 convolution on one thread through its slow
# im2col path (with layout copies) instead of oneDNN; a matrix product on the channels_last
# map gives the same numbers (the same GEMM) without the copies.
SMALL_BATCH = 16


class PointwiseConv(nn.Module):
    """A 1x1 convolution (no groups, stride 1) that multiplies small batches directly.

    On a channels_last map, ``x.permute(0, 2, 3, 1)`` is (batch, F, T, channels) without a
    copy, so the convolution is ``F.linear`` of it; batches of at least :data:`SMALL_BATCH`
    keep the convolution (oneDNN, faster there). One 10 s scene of mn04 on one thread ran
    about 20 % faster.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] >= SMALL_BATCH or not x.is_contiguous(memory_format=torch.channels_last):
            return self.conv(x)
        weight = self.conv.weight.flatten(1)
        return F.linear(x.permute(0, 2, 3, 1), weight, self.conv.bias).permute(0, 3, 1, 2)


def pointwise_as_matmul(model: MobileNet) -> MobileNet:
    """Wrap every plain 1x1 convolution of an inference copy in :class:`PointwiseConv`."""
    for module in model.modules():
        if isinstance(module, ConvBNAct):
            conv = module[0]
            plain = conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.groups == 1
            if plain and conv.padding == (0, 0) and conv.in_channels > 1:
                module[0] = PointwiseConv(conv)
    return model
