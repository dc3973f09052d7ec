"""Where the time goes: frontend, backbone and glue of one call, measured in the same run.

Times the full call, then the log-mel frontend alone (as the call runs it: shared frames
for overlapping windows) and the inference backbone alone on the same inputs; glue is the
rest (window spans, taps, copies, checks).

    python benchmarks/profile_breakdown.py --models mn04_e1_l,mn10_e1_l
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from bench_speed import interleaved_medians

from hear_mn.efficientat import SCENE_SAMPLES_PER_PASS, SCENE_WINDOW
from hear_mn.registry import create_model


def breakdown(name: str, repeats: int) -> list[dict]:
    torch.manual_seed(0)
    model = create_model(name, pretrained=False)
    generator = torch.Generator().manual_seed(1)
    clips = 0.1 * torch.randn(16, 10 * model.sample_rate, generator=generator)
    audio = 0.1 * torch.randn(1, 20 * model.sample_rate, generator=generator)
    n_windows = model.windows.count(audio.shape[1])
    scene_per_pass = SCENE_SAMPLES_PER_PASS // SCENE_WINDOW
    window_passes = [
        (start, min(start + model.window_batch_size, n_windows))
        for start in range(0, n_windows, model.window_batch_size)
    ]

    def scene_mels() -> list[torch.Tensor]:
        return [model.frontend(part) for part in torch.split(clips, scene_per_pass)]

    def timestamp_mels() -> list[torch.Tensor]:
        return [model.window_mels(audio, a, b, n_windows, model.windows) for a, b in window_passes]

    rows = []
    for call, total_fn, frontend_fn in (
        ("scene, 16 clips of 10 s", lambda: model.scene_embeddings(clips), scene_mels),
        ("timestamps, 20 s", lambda: model.timestamp_embeddings(audio), timestamp_mels),
    ):
        with torch.inference_mode():
            mels = frontend_fn()
            backbone = model.inference_network()
            seconds = interleaved_medians(
                {
                    "total": total_fn,
                    "frontend": frontend_fn,
                    "backbone": lambda mels=mels, backbone=backbone: [
                        backbone(
                            m[:, None].contiguous(memory_format=torch.channels_last), model.plan
                        )
                        for m in mels
                    ],
                },
                repeats,
            )
        total, frontend, network = seconds["total"], seconds["frontend"], seconds["backbone"]
        rows.append(
            {
                "model": name,
                "call": call,
                "total_s": total,
                "frontend_fraction": frontend / total,
                "backbone_fraction": network / total,
                "glue_fraction": max(0.0, 1 - (frontend + network) / total),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mn04_e1_l,mn10_e1_l")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [row for name in args.models.split(",") for row in breakdown(name, args.repeats)]
    print(f"{'model':<11} {'call':<24} {'total s':>8} {'frontend':>9} {'backbone':>9} {'glue':>6}")
    for r in rows:
        print(
            f"{r['model']:<11} {r['call']:<24} {r['total_s']:8.3f} {r['frontend_fraction']:9.0%} "
            f"{r['backbone_fraction']:9.0%} {r['glue_fraction']:6.0%}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": rows}, indent=2))


if __name__ == "__main__":
    main()
