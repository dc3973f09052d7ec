"""Inference-only rewrites of the MobileNet backbone: folding, in-place maps, fused kernels.

:func:`inference_backbone` returns a copy that computes the same function up to float
rounding and leaves the original (checkpoint layout, trainable) untouched:

* :func:`fold_batchnorm` folds every BatchNorm into the convolution before it.
* :func:`work_in_place` lets activations and squeeze-excitation gates overwrite their input.
* :func:`fuse_convolutions` then replaces each convolution + bias + activation (and, at the
  end of a residual block, + the residual) with one oneDNN call on CPU, saving the separate
  passes over memory. Measured on 2 CPU cores on top of the in-place copy: about 10 % on
  mn40's timestamp embeddings, within noise for mn10 and mn04
  (``benchmarks/bench_ablation.py``). The oneDNN operator is not a public PyTorch API, so
  it is used only after :func:`fused_kernels_available` checked it against the plain
  operators; otherwise the in-place copy runs as it is.
"""

from __future__ import annotations

import copy
import functools
import logging

import torch
from torch import nn

from hear_mn.mobilenet import ChannelSqueezeExcite, ConvBNAct, MobileNet

logger = logging.getLogger(__name__)

# Below this many output values (512 KiB of float32) the fused kernel's larger fixed cost
# per call outweighs the memory pass it saves: measured on 2 CPU cores, mn10 on one 160 ms
# window ran about 1.5x slower fused throughout; with this threshold the per-window loop
# ran as fast as unfused while batches of 256 windows kept the gain.
FUSED_MIN_OUTPUTS = 131072
_ACTIVATIONS: dict[type[nn.Module], str] = {nn.ReLU: "relu", nn.Hardswish: "hardswish"}


def inference_backbone(model: MobileNet) -> MobileNet:
    """The fastest equivalent copy of ``model`` for inference: folded, in place, fused."""
    fast = work_in_place(fold_batchnorm(model))
    return fuse_convolutions(fast) if fused_kernels_available() else fast


def fold_batchnorm(model: MobileNet) -> MobileNet:
    """An inference-only copy with every BatchNorm folded into the convolution before it.

    conv(x) * s + t with s = gamma / sqrt(var + eps), t = beta - mean * s becomes one conv with
    weight w * s and bias t: a fifth of the backbone's time on CPU, same function up to
    float rounding. The original (checkpoint layout) is left untouched.
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


class FusedConv(nn.Module):
    """A folded :class:`ConvBNAct` as one call: conv + bias + activation, or + residual.

    Runs the fused oneDNN kernel for float32 CPU tensors outside autograd and autocast, the
    plain operators everywhere else (CUDA, half precision, training), so it is always safe
    to call.
    """

    def __init__(self, conv: nn.Conv2d, activation: nn.Module | None) -> None:
        super().__init__()
        if conv.bias is None:
            raise ValueError("FusedConv expects a folded convolution (with a bias)")
        if activation is not None and type(activation) not in _ACTIVATIONS:
            raise ValueError(f"no fused kernel for activation {type(activation).__name__}")
        self.conv = conv
        self.activation = activation
        self._stride = conv.stride
        self._out_channels = conv.out_channels
        self._attr = "none" if activation is None else _ACTIVATIONS[type(activation)]
        self._geometry = (
            list(conv.padding),
            list(conv.stride),
            list(conv.dilation),
            conv.groups,
        )

    def _fusable(self, x: torch.Tensor) -> bool:
        batch, _, height, width = x.shape
        stride_h, stride_w = self._stride
        outputs = batch * -(-height // stride_h) * -(-width // stride_w) * self._out_channels
        return (
            outputs >= FUSED_MIN_OUTPUTS
            and x.device.type == "cpu"
            and x.dtype == torch.float32
            and not (torch.is_grad_enabled() and x.requires_grad)
            and not torch.is_autocast_enabled("cpu")
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fusable(x):
            padding, stride, dilation, groups = self._geometry
            return torch.ops.mkldnn._convolution_pointwise(
                x, self.conv.weight, self.conv.bias, padding, stride, dilation, groups,
                self._attr, [], None,
            )  # fmt: skip
        out = self.conv(x)
        return out if self.activation is None else self.activation(out)

    def forward_add(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``self(x) + residual`` (residual blocks end in a convolution without activation)."""
        if self._attr == "none" and self._fusable(x):
            padding, stride, dilation, groups = self._geometry
            return torch.ops.mkldnn._convolution_pointwise.binary(
                x, residual, self.conv.weight, self.conv.bias, padding, stride, dilation, groups,
                "add", None, None, [], None,
            )  # fmt: skip
        return self(x) + residual


def fuse_convolutions(folded: MobileNet) -> MobileNet:
    """Replace every folded :class:`ConvBNAct` of ``folded`` (in place) by a :class:`FusedConv`."""
    for parent in list(folded.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, ConvBNAct):
                if not isinstance(child[1], nn.Identity):
                    raise ValueError("fuse_convolutions needs a model from fold_batchnorm")
                activation = child[2] if len(child) > 2 else None
                setattr(parent, name, FusedConv(child[0], activation))
    return folded


@functools.cache
def fused_kernels_available() -> bool:
    """Whether this PyTorch build has the oneDNN fused convolution and it gives right numbers.

    Checked once per process on a small depthwise + pointwise case with each fused form.
    """
    if not torch.backends.mkldnn.is_available():
        return False
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 6, 5, generator=generator).contiguous(memory_format=torch.channels_last)
    checks = []
    try:
        with torch.inference_mode():
            for groups, kernel, activation in ((8, 3, nn.ReLU()), (1, 1, nn.Hardswish())):
                conv = nn.Conv2d(8, 8, kernel, padding=kernel // 2, groups=groups)
                fused = FusedConv(conv, activation)
                checks.append((fused(x), activation(conv(x))))
                plain = FusedConv(conv, None)
                checks.append((plain.forward_add(x, x), conv(x) + x))
    except (RuntimeError, AttributeError, TypeError) as error:
        logger.info("oneDNN fused convolutions unavailable, running unfused: %s", error)
        return False
    for got, expected in checks:
        if got.shape != expected.shape or not torch.allclose(got, expected, atol=1e-5, rtol=1e-5):
            logger.info("oneDNN fused convolutions disagree with PyTorch, running unfused")
            return False
    return True
