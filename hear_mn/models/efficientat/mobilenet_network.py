"""The EfficientAT MobileNetV3 backbone for log-mel input, and what it can tap.

The architecture is the block table below scaled by a width multiplier; shapes of every tap
come from the same table (:func:`feature_info`). Module names follow
the released checkpoints' state-dict layout, so they load strictly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import torch
from torch import nn

from hear_mn.models.efficientat.block_table import (
    DEFAULT_STRIDES,
    FULL_PLAN,
    HEADS,
    HIDDEN_CHANNELS,
    LAST_COMPONENT,
    LAST_CONV_FACTOR,
    NUM_CLASSES,
    STEM_CHANNELS,
    BackbonePlan,
    BlockSpec,
    block_specs,
    global_average,
    make_divisible,
)
from hear_mn.models.efficientat.feature_taps import TAPS

BN_EPS = 0.001
DROPOUT = 0.2


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


def mlp_classifier(in_channels: int, width: float) -> nn.Sequential:
    """The released 'mlp' head: global average pool, Linear, Hardswish, Dropout, Linear to
    the 527 AudioSet logits (indices as in the checkpoints: 2 and 5 are the Linears)."""
    hidden = make_divisible(HIDDEN_CHANNELS * width)
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(1),
        nn.Linear(in_channels, hidden),
        nn.Hardswish(),
        nn.Dropout(DROPOUT),
        nn.Linear(hidden, NUM_CLASSES),
    )


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
    """The taps of one forward pass; what the plan did not ask for is None or absent."""

    logits: torch.Tensor | None
    hidden: torch.Tensor | None
    pooled: dict[int, torch.Tensor]
    se_bottlenecks: dict[int, torch.Tensor]


def run_components(
    components: Iterable[nn.Module], x: torch.Tensor, plan: BackbonePlan
) -> tuple[torch.Tensor, dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """Feature components in order, as far as ``plan`` needs: (last output, the pooled taps
    the plan asks for, the SE bottlenecks of blocks that return one)."""
    pooled: dict[int, torch.Tensor] = {}
    se_bottlenecks: dict[int, torch.Tensor] = {}
    for index, layer in enumerate(components):
        if index > plan.last:
            break
        x = layer(x)
        if isinstance(x, tuple):  # an inverted residual block: (output, SE bottleneck)
            x, bottleneck = x
            if bottleneck is not None:
                se_bottlenecks[index] = bottleneck
        pool = plan.pooled.get(index)
        if pool is not None:
            pooled[index] = pool(x)
    return x, pooled, se_bottlenecks


def classifier_input(
    x: torch.Tensor, pooled: dict[int, torch.Tensor], plan: BackbonePlan
) -> torch.Tensor:
    """The last conv map's global average, reused when the plan pooled it that way already."""
    if plan.pooled.get(LAST_COMPONENT) is global_average:
        return pooled[LAST_COMPONENT]
    return global_average(x)


def mlp_head(classifier: nn.Sequential, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden layer after its activation, logits) of the MLP head on the pooled conv map."""
    hidden = classifier[3](classifier[2](pooled))
    return hidden, classifier[5](classifier[4](hidden))


def init_weights(network: nn.Module) -> None:
    """EfficientAT's initialisation of a fresh network (MobileNet, DyMN): Kaiming-normal
    convolutions, unit BatchNorm, small normal linear layers, zero biases."""
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0, 0.01)
            nn.init.zeros_(module.bias)


class MobileNet(nn.Module):
    """MobileNetV3-Large on (batch, 1, mels, frames) log-mel input, width ``width``.

    ``head`` is the released classifier type: ``"mlp"`` (pool, Linear, Hardswish, Dropout,
    Linear) or ``"fully_convolutional"`` (1x1 conv to the classes, BatchNorm, pool; no
    hidden layer). ``strides`` are those of the four downsampling blocks.
    """

    def __init__(
        self, width: float, head: str = "mlp", strides: tuple[int, ...] = DEFAULT_STRIDES
    ) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
        self.width = width
        self.head = head
        self.strides = tuple(strides)
        specs = block_specs(width, self.strides)
        stem = make_divisible(STEM_CHANNELS * width)
        last = specs[-1].out_channels
        last_conv = LAST_CONV_FACTOR * last
        self.features = nn.Sequential(
            ConvBNAct(1, stem, 3, stride=2, activation=nn.Hardswish),
            *(InvertedResidual(spec) for spec in specs),
            ConvBNAct(last, last_conv, activation=nn.Hardswish),
        )
        if head == "mlp":
            self.classifier = mlp_classifier(last_conv, width)
        else:
            # BatchNorm2d's default eps (1e-5), as in the released fc checkpoints.
            self.classifier = nn.Sequential(
                nn.Conv2d(last_conv, NUM_CLASSES, 1, bias=False), nn.BatchNorm2d(NUM_CLASSES)
            )
        init_weights(self)

    def forward(self, mels: torch.Tensor, plan: BackbonePlan = FULL_PLAN) -> BackboneOutputs:
        x, pooled, se_bottlenecks = run_components(self.features, mels, plan)
        hidden = logits = None
        if plan.classifier:
            hidden, logits = self._classify(classifier_input(x, pooled, plan))
        return BackboneOutputs(logits, hidden, pooled, se_bottlenecks)

    def _classify(self, pooled: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(hidden layer after its Hardswish, logits) from the pooled last conv map.

        The fully convolutional head is affine per position, so applying it to the pooled
        map equals pooling its output (up to float rounding), at 1/(F*T) of the cost.
        """
        if self.head == "mlp":
            return mlp_head(self.classifier, pooled)
        logits = self.classifier[1](self.classifier[0](pooled[:, :, None, None]))
        return None, logits.flatten(1)

    def num_parameters(self) -> int:
        """Trainable parameters (BatchNorm running statistics not counted)."""
        return sum(p.numel() for p in self.parameters())


def concatenate_taps(
    features: tuple[str, ...], outputs: BackboneOutputs, mels: torch.Tensor
) -> torch.Tensor:
    """Concatenate the requested taps of one forward pass; ``mels`` is (batch, n_mels, frames)."""
    parts: list[torch.Tensor] = []
    for name in features:
        tap = TAPS[name]
        if tap.mels:
            parts.append(mels.mean(-1))
        parts.extend(outputs.pooled[k] for k in tap.components)
        parts.extend(outputs.se_bottlenecks[k] for k in tap.squeeze_excite)
        if tap.head:
            parts.append(outputs.hidden if tap.head == "hidden" else outputs.logits)
    return torch.cat(parts, dim=1)
