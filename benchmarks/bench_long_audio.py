"""Peak memory and time for an hour of audio: timestamp and scene embeddings.

Each measurement runs in a fresh subprocess so that its peak resident memory (ru_maxrss) is
its own. Reported: input bytes, output bytes, and the peak above (resident memory before the
call + output), i.e. the working set the embedding needed.

    python benchmarks/bench_long_audio.py --model mn04_e1_l --minutes 60 --json bench_out/long.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

MIB = 1024 * 1024


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def measure(model_name: str, minutes: float, kind: str, threads: int) -> dict:
    """In this process: build the model and the audio, run one call, report memory and time."""
    import torch

    from hear_mn.registry import create_model

    torch.set_num_threads(threads)
    model = create_model(model_name, pretrained=False)
    model.scene_embeddings(torch.zeros(1, model.sample_rate))  # warm-up, builds caches
    audio = torch.empty(1, int(minutes * 60 * model.sample_rate)).uniform_(-0.1, 0.1)
    before = _rss_bytes()
    start = time.perf_counter()
    if kind == "timestamp":
        embeddings, timestamps = model.timestamp_embeddings(audio)
        output = embeddings.numel() * 4 + timestamps.numel() * 4
    else:
        output = model.scene_embeddings(audio).numel() * 4
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "model": model_name,
        "kind": kind,
        "audio_minutes": minutes,
        "seconds": seconds,
        "realtime_factor": seconds / (minutes * 60),
        "input_mib": audio.numel() * 4 / MIB,
        "output_mib": output / MIB,
        "rss_before_mib": before / MIB,
        "peak_rss_mib": peak / MIB,
        "working_set_mib": (peak - before - output) / MIB,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mn04_e1_l")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", choices=["timestamp", "scene"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.model, args.minutes, args.child, args.threads)))
        return
    results = []
    for kind in ("timestamp", "scene"):
        command = [sys.executable, __file__, "--child", kind, "--model", args.model]
        command += ["--minutes", str(args.minutes), "--threads", str(args.threads)]
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"{args.minutes:g} min of 32 kHz audio, {args.model}, {args.threads} threads")
    print(
        f"{'kind':<10} {'seconds':>8} {'input MiB':>10} {'output MiB':>11} {'peak MiB':>9} {'working set MiB':>16}"
    )
    for r in results:
        print(
            f"{r['kind']:<10} {r['seconds']:8.1f} {r['input_mib']:10.0f} {r['output_mib']:11.1f} "
            f"{r['peak_rss_mib']:9.0f} {r['working_set_mib']:16.0f}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results}, indent=2))


if __name__ == "__main__":
    main()
