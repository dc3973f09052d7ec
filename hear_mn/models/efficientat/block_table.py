"""The EfficientAT MobileNetV3 block table and the shapes of every tap it gives, without torch.

The network (:mod:`hear_mn.models.efficientat.mobilenet_network`,
:mod:`hear_mn.models.efficientat.dymn_network`) is built from this table, and the family
registrations read the same table for embedding sizes, so that naming, listing and sizing
configurations need no torch. Also the backbone plan (which taps one forward pass must
produce).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# The registered names of the two families (hear_mn.config.FAMILIES), which their model
# classes carry too.
MOBILENET_FAMILY = "mobilenet"
DYMN_FAMILY = "dymn"
NUM_CLASSES = 527


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
# Feature components: features[0] (the stem), features[1..15] (the blocks), features[16].
NUM_COMPONENTS = len(BLOCKS) + 2
LAST_COMPONENT = NUM_COMPONENTS - 1
# The strides of the four stride-2 blocks as released (features 2, 4, 7 and 13); the
# fully convolutional checkpoints mn10_as_fc_s2221 / _s2211 keep more resolution.
DEFAULT_STRIDES = (2, 2, 2, 2)
HEADS = ("mlp", "fully_convolutional")


def block_specs(width: float, strides: tuple[int, ...] = DEFAULT_STRIDES) -> list[BlockSpec]:
    """The block table at ``width``, with ``strides`` for its stride-2 blocks, in order."""
    downsampling = [index for index, spec in enumerate(BLOCKS) if spec.stride > 1]
    if len(strides) != len(downsampling) or any(s not in (1, 2) for s in strides):
        raise ValueError(
            f"strides must be {len(downsampling)} values of 1 or 2 (one per downsampling "
            f"block), got {strides!r}"
        )
    specs = [spec.scaled(width) for spec in BLOCKS]
    for index, stride in zip(downsampling, strides):
        specs[index] = replace(specs[index], stride=stride)
    return specs


def _conv_output(size: int, kernel: int, stride: int) -> int:
    return (size + 2 * ((kernel - 1) // 2) - kernel) // stride + 1


@dataclass(frozen=True)
class FeatureInfo:
    """Shapes of what a backbone configuration can tap, derived from the block table.

    ``channels[k]`` and ``freq_bins[k]`` describe the output map of feature component k
    for ``n_mels`` input bands; ``squeezed[k]`` is the SE bottleneck size of component k
    (components with squeeze-excitation only); ``hidden`` is the classifier's hidden size
    (None for the fully convolutional head, which has no hidden layer).
    """

    n_mels: int
    channels: tuple[int, ...]
    freq_bins: tuple[int, ...]
    squeezed: dict[int, int]
    hidden: int | None
    num_classes: int = NUM_CLASSES


def feature_info(
    width: float,
    n_mels: int,
    strides: tuple[int, ...] = DEFAULT_STRIDES,
    head: str = "mlp",
) -> FeatureInfo:
    """What :class:`MobileNet` ``(width, strides, head)`` outputs at each tap, for ``n_mels`` bands."""
    specs = block_specs(width, strides)
    channels = [make_divisible(STEM_CHANNELS * width)]
    freq = [_conv_output(n_mels, 3, 2)]
    squeezed = {}
    for index, spec in enumerate(specs, start=1):
        channels.append(spec.out_channels)
        freq.append(_conv_output(freq[-1], spec.kernel, spec.stride))
        if spec.squeeze_excite:
            squeezed[index] = make_divisible(spec.expanded // 4)
    channels.append(LAST_CONV_FACTOR * specs[-1].out_channels)
    freq.append(freq[-1])
    hidden = make_divisible(HIDDEN_CHANNELS * width) if head == "mlp" else None
    return FeatureInfo(n_mels, tuple(channels), tuple(freq), squeezed, hidden)


Pooling = Callable[["torch.Tensor"], "torch.Tensor"]


def global_average(x: torch.Tensor) -> torch.Tensor:
    """(batch, C, F, T) -> (batch, C): the mean over frequency and time."""
    return x.mean((2, 3))


@dataclass(frozen=True)
class BackbonePlan:
    """What one forward pass must produce, so that it computes no more than that.

    ``pooled`` maps a feature component to the pooling of its output map (the classifier
    pools component 16 by :func:`global_average`, whatever it maps to); ``classifier`` asks for the
    hidden layer and logits; the pass stops after component ``last`` (-1: nothing to run).
    """

    pooled: Mapping[int, Pooling] = field(default_factory=dict)
    classifier: bool = False
    last: int = LAST_COMPONENT

    def __post_init__(self) -> None:
        needed = max([*self.pooled, LAST_COMPONENT if self.classifier else -1])
        if needed > self.last or self.last > LAST_COMPONENT:
            raise ValueError(f"plan stops after component {self.last} but needs {needed}")


# Every tap of the network, mean-pooled: what a plain call of a backbone returns.
FULL_PLAN = BackbonePlan(dict.fromkeys(range(NUM_COMPONENTS), global_average), classifier=True)


def dymn_feature_info(width: float, n_mels: int) -> FeatureInfo:
    """What a DyMN of ``width`` outputs at each tap: the MobileNet's shapes, no SE."""
    return replace(feature_info(width, n_mels), squeezed={})
