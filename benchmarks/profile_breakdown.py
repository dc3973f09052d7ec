"""Where the time goes: frontend, backbone and glue of one call, measured in the same run.

Times the full call, then the log-mel frontend alone (as the call runs it: shared frames
for overlapping windows) and the inference backbone alone on the same inputs; glue is the
rest (window spans, taps, copies, checks).

    python benchmarks/profile_breakdown.py --models mn04_e1_l,mn10_e1_l
    python benchmarks/profile_breakdown.py --smoke --json /tmp/profile.json   # does it run?
"""

from __future__ import annotations

import harness
import torch
from bench_speed import interleaved_medians

from hear_mn.models.efficientat.efficientat_embedder import SCENE_WINDOWS_PER_PASS
from hear_mn.registry import create_model

MODELS = ("mn04_e1_l", "mn10_e1_l")


def breakdown(name: str, repeats: int, seconds: float = 20, clips_count: int = 16) -> list[dict]:
    """Per call (scene of ``clips_count`` clips of 10 s, timestamps of ``seconds`` s): the
    total time and the fractions spent in the frontend, the backbone and the rest."""
    torch.manual_seed(0)
    model = create_model(name, pretrained=False)
    generator = torch.Generator().manual_seed(1)
    clips = 0.1 * torch.randn(clips_count, 10 * model.sample_rate, generator=generator)
    audio = 0.1 * torch.randn(1, int(seconds * model.sample_rate), generator=generator)
    n_windows = model.windows.count(audio.shape[1])
    scene_per_pass = SCENE_WINDOWS_PER_PASS
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
        (
            f"scene, {clips_count} clips of 10 s",
            lambda: model.scene_embeddings(clips),
            scene_mels,
        ),
        (f"timestamps, {seconds:g} s", lambda: model.timestamp_embeddings(audio), timestamp_mels),
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


def table(rows: list[dict]) -> str:
    lines = [
        f"{'model':<11} {'call':<24} {'total s':>8} {'frontend':>9} {'backbone':>9} {'glue':>6}"
    ]
    lines += [
        f"{r['model']:<11} {r['call']:<24} {r['total_s']:8.3f} {r['frontend_fraction']:9.0%} "
        f"{r['backbone_fraction']:9.0%} {r['glue_fraction']:6.0%}"
        for r in rows
    ]
    return "\n".join(lines)


def main() -> None:
    parser = harness.parser(__doc__, repeats=3)
    parser.add_argument("--models", default=",".join(MODELS))
    args = harness.parse_args(parser)
    seconds, clips = (1, 2) if args.smoke else (20, 16)
    models = MODELS[:1] if args.smoke else args.models.split(",")
    torch.set_num_threads(args.threads)
    rows = [row for name in models for row in breakdown(name, args.repeats, seconds, clips)]
    harness.report(args, {"results": rows}, table(rows))


if __name__ == "__main__":
    main()
