"""Export-only torch modules for DyMN: backbone and feature taps (and optionally the log-mel
frontend) as one traceable module with dynamic batch and length axes.

:class:`~hear_mn.models.efficientat.dymn_network.DynamicConv` runs its depthwise convolution as one
grouped convolution with a group per sample and channel, and picks its 1x1 form by the map's size;
an ONNX Conv's ``group`` is a static attribute, so that graph would freeze the batch size. Here each
dynamic convolution is written with operations whose shapes follow the input: a 1x1 one is a batched
matrix product with each sample's mixed kernel, a depthwise k x k one the sum over the k * k taps of
the zero-padded map's (strided) shifted slices times each sample's kernel value. Both are exact
rewrites (only the order of the float32 sums differs). The torch path is not changed; these modules
exist only to be traced.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from hear_mn.models.efficientat.dymn_network import (
    RELU_PIECES,
    DyMNEmbedder,
    DynamicBlock,
    DynamicConv,
    DyReLUB,
)
from hear_mn.models.efficientat.mobilenet_graph import TapsGraph


def pointwise(conv: DynamicConv, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """A 1x1 dynamic convolution: (batch, in, F, T) -> (batch, out, F, T), one matrix product
    per sample with its kernel (batch, out, in)."""
    weight = conv.mixed_weight(context).reshape(-1, conv.out_channels, conv.in_channels)
    out = torch.matmul(weight[:, None], x.transpose(1, 2))  # (batch, F, out, T)
    return out.transpose(1, 2)


def depthwise(conv: DynamicConv, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """A depthwise k x k dynamic convolution ("same" zero padding, stride s on both axes).

    Tap (i, j) of output (f, t) reads padded input (s f + i, s t + j): the slice of the padded
    map from i that leaves k - 1 - i rows at the end, every s-th row, has ceil(F / s) rows,
    the output's size, whatever F is.
    """
    kernel = conv.kernel_size[0]
    half = (kernel - 1) // 2
    stride = conv.stride
    weight = conv.mixed_weight(context).reshape(-1, conv.out_channels, kernel, kernel)
    padded = F.pad(x, (half, half, half, half))
    out = None
    for i in range(kernel):
        rows = padded[:, :, i : i - kernel + 1 or None : stride]
        for j in range(kernel):
            tap = (
                rows[:, :, :, j : j - kernel + 1 or None : stride] * weight[:, :, i, j, None, None]
            )
            out = tap if out is None else out + tap
    return out


def conv_1x1(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """:class:`~hear_mn.models.efficientat.dymn_network.PointwiseConv`'s numbers with positive
    permutation axes (its
    ``movedim(-1, 1)`` exports as a Transpose with a negative axis, which ONNX refuses)."""
    out = F.linear(x.permute(0, 2, 3, 1), conv.weight.flatten(1), conv.bias)
    return out.permute(0, 3, 1, 2)


def dy_relu(act: DyReLUB, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """Dy-ReLU-B of :class:`~hear_mn.models.efficientat.dymn_network.DyReLUB` with plain products
    and sums."""
    theta = 2 * torch.sigmoid(act.coef_net(context)) - 1
    coefs = theta.reshape(-1, act.channels, 2 * RELU_PIECES) * act.lambdas + act.init_v
    coefs = coefs[:, :, :, None, None]
    first = coefs[:, :, 2] + x * coefs[:, :, 0]
    return torch.maximum(first, coefs[:, :, 3] + x * coefs[:, :, 1])


class TracedBlock(nn.Module):
    """A :class:`~hear_mn.models.efficientat.dymn_network.DynamicBlock` (its own parameters) with a
    traceable forward."""

    def __init__(self, block: DynamicBlock) -> None:
        super().__init__()
        self.block = block

    def _context(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The context generator's outputs; the shared conv runs on the frequency and the
        time sequence apart (it is per position), so no slice depends on the map's size."""
        gen = self.block.context_gen

        def joint(sequence: torch.Tensor) -> torch.Tensor:
            return gen.joint_act(gen.joint_norm(conv_1x1(gen.joint_conv, sequence)))

        by_freq = joint(x.mean(3, keepdim=True))
        by_time = joint(x.mean(2, keepdim=True).transpose(2, 3))
        context = torch.cat([by_freq, by_time], 2).mean((2, 3))
        if gen.stride > 1:
            by_freq = F.avg_pool2d(by_freq, (3, 1), (gen.stride, 1), (1, 0))
            by_time = F.avg_pool2d(by_time, (3, 1), (gen.stride, 1), (1, 0))
        return context, conv_1x1(gen.conv_f, by_freq), conv_1x1(gen.conv_t, by_time).transpose(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        block = self.block
        context, freq_logits, time_logits = self._context(x)
        out = x
        if block.exp_conv is not None:
            out = block.exp_act(block.exp_norm(pointwise(block.exp_conv, out, context)))
        out = block.depth_norm(depthwise(block.depth_conv, out, context))
        out = dy_relu(block.depth_act, out, context)
        out = out * torch.sigmoid(freq_logits) * torch.sigmoid(time_logits)
        out = block.proj_norm(pointwise(block.proj_conv, out, context))
        return out + x if block.residual else out


class DyMNGraph(TapsGraph):
    """A DyMN as a :class:`~hear_mn.models.efficientat.mobilenet_graph.TapsGraph` (DyMN has the
    MobileNets' frontend): its backbone a float32 CPU copy as built (DyMN has no inference
    rewrite) whose blocks are :class:`TracedBlock`."""

    def __init__(self, model: DyMNEmbedder, *, frontend: bool) -> None:
        backbone = copy.deepcopy(model.backbone).float().cpu()
        backbone.layers = nn.ModuleList(TracedBlock(block) for block in backbone.layers)
        super().__init__(model, backbone, frontend=frontend)
