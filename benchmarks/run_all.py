"""Run every benchmark that feeds the README and docs with one command.

    python benchmarks/run_all.py                  # the speed suite (about 25 min on 2 cores)
    python benchmarks/run_all.py --render         # rewrite results.md from results.json
    python benchmarks/run_all.py --quick          # shorter inputs; writes only --json
    python benchmarks/run_all.py --smoke --json /tmp/all.json   # does every script run?
    python benchmarks/run_all.py --everything     # also the benchmarks with results files

The speed suite (:data:`SUITE`) writes ``benchmarks/results/results.json`` and
``benchmarks/results/results.md`` (machine, torch version, threads; the summary that
``scripts/update_readme_table.py`` copies into docs/speed.md); ``python
images/make_figures.py`` plots them. ``--everything`` also runs :data:`RESULT_FILES`, the
benchmarks whose own files under ``benchmarks/results/`` the docs quote (the Ray ones in a
loopback-only network namespace, which needs root: skipped, and said so, where there is
none). Every number is a ratio or throughput measured side by side in the same run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import harness

HERE = harness.HERE
RESULTS = harness.RESULTS


@dataclass(frozen=True)
class Step:
    """One benchmark run: its script, its arguments for a full run and for ``--quick``."""

    script: str
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()
    takes_threads: bool = False  # given run_all's --threads
    loopback_only: bool = False  # Ray binds every interface: run in its own namespace


# results.json's sections, in the order results.md shows them.
SUITE = {
    "speed": Step(
        "bench_speed.py",
        ("--no-loop-models", "mn40_ext_e1_l,kwmlp,audiomae", "--seconds", "20"),
        ("--no-loop-models", "mn40_ext_e1_l,kwmlp,audiomae", "--seconds", "5"),
        takes_threads=True,
    ),
    "profile": Step("profile_breakdown.py", takes_threads=True),
    "ablation": Step(
        "bench_ablation.py", ("--seconds", "20"), ("--seconds", "5"), takes_threads=True
    ),
    "streaming": Step("bench_streaming.py", ("--seconds", "30"), ("--seconds", "10")),
    "long_audio": Step(
        "bench_long_audio.py", ("--minutes", "60"), ("--minutes", "1"), takes_threads=True
    ),
    "threads": Step("bench_threads.py", ("--rounds", "3"), ("--rounds", "1")),
    "audiomlp": Step("bench_audiomlp_reference.py", takes_threads=True),
}
# Results files under benchmarks/results/ that the docs quote, and what writes them.
RESULT_FILES = {
    "backends.json": Step("bench_backends.py", ("--openvino",)),
    "dymn.json": Step("bench_dymn.py", ("--repeats", "3")),
    "edge_latency.json": Step("bench_edge.py"),
    "evaluation.json": Step("bench_evaluation.py"),
    "evaluation_parity.json": Step("evaluation_parity.py"),
    "fraction_of_peak.json": Step("bench_fraction_of_peak.py", ("--threads", "2,1")),
    "precision_margin.json": Step("precision_margin.py"),
    "ray.json": Step("bench_ray.py", ("--files", "640", "--repeats", "2"), loopback_only=True),
    "ray_fixed_cost.json": Step(
        "bench_ray_fixed_cost.py", ("--sizes", "6", "60", "600"), loopback_only=True
    ),
}


def _loopback_prefix() -> list[str] | None:
    """The command prefix of a loopback-only network namespace, or None where none can be made."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return None
    prefix = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
    probe = subprocess.run([*prefix, "true"], capture_output=True)
    return prefix if probe.returncode == 0 else None


def _run(step: Step, mode: str, threads: int, out: Path) -> dict | None:
    """Run ``step`` (mode: full, quick or smoke) writing ``out``; its JSON, or None if it
    needed a loopback-only namespace and none could be made."""
    arguments = {"full": step.full, "quick": step.quick, "smoke": ("--smoke",)}[mode]
    command = [sys.executable, str(HERE / step.script), *arguments, "--json", str(out)]
    if step.takes_threads:
        command += ["--threads", str(threads)]
    if step.loopback_only:
        prefix = _loopback_prefix()
        if prefix is None:
            print(f"skipped {step.script}: no loopback-only network namespace (needs root)")
            return None
        command = [*prefix, *command]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True)
    return json.loads(out.read_text())


def _cell(row: dict, key: str, fmt: str, suffix: str = "") -> str:
    return format(row[key], fmt) + suffix if key in row else "-"


def _scene_key(row: dict) -> str:
    """The row's ``scene_<clips>_clips_per_s`` key (16 clips, but fewer in a smoke run)."""
    return next(key for key in row if key.startswith("scene_") and key.endswith("_clips_per_s"))


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
            f"{r[_scene_key(r)]:.1f}",
            _cell(r, "plain_" + _scene_key(r), ".1f"),
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
        f"Streaming, {stream['threads']} thread, 50 ms pushes (one new window each):",
        "",
        "| model | backend | engine | median ms per window | p95 ms | real-time factor | "
        "worst push (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['model']} | {r['backend']} | {r['engine']} | {r['median_ms']:.3f} | "
        f"{r['p95_ms']:.3f} | {r['realtime_factor']:.3f} | {r['worst_push_ms']:.1f} |"
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
    parser = harness.parser(__doc__, threads="2")
    parser.add_argument(
        "--render", action="store_true", help="only rewrite results.md from results.json"
    )
    parser.add_argument(
        "--everything", action="store_true", help="also the benchmarks with results files"
    )
    args = harness.parse_args(parser, default_json=RESULTS / "results.json")
    if args.render:
        results = json.loads((RESULTS / "results.json").read_text())
        (RESULTS / "results.md").write_text(markdown(results))
        return
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    results: dict = {}
    with tempfile.TemporaryDirectory() as scratch:
        for section, step in SUITE.items():
            results[section] = _run(step, mode, args.threads, Path(scratch) / f"{section}.json")
        results["audiomlp"] = results["audiomlp"]["summary"]
        if args.everything:
            for name, step in RESULT_FILES.items():
                out = RESULTS / name if mode == "full" else Path(scratch) / name
                results.setdefault("result_files", {})[name] = _run(step, mode, args.threads, out)
    record = harness.report(args, {**results, "environment": {"quick": args.quick}}, "")
    print(markdown(record))
    if mode == "full":
        (RESULTS / "results.md").write_text(markdown(record))


if __name__ == "__main__":
    main()
