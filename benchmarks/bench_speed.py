"""Speed of hear-mn against a per-window loop of the same model, measured in the same run.

The EfficientAT HEAR reference computes timestamp embeddings with one forward pass per
160 ms window position. This script times that loop and our batched path on the same
model, checks both give the same numbers, and prints the ratio, plus scene-embedding
throughput. Machines here are noisy: compare ratios, not absolute seconds.

    python benchmarks/bench_speed.py                      # mn04, mn10; 2 threads
    python benchmarks/bench_speed.py --models mn04_e1_l --json bench_out/speed.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from hear_mn.efficientat import TIMESTAMP_HOP, TIMESTAMP_WINDOW, MobileNetEmbedder
from hear_mn.registry import create_model


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def per_window_loop(model: MobileNetEmbedder, audio: torch.Tensor) -> torch.Tensor:
    """The reference's way: pad, then one frontend + backbone pass per window position."""
    half = TIMESTAMP_WINDOW // 2
    padded = torch.nn.functional.pad(audio[:, None], (half, half), mode="reflect")[:, 0]
    n_windows = audio.shape[1] // TIMESTAMP_HOP + 1
    with torch.inference_mode():
        rows = [
            model.embed_audio(padded[:, i * TIMESTAMP_HOP : i * TIMESTAMP_HOP + TIMESTAMP_WINDOW])
            for i in range(n_windows)
        ]
    return torch.stack(rows, dim=1)


def bench_model(name: str, seconds: float, repeats: int, clips: int) -> dict:
    torch.manual_seed(0)
    model = create_model(name, pretrained=False)
    generator = torch.Generator().manual_seed(1)
    audio = 0.1 * torch.randn(1, int(seconds * model.sample_rate), generator=generator)
    ours, _ = model.timestamp_embeddings(audio)
    loop = per_window_loop(model, audio)
    difference = float((ours - loop).abs().max() / loop.abs().max())
    loop_time = median_seconds(lambda: per_window_loop(model, audio), repeats)
    ours_time = median_seconds(lambda: model.timestamp_embeddings(audio), repeats)
    scene_clip = 0.1 * torch.randn(clips, 10 * model.sample_rate, generator=generator)
    one_clip = median_seconds(lambda: model.scene_embeddings(scene_clip[:1]), repeats)
    batch = median_seconds(lambda: model.scene_embeddings(scene_clip), repeats)
    return {
        "model": name,
        "audio_seconds": seconds,
        "per_window_loop_s": loop_time,
        "batched_s": ours_time,
        "speedup": loop_time / ours_time,
        "max_relative_difference": difference,
        "scene_one_10s_clip_s": one_clip,
        f"scene_{clips}_clips_per_s": clips / batch,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mn04_e1_l,mn10_e1_l")
    parser.add_argument("--seconds", type=float, default=20.0, help="audio length for timestamps")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clips", type=int, default=16, help="clips in the scene batch")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = [
        bench_model(name, args.seconds, args.repeats, args.clips) for name in args.models.split(",")
    ]
    header = (
        f"{'model':<14} {'loop s':>8} {'ours s':>8} {'speedup':>8} {'max rel diff':>13} "
        f"{'scene 1 clip s':>15} {'scene clips/s':>14}"
    )
    lines = [header]
    for r in results:
        lines.append(
            f"{r['model']:<14} {r['per_window_loop_s']:8.3f} {r['batched_s']:8.3f} "
            f"{r['speedup']:7.1f}x {r['max_relative_difference']:13.1e} "
            f"{r['scene_one_10s_clip_s']:15.3f} {r[f'scene_{args.clips}_clips_per_s']:14.1f}"
        )
    report = "\n".join(lines)
    print(f"torch {torch.__version__}, {args.threads} threads, {platform.processor() or platform.machine()}")
    print(f"timestamp embeddings of {args.seconds:g} s audio, median of {args.repeats} after warm-up")
    print(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "torch": torch.__version__,
            "threads": args.threads,
            "machine": platform.machine(),
            "results": results,
        }
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
