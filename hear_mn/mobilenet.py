"""The EfficientAT MobileNetV3 backbone for log-mel input, with the paper's feature taps.

The architecture is the block table below scaled by a width multiplier. Module names follow
the released checkpoints' state-dict layout, so they load strictly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

BN_EPS = 0.001
NUM_CLASSES = 527
DROPOUT = 0.2


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of ``divisor`` (at least ``divisor``), never >10 % down."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


@dataclass(frozen=True)
class BlockSpec:
    """One inverted residual block at width 1.0."""

    in_channels: int
    kernel: int
    expanded: int
    out_channels: int
    squeeze_excite: bool
    hardswish: bool
    stride: int

    def scaled(self, width: float) -> BlockSpec:
        return BlockSpec(
            make_divisible(self.in_channels * width),
            self.kernel,
            make_divisible(self.expanded * width),
            make_divisible(self.out_channels * width),
            self.squeeze_excite,
            self.hardswish,
            self.stride,
        )


def _block(spec: str) -> BlockSpec:
    in_c, kernel, expanded, out_c, se, act, stride = spec.split()
    return BlockSpec(
        int(in_c), int(kernel), int(expanded), int(out_c), se == "SE", act == "HS", int(stride)
    )


# features[1..15] of MobileNetV3-Large: in, kernel, expanded, out, SE, activation, stride.
BLOCKS: tuple[BlockSpec, ...] = tuple(
    _block(row)
    for row in (
        "16  3  16  16 -  RE 1",
        "16  3  64  24 -  RE 2",
        "24  3  72  24 -  RE 1",
        "24  5  72  40 SE RE 2",
        "40  5 120  40 SE RE 1",
        "40  5 120  40 SE RE 1",
        "40  3 240  80 -  HS 2",
        "80  3 200  80 -  HS 1",
        "80  3 184  80 -  HS 1",
        "80  3 184  80 -  HS 1",
        "80  3 480 112 SE HS 1",
        "112 3 672 112 SE HS 1",
        "112 5 672 160 SE HS 2",
        "160 5 960 160 SE HS 1",
        "160 5 960 160 SE HS 1",
    )
)
STEM_CHANNELS = 16
LAST_CONV_FACTOR = 6
HIDDEN_CHANNELS = 1280
# Indices into `features` whose pooled outputs make up the `block` embedding.
BLOCK_TAPS = (0, 5, 10, 16)
# Indices of the blocks whose squeeze-excitation makes up the `se` embedding.
SE_TAPS = (12, 13, 14, 15)


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) + BatchNorm + optional activation; indices 0, 1, 2 as in the checkpoints."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        activation: type[nn.Module] | None = None,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel,
                stride,
                (kernel - 1) // 2,
                groups=groups,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels, eps=BN_EPS),
        ]
        if activation is not None:
            layers.append(activation())
        super().__init__(*layers)


class ChannelSqueezeExcite(nn.Module):
    """Squeeze-excitation over channels with a sigmoid gate.

    ``inplace`` gates the input map in place (as ``nn.ReLU(inplace=True)`` does): inference
    copies set it, saving a map-sized allocation per block.
    """

    def __init__(self, channels: int, inplace: bool = False) -> None:
        super().__init__()
        squeezed = make_divisible(channels // 4)
        self.fc1 = nn.Linear(channels, squeezed)
        self.fc2 = nn.Linear(squeezed, channels)
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the gated map and the bottleneck (fc1 output before its ReLU)."""
        bottleneck = self.fc1(x.mean((2, 3)))
        gate = torch.sigmoid(self.fc2(torch.relu(bottleneck)))[:, :, None, None]
        return (x.mul_(gate) if self.inplace else x * gate), bottleneck


class SqueezeExciteContainer(nn.Module):
    """Holds the channel SE under the name the checkpoints use (``conc_se_layers.0``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conc_se_layers = nn.ModuleList([ChannelSqueezeExcite(channels)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.conc_se_layers[0](x)


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise (kxk) -> optional SE -> project (1x1), residual when shapes allow."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        activation = nn.Hardswish if spec.hardswish else nn.ReLU
        layers: list[nn.Module] = []
        if spec.expanded != spec.in_channels:
            layers.append(ConvBNAct(spec.in_channels, spec.expanded, activation=activation))
        layers.append(
            ConvBNAct(
                spec.expanded, spec.expanded, spec.kernel, spec.stride, spec.expanded, activation
            )
        )
        if spec.squeeze_excite:
            layers.append(SqueezeExciteContainer(spec.expanded))
        layers.append(ConvBNAct(spec.expanded, spec.out_channels))
        self.block = nn.Sequential(*layers)
        self.residual = spec.stride == 1 and spec.in_channels == spec.out_channels

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns the block output and its SE bottleneck (None without SE)."""
        out = x
        bottleneck = None
        for layer in self.block:
            if isinstance(layer, SqueezeExciteContainer):
                out, bottleneck = layer(out)
            else:
                out = layer(out)
        if self.residual:
            out = out + x
        return out, bottleneck


class BackboneOutputs(NamedTuple):
    """Everything the embedding taps need from one forward pass."""

    logits: torch.Tensor
    pooled: torch.Tensor
    hidden: torch.Tensor
    block_means: list[torch.Tensor]
    se_bottlenecks: dict[int, torch.Tensor]


class MobileNet(nn.Module):
    """MobileNetV3-Large on (batch, 1, mels, frames) log-mel input, width ``width``."""

    def __init__(self, width: float) -> None:
        super().__init__()
        self.width = width
        specs = [spec.scaled(width) for spec in BLOCKS]
        stem = make_divisible(STEM_CHANNELS * width)
        last = specs[-1].out_channels
        last_conv = LAST_CONV_FACTOR * last
        hidden = make_divisible(HIDDEN_CHANNELS * width)
        self.features = nn.Sequential(
            ConvBNAct(1, stem, 3, stride=2, activation=nn.Hardswish),
            *(InvertedResidual(spec) for spec in specs),
            ConvBNAct(last, last_conv, activation=nn.Hardswish),
        )
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(1),
            nn.Linear(last_conv, hidden),
            nn.Hardswish(),
            nn.Dropout(DROPOUT),
            nn.Linear(hidden, NUM_CLASSES),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, mels: torch.Tensor) -> BackboneOutputs:
        block_means: list[torch.Tensor] = []
        se_bottlenecks: dict[int, torch.Tensor] = {}
        x = mels
        for index, layer in enumerate(self.features):
            if isinstance(layer, InvertedResidual):
                x, bottleneck = layer(x)
                if bottleneck is not None:
                    se_bottlenecks[index] = bottleneck
            else:
                x = layer(x)
            if index in BLOCK_TAPS:
                block_means.append(x.mean((2, 3)))
        pooled = block_means[-1]
        hidden = self.classifier[3](self.classifier[2](pooled))
        logits = self.classifier[5](self.classifier[4](hidden))
        return BackboneOutputs(logits, pooled, hidden, block_means, se_bottlenecks)

    def num_parameters(self) -> int:
        """Trainable parameters (BatchNorm running statistics not counted)."""
        return sum(p.numel() for p in self.parameters())
