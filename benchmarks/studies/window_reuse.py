"""How many multiply-accumulates exact reuse between overlapping timestamp windows could save,
counted before building it (issue 25's "measure the MAC saving first").

    python benchmarks/studies/window_reuse.py                 # mn04, mn10, mn40_ext
    python benchmarks/studies/window_reuse.py --smoke --json /tmp/reuse.json   # does it run?

Neighbouring 160 ms windows (16 log-mel frames) start 50 ms (5 frames) apart. A layer's output
position is the same in every window that holds it only while (a) no squeeze-excitation has
run yet (its gate is a mean over the whole window) and (b) it is computed on the signal's
common grid: with a cumulative time stride S, window w's positions sit at 5w + S t, so the
windows fall into S phases (5 and S share no factor), each phase a grid over the whole signal.
Computing a layer once per phase costs S x (frames / S) = frames positions against
windows x (16 / S) per window: 5S / 16 of it. So a layer before the first SE gains at most
1 - 5S / 16 of its MACs, and nothing at S >= 4; the positions near a window's edges (its zero
padding, its own mirrored STFT frames) gain nothing either, which this upper bound ignores.
MACs are counted on one window by hooks on every convolution and linear layer.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the harness
import harness  # noqa: E402

import hear_mn  # noqa: E402
from hear_mn.models.efficientat.mobilenet_network import ChannelSqueezeExcite  # noqa: E402

MODELS = ("mn04_e1_l", "mn10_e1_l", "mn40_ext_e1_l")


def layer_macs(model: object) -> tuple[list[dict], int, float]:
    """Per layer of one timestamp window, in order: MACs, cumulative time stride, whether an SE
    ran before it; and the window's frames and the windows' hop in frames."""
    frames = model.frontend.num_frames(model.windows.size)
    hop_frames = model.windows.hop / model.frontend.hop_length
    layers: list[dict] = []
    seen_se = False

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal seen_se
        if isinstance(module, ChannelSqueezeExcite):
            seen_se = True
            return
        if isinstance(module, nn.Conv2d):
            per_output = (
                module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            )
            stride = frames / output.shape[-1]
        else:  # Linear: one vector per window
            per_output, stride = module.in_features, float(frames)
        layers.append(
            {
                "macs": int(output.numel() * per_output),
                "stride": stride,
                "after_se": seen_se,
            }
        )

    handles = [
        module.register_forward_hook(hook)
        for module in model.backbone.modules()
        if isinstance(module, (nn.Conv2d, nn.Linear, ChannelSqueezeExcite))
    ]
    try:
        with torch.inference_mode():
            model.backbone(torch.zeros(1, 1, model.frontend.n_mels, frames))
    finally:
        for handle in handles:
            handle.remove()
    return layers, frames, hop_frames


def reuse_bound(name: str) -> dict[str, object]:
    """The most exact window reuse could save of ``name``'s per-window MACs."""
    model = hear_mn.create_model(name, pretrained=False)
    layers, frames, hop = layer_macs(model)
    total = sum(layer["macs"] for layer in layers)
    saved = 0.0
    for layer in layers:
        phase_cost = hop * layer["stride"] / frames
        if not layer["after_se"] and phase_cost < 1:
            saved += layer["macs"] * (1 - phase_cost)
    reusable = sum(layer["macs"] for layer in layers if not layer["after_se"])
    return {
        "model": name,
        "window_frames": frames,
        "hop_frames": hop,
        "macs_per_window": total,
        "before_first_se": reusable / total,
        "saving_upper_bound": saved / total,
    }


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--models", default=",".join(MODELS))
    args = harness.parse_args(parser)
    models = args.models.split(",")[:1] if args.smoke else args.models.split(",")
    rows = [reuse_bound(name) for name in models]
    table = harness.markdown_table(
        ["model", "MMAC per window", "share before the first SE", "saving, upper bound"],
        [
            [
                row["model"],
                f"{row['macs_per_window'] / 1e6:.2f}",
                f"{row['before_first_se']:.1%}",
                f"{row['saving_upper_bound']:.1%}",
            ]
            for row in rows
        ],
    )
    harness.report(args, {"results": rows}, table)


if __name__ == "__main__":
    main()
