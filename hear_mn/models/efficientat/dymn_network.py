"""EfficientAT's dynamic MobileNets (DyMN) for log-mel input, and what they can tap.

DyMN (Schmid, Koutini, Widmer, "Dynamic Convolutional Neural Networks as Efficient Pre-trained Audio
Models") keeps MobileNetV3's block table
(:data:`hear_mn.models.efficientat.mobilenet_network.BLOCKS`) and makes every block input-dependent.
A block's *context generator* summarises its input by frequency and time averages into a context
vector and two gate sequences; the context mixes ``NUM_KERNELS`` kernels per sample in each of the
three convolutions (dynamic convolution, softmax at temperature 1 as released for AudioSet) and sets
the per-channel pieces of a Dy-ReLU-B after the depthwise convolution; the sequences gate the map by
frequency and time (coordinate attention) before the projection. There is no squeeze-excitation.
Module names follow the released state dicts, so they load strictly.

Batches are exact and fast, as a convolution is linear in its weights (:class:`DynamicConv`):
a 1x1 convolution forms each sample's kernel once and applies all of them in one batched
matrix product, or, on maps of a few positions (late blocks of 160 ms windows), scales the
inputs by the mixture instead and runs one matrix product with the K stacked kernels; the
depthwise one is a single depthwise convolution over every sample's channels, its kernels
cut to the taps that can meet the map. ``benchmarks/bench_dymn.py`` measures it against the
original's grouped convolution (a group per sample), a loop over windows and the MobileNets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hear_mn.config import ModelConfig
from hear_mn.models.efficientat.block_table import (
    DEFAULT_STRIDES,
    DYMN_FAMILY,
    FULL_PLAN,
    LAST_CONV_FACTOR,
    STEM_CHANNELS,
    BackbonePlan,
    BlockSpec,
    block_specs,
    dymn_feature_info,
    make_divisible,
)
from hear_mn.models.efficientat.efficientat_embedder import EfficientATEmbedder
from hear_mn.models.efficientat.mobilenet_network import (
    BN_EPS,
    BackboneOutputs,
    ConvBNAct,
    classifier_input,
    init_weights,
    mlp_classifier,
    mlp_head,
    run_components,
)
from hear_mn.run_options import RunOptions

NUM_KERNELS = 4  # kernels mixed by each dynamic convolution (K)
RELU_PIECES = 2  # linear pieces of Dy-ReLU-B (M)
TEMPERATURE = 1.0  # of the kernel attention, the final value of the AudioSet training
CONTEXT_RATIO = 4
MIN_CONTEXT = 32
MAX_CONTEXT = 128
# A 1x1 dynamic convolution on maps of at most this many positions mixes inputs instead of
# kernels (see DynamicConv): measured on one CPU thread, per-sample kernels of a 160 -> 960
# conv cost more than the conv itself on 8 positions (339 ms vs 63 ms for 512 windows),
# about the same on 64, and less from there on; for smaller convs the turn comes earlier.
MIX_INPUTS_MAX_POSITIONS = 16
# Dy-ReLU-B: piece coefficients are init + lambda * (2 sigmoid(.) - 1), slopes then offsets.
RELU_LAMBDAS = (1.0, 1.0, 0.5, 0.5)
RELU_INIT = (1.0, 0.0, 0.0, 0.0)


def context_size(spec: BlockSpec, width: float) -> int:
    """H, the context size of a block (``spec`` already scaled to ``width``)."""
    low = make_divisible(MIN_CONTEXT * width)
    high = make_divisible(MAX_CONTEXT * width)
    return min(max(make_divisible(spec.expanded // CONTEXT_RATIO), low), high)


class DynamicConv(nn.Module):
    """A convolution whose kernel is a per-sample mixture of ``NUM_KERNELS`` kernels.

    The mixture weights are softmax(Linear(context) / T). Parameters in the released layout:
    ``weight`` (1, 1, K, out * in/groups * k * k) and ``residuals.0`` (the Linear). Only
    1x1 convolutions and depthwise ones (``depthwise=True``) occur in DyMN; no bias.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        context: int,
        kernel: int = 1,
        stride: int = 1,
        depthwise: bool = False,
    ) -> None:
        super().__init__()
        if depthwise and in_channels != out_channels:
            raise ValueError("a depthwise convolution keeps its channels")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = in_channels if depthwise else 1
        self.kernel_size = (kernel, kernel)
        self.stride = stride
        self.temperature = TEMPERATURE
        # Multiply-accumulates per output element (read by hear_mn.complexity).
        self.macs_per_output = in_channels // self.groups * kernel * kernel
        self.residuals = nn.Sequential(nn.Linear(context, NUM_KERNELS))
        self.weight = nn.Parameter(
            torch.empty(1, 1, NUM_KERNELS, out_channels * self.macs_per_output)
        )
        for bank in self.weight.view(NUM_KERNELS, out_channels, -1, kernel, kernel):
            nn.init.kaiming_normal_(bank, mode="fan_out")

    def mixed_weight(self, context: torch.Tensor) -> torch.Tensor:
        """(batch, out * in/groups * k * k): each sample's kernel."""
        return self.attention(context) @ self.weight.view(NUM_KERNELS, -1)

    def attention(self, context: torch.Tensor) -> torch.Tensor:
        """(batch, K): each sample's mixture of the kernels."""
        return torch.softmax(self.residuals(context) / self.temperature, dim=1)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        if self.groups > 1:
            return self._depthwise(x, context)
        batch, channels, freq, time = x.shape
        if freq * time <= MIX_INPUTS_MAX_POSITIONS:
            return self._mixing_inputs(x, context)
        weight = self.mixed_weight(context).view(batch, self.out_channels, channels)
        out = torch.bmm(weight, x.reshape(batch, channels, freq * time))
        return out.view(batch, self.out_channels, freq, time)

    def _mixing_inputs(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """sum_k a_k (W_k x) = [W_1 ... W_K] [a_1 x; ...; a_K x]: one matrix product for the
        whole batch with the stacked kernels, no per-sample kernel (1x1 only)."""
        batch, channels, freq, time = x.shape
        rows = x.flatten(2).transpose(1, 2)  # (batch, positions, in)
        scaled = rows[:, :, None, :] * self.attention(context)[:, None, :, None]
        stacked = self.weight.view(NUM_KERNELS, self.out_channels, channels).transpose(1, 2)
        scaled = scaled.reshape(-1, NUM_KERNELS * channels)
        stacked = stacked.reshape(NUM_KERNELS * channels, self.out_channels)
        out = scaled @ stacked
        return out.view(batch, freq, time, self.out_channels).permute(0, 3, 1, 2)

    def _depthwise(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """One depthwise convolution over every sample's channels with its own kernels.

        Kernel taps more than a map's size away from the centre only ever meet padding, so
        they are cut off (exact): in 160 ms windows the late maps are one frame wide.
        """
        batch, channels, freq, time = x.shape
        kernel = self.kernel_size[0]
        half = (kernel - 1) // 2
        weight = self.mixed_weight(context).view(batch * channels, 1, kernel, kernel)
        pad_f, pad_t = min(half, freq - 1), min(half, time - 1)
        weight = weight[:, :, half - pad_f : half + pad_f + 1, half - pad_t : half + pad_t + 1]
        out = F.conv2d(
            x.reshape(1, batch * channels, freq, time),
            weight,
            None,
            self.stride,
            (pad_f, pad_t),
            groups=batch * channels,
        )
        return out.view(batch, channels, out.shape[2], out.shape[3])


class DyReLUB(nn.Module):
    """Dy-ReLU-B: max over ``RELU_PIECES`` per-channel linear maps set by the context.

    ``lambdas`` and ``init_v`` are constants, stored in the checkpoints as buffers.
    """

    def __init__(self, channels: int, context: int) -> None:
        super().__init__()
        self.channels = channels
        self.coef_net = nn.Sequential(nn.Linear(context, 2 * RELU_PIECES * channels))
        self.register_buffer("lambdas", torch.tensor(RELU_LAMBDAS))
        self.register_buffer("init_v", torch.tensor(RELU_INIT))

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        theta = 2 * torch.sigmoid(self.coef_net(context)) - 1
        coefs = theta.view(-1, self.channels, 2 * RELU_PIECES) * self.lambdas + self.init_v
        coefs = coefs[:, :, :, None, None]
        first = torch.addcmul(coefs[:, :, 2], x, coefs[:, :, 0])
        return torch.maximum(first, torch.addcmul(coefs[:, :, 3], x, coefs[:, :, 1]))


class PointwiseConv(nn.Conv2d):
    """A 1x1 ``nn.Conv2d`` (same parameters, counted as one) applied as a matrix product over
    channels: on the context generator's short sequences it skips the per-shape setup of a
    oneDNN convolution, which dominated the first pass of each new batch shape."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x.movedim(1, -1), self.weight.flatten(1), self.bias)
        return out.movedim(-1, 1)


class ContextGenerator(nn.Module):
    """A block input's frequency and time averages -> (context vector, frequency gates,
    time gates).

    Both averaged sequences go through one shared 1x1 conv + BN + Hardswish (H channels); the
    context is the mean over all their positions, and two 1x1 convs make the coordinate
    attention logits of the expanded channels, average-pooled (kernel 3) in stride-2 blocks.
    """

    def __init__(self, in_channels: int, context: int, expanded: int, stride: int) -> None:
        super().__init__()
        self.joint_conv = PointwiseConv(in_channels, context, bias=False)
        self.joint_norm = nn.BatchNorm2d(context, eps=BN_EPS)
        self.joint_act = nn.Hardswish()
        self.conv_f = PointwiseConv(context, expanded)
        self.conv_t = PointwiseConv(context, expanded)
        self.stride = stride

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(batch, H) context, (batch, E, F', 1) frequency and (batch, E, 1, T') time logits."""
        freq = x.shape[2]
        sequences = torch.cat([x.mean(3, keepdim=True), x.mean(2, keepdim=True).transpose(2, 3)], 2)
        hidden = self.joint_act(self.joint_norm(self.joint_conv(sequences)))
        context = hidden.mean((2, 3))
        by_freq, by_time = hidden[:, :, :freq], hidden[:, :, freq:]
        if self.stride > 1:
            by_freq = F.avg_pool2d(by_freq, (3, 1), (self.stride, 1), (1, 0))
            by_time = F.avg_pool2d(by_time, (3, 1), (self.stride, 1), (1, 0))
        return context, self.conv_f(by_freq), self.conv_t(by_time).transpose(2, 3)


class DynamicBlock(nn.Module):
    """Dynamic inverted residual: context -> dynamic expand (1x1) + BN + ReLU/Hardswish ->
    dynamic depthwise + BN + Dy-ReLU-B -> coordinate attention -> dynamic project + BN,
    residual when stride 1 and the channels stay."""

    def __init__(self, spec: BlockSpec, width: float) -> None:
        super().__init__()
        context = context_size(spec, width)
        expanded = spec.expanded
        self.exp_conv: DynamicConv | None = None
        if expanded != spec.in_channels:
            self.exp_conv = DynamicConv(spec.in_channels, expanded, context)
            self.exp_norm = nn.BatchNorm2d(expanded, eps=BN_EPS)
            self.exp_act = nn.Hardswish() if spec.hardswish else nn.ReLU()
        self.depth_conv = DynamicConv(
            expanded, expanded, context, spec.kernel, spec.stride, depthwise=True
        )
        self.depth_norm = nn.BatchNorm2d(expanded, eps=BN_EPS)
        self.depth_act = DyReLUB(expanded, context)
        self.proj_conv = DynamicConv(expanded, spec.out_channels, context)
        self.proj_norm = nn.BatchNorm2d(spec.out_channels, eps=BN_EPS)
        self.context_gen = ContextGenerator(spec.in_channels, context, expanded, spec.stride)
        self.residual = spec.stride == 1 and spec.in_channels == spec.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context, freq_logits, time_logits = self.context_gen(x)
        out = x
        if self.exp_conv is not None:
            out = self.exp_act(self.exp_norm(self.exp_conv(out, context)))
        out = self.depth_act(self.depth_norm(self.depth_conv(out, context)), context)
        out = out * torch.sigmoid(freq_logits) * torch.sigmoid(time_logits)
        out = self.proj_norm(self.proj_conv(out, context))
        return out + x if self.residual else out


class DyMN(nn.Module):
    """A dynamic MobileNet of width ``width`` on (batch, 1, mels, frames) log-mel input.

    Feature components as in :class:`hear_mn.models.efficientat.mobilenet_network.MobileNet`: 0 is
    ``in_c`` (3x3 conv, stride 2), 1 ... 15 the dynamic blocks (``layers``), 16 ``out_c``; the head
    pools, then Linear, Hardswish, Dropout, Linear to the 527 AudioSet classes.
    """

    head = "mlp"
    strides = DEFAULT_STRIDES

    def __init__(self, width: float) -> None:
        super().__init__()
        self.width = width
        specs = block_specs(width)
        last = specs[-1].out_channels
        last_conv = LAST_CONV_FACTOR * last
        self.in_c = ConvBNAct(
            1, make_divisible(STEM_CHANNELS * width), 3, stride=2, activation=nn.Hardswish
        )
        self.layers = nn.ModuleList(DynamicBlock(spec, width) for spec in specs)
        self.out_c = ConvBNAct(last, last_conv, activation=nn.Hardswish)
        self.classifier = mlp_classifier(last_conv, width)
        init_weights(self)

    def components(self) -> list[nn.Module]:
        """Feature components 0 ... 16 in order."""
        return [self.in_c, *self.layers, self.out_c]

    def forward(self, mels: torch.Tensor, plan: BackbonePlan = FULL_PLAN) -> BackboneOutputs:
        """The taps ``plan`` asks for (no SE bottlenecks: DyMN has none)."""
        x, pooled, _ = run_components(self.components(), mels.contiguous(), plan)
        hidden = logits = None
        if plan.classifier:
            hidden, logits = mlp_head(self.classifier, classifier_input(x, pooled, plan))
        return BackboneOutputs(logits, hidden, pooled, {})

    def num_parameters(self) -> int:
        """Trainable parameters (BatchNorm running statistics and Dy-ReLU constants not counted)."""
        return sum(p.numel() for p in self.parameters())


class DyMNEmbedder(EfficientATEmbedder):
    """The DyMN of ``config`` (its checkpoint's width, on 128 log-mel bands as released);
    windowing, batching, streaming and the other settings are the MobileNets'
    (:class:`~hear_mn.models.efficientat.efficientat_embedder.EfficientATEmbedder`), the ONNX export
    and backend included (:mod:`hear_mn.models.efficientat.dymn_graph`: the graph's dynamic
    convolutions)."""

    family = DYMN_FAMILY
    # Runs as built. Folding BatchNorm into the kernel banks gained nothing measurable
    # (dymn10, one thread, as built vs folded: 805 vs 865 ms for 256 windows, 223 vs 228 ms
    # for 4 x 10 s) and doubled the rounding difference to the reference.
    default_inference_rewrite = None

    def __init__(self, config: ModelConfig, run: RunOptions | None = None) -> None:
        width = config.checkpoint.width
        info = dymn_feature_info(width, config.checkpoint.n_mels)
        super().__init__(config, run or RunOptions(), backbone=DyMN(width), info=info)
