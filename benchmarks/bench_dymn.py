"""Speed of DyMN in hear-mn: our batched formulation against the alternatives, in one run.

DyMN's kernels differ per sample, so a batch of windows cannot run as one ordinary
convolution. Per model (dymn04, dymn10) and thread count, timed in alternation (medians):

* ``ours``: hear-mn's formulation (``hear_mn.models.efficientat.dymn_network.DynamicConv``:
  per-sample kernels in one batched matrix product or one depthwise convolution, inputs mixed instead of kernels on
  small maps, kernel taps that only meet padding cut off);
* ``groups=batch``: the original's formulation, every dynamic convolution as one grouped
  convolution with a group per sample, in the same embedder (same windows and batches);
* ``loop``: the same network one window (timestamps) or one clip (scene) per pass;
* ``mnXX``: the MobileNet of the same width and features (mn04_e1_l, mn10_e1_l).

Weights: the project's random checkpoints with BatchNorm statistics measured on audio-like
input (``../shared/fixtures``: dymnXX_seed1.pt, mnXX_seed1.pt) where they exist, else random
weights with statistics measured on the benchmark's noise (:func:`calibrate_batchnorm`).
Either way activations have a realistic range; differences between contenders are float
rounding (a random network with calibrated statistics amplifies it more: its outputs move
as much under a 1e-7 relative change of its input).

Also the multiply-accumulates per 10 s that hear-mn's hook counter (``hear_mn.complexity``)
counts, next to the published figures (EfficientAT README). Machines here are noisy:
compare ratios, not absolute seconds.

    python benchmarks/bench_dymn.py --repeats 3 --json benchmarks/results/dymn.json
    python benchmarks/bench_dymn.py --smoke --json /tmp/dymn.json   # does it run?
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import harness
import torch
import torch.nn.functional as F
from bench_speed import interleaved_medians, per_window_loop

from hear_mn.complexity import model_complexity
from hear_mn.models.efficientat.dymn_network import DynamicConv
from hear_mn.registry import create_model, get_config

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
# DyMN configuration -> the MobileNet with the same taps (clf1 + logits = e1 + l).
PAIRS = {"dymn04_clf1_logits": "mn04_e1_l", "dymn10_clf1_logits": "mn10_e1_l"}
# Published (EfficientAT README): GMACs per 10 s and parameters (millions).
PUBLISHED = {
    "dymn04_clf1_logits": (0.12, 1.97),
    "dymn10_clf1_logits": (0.58, 10.57),
    "dymn20_clf1_logits": (2.2, 40.02),
    "mn04_e1_l": (0.11, 0.98),
    "mn10_e1_l": (0.54, 4.88),
}


def _grouped_forward(self: DynamicConv, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """The original's formulation: one convolution with a group per sample (and channel
    group), each with that sample's mixed kernel."""
    batch, channels, freq, time = x.shape
    kernel = self.kernel_size[0]
    weight = self.mixed_weight(context).view(
        batch * self.out_channels, channels // self.groups, kernel, kernel
    )
    out = F.conv2d(
        x.reshape(1, batch * channels, freq, time),
        weight,
        None,
        self.stride,
        (kernel - 1) // 2,
        groups=self.groups * batch,
    )
    return out.view(batch, self.out_channels, out.shape[2], out.shape[3])


@contextmanager
def grouped_formulation() -> Iterator[None]:
    """Run every DynamicConv with :func:`_grouped_forward` inside the block."""
    ours = DynamicConv.forward
    DynamicConv.forward = _grouped_forward
    try:
        yield
    finally:
        DynamicConv.forward = ours


def _grouped(run: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
    def wrapped() -> torch.Tensor:
        with grouped_formulation():
            return run()

    return wrapped


def calibrate_batchnorm(model: torch.nn.Module, audio: torch.Tensor) -> None:
    """Measure ``model``'s BatchNorm statistics on ``audio``, as the fixtures' random weights
    were made: with the default statistics a random DyMN's activations vanish towards
    denormal floats (outputs ~1e-15), which are slow and lose precision."""
    for module in model.backbone.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the calibration batch
    model.backbone.train()
    with torch.no_grad():
        mels = model.frontend(audio)[:, None]
        model.backbone(mels.contiguous(memory_format=torch.channels_last))
    model.eval()


def _model(name: str, calibration: torch.Tensor) -> torch.nn.Module:
    """Configuration ``name`` with the fixtures' random weights of its architecture, else
    random weights with BatchNorm statistics measured on ``calibration``."""
    arch = name.split("_")[0]
    for folder in ("dymn", "reference"):
        weights = FIXTURES / folder / f"{arch}_seed1.pt"
        if weights.exists():
            return create_model(name, weights=weights)
    model = create_model(name, pretrained=False)
    calibrate_batchnorm(model, calibration)
    return model


def _relative(other: torch.Tensor, ours: torch.Tensor) -> float:
    return float((other - ours).abs().max() / ours.abs().max())


def bench_pair(name: str, seconds: int, clips: int, repeats: int, threads: int) -> list[dict]:
    """Rows (timestamps, scene) of DyMN configuration ``name`` and its MobileNet."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    audio = 0.1 * torch.randn(1, seconds * 32000, generator=generator)
    scene_clips = 0.1 * torch.randn(clips, 10 * 32000, generator=generator)
    model, mobilenet = (_model(config, scene_clips[:4]) for config in (name, PAIRS[name]))

    def timestamps() -> torch.Tensor:
        return model.timestamp_embeddings(audio)[0]

    def scene() -> torch.Tensor:
        return model.scene_embeddings(scene_clips)

    def scene_loop() -> torch.Tensor:
        return torch.cat([model.scene_embeddings(clip[None]) for clip in scene_clips])

    calls = {
        f"timestamps, {seconds} s": {
            "ours": timestamps,
            "groups=batch": _grouped(timestamps),
            "loop": lambda: per_window_loop(model, audio),
            PAIRS[name]: lambda: mobilenet.timestamp_embeddings(audio)[0],
        },
        f"scene, {clips} clips of 10 s": {
            "ours": scene,
            "groups=batch": _grouped(scene),
            "loop": scene_loop,
            PAIRS[name]: lambda: mobilenet.scene_embeddings(scene_clips),
        },
    }
    rows = []
    for call, runs in calls.items():
        with torch.inference_mode():
            ours = runs["ours"]()
            differences = {
                label: _relative(runs[label](), ours) for label in ("groups=batch", "loop")
            }
        seconds_by = interleaved_medians(runs, repeats)
        rows.append(
            {
                "model": name,
                "threads": threads,
                "call": call,
                "seconds": seconds_by,
                "x_ours": {label: s / seconds_by["ours"] for label, s in seconds_by.items()},
                "max_relative_difference": differences,
            }
        )
    return rows


def complexity_rows(names: list[str]) -> list[dict]:
    """Parameters and GMACs per 10 s counted by hear-mn, and the published figures."""
    rows = []
    for name in names:
        gmacs, millions = PUBLISHED[name]
        params, macs = model_complexity(get_config(name), 10.0)
        rows.append(
            {
                "model": name,
                "gmacs_10s": macs / 1e9,
                "published_gmacs_10s": gmacs,
                "params_m": params / 1e6,
                "published_params_m": millions,
            }
        )
    return rows


def table(rows: list[dict], complexity: list[dict]) -> str:
    lines = [
        f"{'model':<20} {'thr':>3} {'call':<26} {'ours s':>7} {'groups=batch':>13} "
        f"{'loop':>7} {'MobileNet':>14} {'max rel diff':>13}"
    ]
    for row in rows:
        x = row["x_ours"]
        mobilenet = PAIRS[row["model"]]
        lines.append(
            f"{row['model']:<20} {row['threads']:>3} {row['call']:<26} "
            f"{row['seconds']['ours']:7.3f} {x['groups=batch']:12.2f}x {x['loop']:6.2f}x "
            f"{mobilenet:>9} {x[mobilenet]:4.2f}x "
            f"{max(row['max_relative_difference'].values()):13.1e}"
        )
    lines.append(
        f"\n{'model':<20} {'GMAC/10 s':>10} {'published':>10} {'params M':>9} {'published':>10}"
    )
    lines += [
        f"{row['model']:<20} {row['gmacs_10s']:10.3f} {row['published_gmacs_10s']:10.2f} "
        f"{row['params_m']:9.2f} {row['published_params_m']:10.2f}"
        for row in complexity
    ]
    return "\n".join(lines)


def main() -> None:
    parser = harness.parser(__doc__, repeats=3, threads="1,2", several_threads=True)
    parser.add_argument("--models", default=",".join(PAIRS))
    parser.add_argument("--seconds", type=int, default=20, help="audio length for timestamps")
    parser.add_argument("--clips", type=int, default=16, help="clips of 10 s in the scene batch")
    args = harness.parse_args(parser)
    if args.smoke:
        args.models, args.seconds, args.clips = next(iter(PAIRS)), 1, 2
        args.threads = args.threads[:1]
    models = args.models.split(",")
    rows = [
        row
        for threads in args.threads
        for name in models
        for row in bench_pair(name, args.seconds, args.clips, args.repeats, threads)
    ]
    names = [*models, *(PAIRS[name] for name in models)] if args.smoke else list(PUBLISHED)
    complexity = complexity_rows(names)
    payload = {"torch": torch.__version__, "rows": rows, "complexity": complexity}
    harness.report(args, payload, table(rows, complexity))


if __name__ == "__main__":
    main()
