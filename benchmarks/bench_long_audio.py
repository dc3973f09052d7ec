"""Peak memory and time for an hour of audio: timestamp and scene embeddings.

Each measurement runs in a fresh subprocess (:func:`harness.run_child`) so that its peak
resident memory (ru_maxrss) is its own. Reported: input bytes, output bytes, and the peak
above (resident memory before the call + output), i.e. the working set the embedding needed.

    python benchmarks/bench_long_audio.py --model mn04_e1_l --minutes 60 --json bench_out/long.json
    python benchmarks/bench_long_audio.py --smoke --json /tmp/long.json   # does it run?
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import harness

MIB = harness.MIB
CALLS = ("timestamp", "scene")


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
    return {
        "model": model_name,
        "kind": kind,
        "audio_minutes": minutes,
        "seconds": seconds,
        "realtime_factor": seconds / (minutes * 60),
        "input_mib": audio.numel() * 4 / MIB,
        "output_mib": output / MIB,
        "rss_before_bytes": before,
        "output_bytes": output,
    }


def in_child(model: str, minutes: float, kind: str, threads: int) -> dict:
    """:func:`measure` in a fresh process, with that process's peak resident memory."""
    command = [sys.executable, __file__, "--child", kind, "--model", model]
    command += ["--minutes", str(minutes), "--threads", str(threads)]
    child = harness.run_child(command)
    row = json.loads(child.stdout.strip().splitlines()[-1])
    before, output = row.pop("rss_before_bytes"), row.pop("output_bytes")
    row["rss_before_mib"] = before / MIB
    row["peak_rss_mib"] = child.peak_rss_mib
    row["working_set_mib"] = child.peak_rss_mib - (before + output) / MIB
    return row


def main() -> None:
    parser = harness.parser(__doc__, repeats=1)
    parser.add_argument("--model", default="mn04_e1_l")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--child", choices=CALLS, help=argparse.SUPPRESS)
    args = harness.parse_args(parser)
    if args.child:
        print(json.dumps(measure(args.model, args.minutes, args.child, args.threads)))
        return
    if args.smoke:
        args.minutes = 0.05
    results = [in_child(args.model, args.minutes, kind, args.threads) for kind in CALLS]
    lines = [
        f"{args.minutes:g} min of 32 kHz audio, {args.model}, {args.threads} threads",
        f"{'kind':<10} {'seconds':>8} {'input MiB':>10} {'output MiB':>11} {'peak MiB':>9} "
        f"{'working set MiB':>16}",
    ]
    lines += [
        f"{r['kind']:<10} {r['seconds']:8.1f} {r['input_mib']:10.0f} {r['output_mib']:11.1f} "
        f"{r['peak_rss_mib']:9.0f} {r['working_set_mib']:16.0f}"
        for r in results
    ]
    harness.report(args, {"results": results}, "\n".join(lines))


if __name__ == "__main__":
    main()
