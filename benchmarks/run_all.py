"""Run every benchmark with one command; write results JSON and a markdown table.

    python benchmarks/run_all.py                  # full suite (about 25 min on 2 cores)
    python benchmarks/run_all.py --render         # rewrite results.md from results.json
    python benchmarks/run_all.py --quick          # shorter inputs, for a smoke run

Writes ``benchmarks/results/results.json`` and ``benchmarks/results/results.md`` (machine,
torch version, threads). ``python images/make_figures.py`` plots them.
Every number is a ratio or throughput measured side by side in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def _run(script: str, *arguments: str) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "out.json"
        command = [sys.executable, str(HERE / script), *arguments, "--json", str(out)]
        print("$", " ".join(command[1:]), flush=True)
        subprocess.run(command, check=True)
        return json.loads(out.read_text())


def _cell(row: dict, key: str, fmt: str, suffix: str = "") -> str:
    return format(row[key], fmt) + suffix if key in row else "-"


def markdown(results: dict) -> str:
    env = results["environment"]
    lines = [
        f"Machine: {env['machine']}, {env['cpus']} CPUs; torch {env['torch']}; "
        f"{env['threads']} threads unless noted.",
        "",
        "Timestamp embeddings of 20 s: the reference's per-window loop vs. hear-mn's batched "
        "windows, same model, same run. Scene embeddings of 10 s clips, batches of 16: hear-mn "
        "vs. the same network run plain (contiguous layout, BatchNorm unfolded).",
        "",
        "| model | per-window loop (s) | hear-mn (s) | speed-up | max rel. diff | "
        "scene, 1 clip (s) | scene, 16 clips (clips/s) | plain (clips/s) | scene speed-up |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["speed"]["results"]:
        cells = [
            _cell(r, "per_window_loop_s", ".3f"),
            f"{r['batched_s']:.3f}",
            _cell(r, "speedup", ".1f", "x"),
            _cell(r, "max_relative_difference", ".1e"),
            f"{r['scene_one_10s_clip_s']:.3f}",
            f"{r['scene_16_clips_per_s']:.1f}",
            _cell(r, "plain_scene_16_clips_per_s", ".1f"),
            _cell(r, "scene_speedup", ".2f", "x"),
        ]
        lines.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Where the time goes (fractions of the call; glue = gathering windows, taps, copies):",
        "",
        "| model | call | total (s) | frontend | backbone | glue |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['model']} | {r['call']} | {r['total_s']:.3f} | {r['frontend_fraction']:.0%} | "
        f"{r['backbone_fraction']:.0%} | {r['glue_fraction']:.0%} |"
        for r in results["profile"]["results"]
    ]
    if "ablation" in results:
        lines += [
            "",
            "What each step buys (same call, steps switched on one by one, timed in alternation; "
            "`bench_ablation.py`):",
            "",
            "| model | call | variant | time (s) | vs. plain | max rel. diff |",
            "|---|---|---|---|---|---|",
        ]
        for r in results["ablation"]["results"]:
            for call in ("timestamps", "scene"):
                what = "timestamps, 20 s" if call == "timestamps" else "scene, 16 clips of 10 s"
                lines += [
                    f"| {r['model']} | {what} | {row['variant']} | {row['seconds']:.3f} | "
                    f"{row['speedup_vs_plain']:.2f}x | {row['max_relative_difference']:.1e} |"
                    for row in r[call]
                ]
    stream = results["streaming"]
    lines += [
        "",
        f"Streaming, {stream['threads']} thread, 100 ms chunks:",
        "",
        "| model | real-time factor | worst push (ms) |",
        "|---|---|---|",
    ]
    lines += [
        f"| {r['model']} | {r['realtime_factor']:.3f} | {r['worst_push_ms']:.1f} |"
        for r in stream["results"]
    ]
    lines += [
        "",
        "Long audio (peak resident memory measured in a fresh process):",
        "",
        "| model | call | audio (min) | time (s) | input (MiB) | output (MiB) | "
        "peak RSS (MiB) | working set (MiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['model']} | {r['kind']} | {r['audio_minutes']:g} | {r['seconds']:.1f} | "
        f"{r['input_mib']:.0f} | {r['output_mib']:.1f} | {r['peak_rss_mib']:.0f} | "
        f"{r['working_set_mib']:.0f} |"
        for r in results["long_audio"]["results"]
    ]
    if "audiomlp" in results:
        lines += ["", "Audio-MLP, 60 s of 16 kHz audio:", "", "```", results["audiomlp"], "```"]
    if "threads" in results:
        lines += [
            "",
            "Threads beside busy processes (pure Python loops), scene embeddings of 4 clips of "
            "10 s with mn04, each configuration in a fresh process, in alternation "
            "(`bench_threads.py`):",
            "",
            "| busy processes | configuration | time (s) | vs. 1 thread |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r['busy_processes']} | {r['config']} | {r['seconds']:.3f} | "
            f"{r['vs_1_thread']:.2f}x |"
            for r in results["threads"]["results"]
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short inputs: a smoke run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--render", action="store_true", help="only rewrite results.md from results.json"
    )
    args = parser.parse_args()
    if args.render:
        results = json.loads((RESULTS / "results.json").read_text())
        (RESULTS / "results.md").write_text(markdown(results))
        return
    threads = str(args.threads)
    seconds = "5" if args.quick else "20"
    minutes = "1" if args.quick else "60"
    results = {
        "environment": {
            "machine": platform.machine(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "threads": args.threads,
            "quick": args.quick,
        },
        "speed": _run(
            "bench_speed.py",
            "--no-loop-models",
            "mn40_ext_e1_l,kwmlp,audiomae",
            "--seconds",
            seconds,
            "--threads",
            threads,
        ),
        "profile": _run("profile_breakdown.py", "--threads", threads),
        "ablation": _run(
            "bench_ablation.py", "--seconds", seconds, "--threads", threads, "--repeats", "5"
        ),
        "streaming": _run("bench_streaming.py", "--seconds", "10" if args.quick else "60"),
        "long_audio": _run("bench_long_audio.py", "--minutes", minutes, "--threads", threads),
        "threads": _run("bench_threads.py", "--rounds", "1" if args.quick else "3"),
    }
    audiomlp = subprocess.run(
        [sys.executable, str(HERE / "bench_audiomlp_reference.py"), "--threads", threads],
        check=True,
        capture_output=True,
        text=True,
    )
    results["audiomlp"] = audiomlp.stdout.strip()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "results.json").write_text(json.dumps(results, indent=2))
    (RESULTS / "results.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
