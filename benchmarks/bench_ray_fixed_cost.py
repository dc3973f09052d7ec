"""What a whole ``hear-mn embed --engine ray`` command costs against ``--engine local``, and
from which job size Ray pays off, timed as a user runs them: one command per job.

    unshare -n sh -c 'ip link set lo up && exec python benchmarks/bench_ray_fixed_cost.py'
    unshare -n sh -c 'ip link set lo up && exec python benchmarks/bench_ray_fixed_cost.py \
        --sizes 6 60 600 --repeats 3'     # writes benchmarks/results/ray_fixed_cost.json
    unshare -n sh -c 'ip link set lo up && exec python benchmarks/bench_ray_fixed_cost.py \
        --smoke --json /tmp/ray_fixed_cost.json'                      # does it run?

(Ray binds its servers to every interface: run it in a loopback-only network namespace, as
above, as root.) Makes ``max(--sizes)`` clips of ``--seconds`` s, and for each job size a
folder of that many of them; then, ``--repeats`` rounds, runs for each size the local
command and the Ray command (each writing every output again, ``--overwrite``), the two
alternating and their order swapped every round, each command timed from start to exit
(Python, imports, the model, Ray's start and stop: what a user waits for). Both use their
defaults for this machine: locally one process with a torch thread per core, on Ray one
actor of one thread per core, both with Ray started by the command itself.

Prints the median time per job size, Ray's extra time, and a straight line fitted to each
engine's medians (time = fixed + files / rate): the fixed cost of a command and the rate
once it runs. Ray pays off from ``(fixed_ray - fixed_local) / (1/rate_local -
1/rate_ray)`` files when its rate is the higher one; on one machine it is not (its actors
decode each file twice and move results through the object store), so the script also
prints, for clusters of more actors, the break-even size the measured per-actor rate
implies (argued, not measured: assumes actors scale linearly and the file system keeps
up).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness
import numpy as np
import soundfile

RATE = 32000


def make_corpus(folder: Path, count: int, seconds: float) -> list[Path]:
    """``count`` clips of noise, ``seconds`` long at 32 kHz."""
    folder.mkdir(parents=True)
    generator = np.random.default_rng(0)
    paths = []
    for index in range(count):
        audio = 0.1 * generator.standard_normal(round(seconds * RATE)).astype(np.float32)
        path = folder / f"clip{index:04d}.wav"
        soundfile.write(path, audio, RATE)
        paths.append(path)
    return paths


def job_folder(work: Path, clips: list[Path], size: int) -> Path:
    """A folder of the first ``size`` clips (hard links)."""
    folder = work / f"job{size}"
    folder.mkdir()
    for clip in clips[:size]:
        os.link(clip, folder / clip.name)
    return folder


def timed(command: list[str], env: dict[str, str]) -> float:
    """Seconds from start to exit of ``command``, which must succeed."""
    started = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - started
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({run.returncode}): {run.stderr[-2000:]}")
    return elapsed


def fit_line(sizes: list[int], seconds: list[float]) -> tuple[float, float]:
    """(fixed seconds, files per second) of the least-squares line through the points."""
    slope, intercept = np.polyfit(np.asarray(sizes, float), np.asarray(seconds, float), 1)
    if slope <= 0:
        raise SystemExit("the job sizes are too close to tell the rate: give sizes further apart")
    return float(intercept), float(1.0 / slope)


def break_even(fixed: tuple[float, float], rates: tuple[float, float]) -> float | None:
    """Files from which the second engine (fixed cost, rate) beats the first; None: never."""
    gain_per_file = 1.0 / rates[0] - 1.0 / rates[1]
    extra = fixed[1] - fixed[0]
    if gain_per_file <= 0:
        return None
    return max(0.0, extra / gain_per_file)


def main() -> None:
    parser = harness.parser(__doc__, repeats=3, threads=str(os.cpu_count()))
    parser.add_argument("--model", default="mn10_e1_l")
    parser.add_argument("--sizes", type=int, nargs="+", default=[6, 60, 600])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each clip")
    args = harness.parse_args(parser, default_json=harness.RESULTS / "ray_fixed_cost.json")
    if args.quick:  # two sizes are the fewest a line can be fitted to
        args.sizes = [1, 2] if args.smoke else [6, 60]
        args.model = "mn04_e1_l" if args.smoke else args.model
    import ray
    import torch

    from hear_mn.registry import create_model

    work = Path(tempfile.mkdtemp(prefix="bench-rfc-", dir="/tmp"))  # Ray's sockets: short
    try:
        clips = make_corpus(work / "clips", max(args.sizes), args.seconds)
        folders = {size: job_folder(work, clips, size) for size in args.sizes}
        weights = work / "weights.pt"
        torch.manual_seed(0)
        torch.save(create_model(args.model, pretrained=False).backbone.state_dict(), weights)
        env = {**os.environ, "RAY_TMPDIR": str(work / "ray"), "RAY_USAGE_STATS_ENABLED": "0"}
        env.pop("RAY_BACKEND_LOG_LEVEL", None)
        base = [sys.executable, "-m", "hear_mn", "embed", "--model", args.model, "-q"]
        base += ["--weights", str(weights), "--overwrite"]
        engines = {"local": ["--engine", "local"], "ray": ["--engine", "ray"]}
        times: dict[str, dict[int, list[float]]] = {e: {s: [] for s in args.sizes} for e in engines}
        for round_ in range(args.repeats):
            order = list(engines) if round_ % 2 == 0 else list(engines)[::-1]
            for size in args.sizes:
                for engine in order:
                    out = work / f"out-{engine}-{size}"
                    command = [*base, *engines[engine], str(folders[size]), "--out", str(out)]
                    times[engine][size].append(timed(command, env))
                    print(
                        f"round {round_ + 1}, {size} files, {engine}: "
                        f"{times[engine][size][-1]:.2f} s",
                        flush=True,
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    medians = {e: {s: statistics.median(v) for s, v in by.items()} for e, by in times.items()}
    if args.smoke:  # two tiny jobs show that both commands run; their times are noise
        smoke = {"model": args.model, "sizes": args.sizes, "times_s": times, "median_s": medians}
        harness.report(args, smoke, f"median seconds per command: {medians}")
        return
    fitted = {e: fit_line(args.sizes, [medians[e][s] for s in args.sizes]) for e in engines}
    fixed = (fitted["local"][0], fitted["ray"][0])
    rates = (fitted["local"][1], fitted["ray"][1])
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    per_actor = rates[1] / cpus
    clusters = {actors: break_even(fixed, (rates[0], per_actor * actors)) for actors in (4, 8, 32)}
    lines = [
        f"{args.model}, clips of {args.seconds:g} s, scene embeddings; whole commands, "
        f"medians of {args.repeats} alternated runs; ray {ray.__version__}, {cpus} CPUs usable",
        f"{'files':>6} {'local s':>8} {'ray s':>8} {'ray - local':>12} {'ray / local':>12}",
    ]
    for size in args.sizes:
        local, on_ray = medians["local"][size], medians["ray"][size]
        lines.append(
            f"{size:6d} {local:8.2f} {on_ray:8.2f} {on_ray - local:12.2f} {on_ray / local:11.2f}x"
        )
    for engine, (fixed_s, rate) in fitted.items():
        lines.append(f"{engine}: fixed {fixed_s:.2f} s per command, then {rate:.1f} files/s")
    even = break_even(fixed, rates)
    lines.append(
        "Ray pays off on this machine from "
        + (f"{even:.0f} files" if even is not None else "no job size (its rate is lower)")
    )
    for actors, files in clusters.items():
        lines.append(
            f"  with {actors} actors at the measured {per_actor:.1f} files/s each: from "
            + (f"{files:.0f} files" if files is not None else "no job size")
        )
    payload = {
        "model": args.model,
        "seconds_per_file": args.seconds,
        "sizes": args.sizes,
        "ray": ray.__version__,
        "times_s": times,
        "median_s": medians,
        "fixed_s": {"local": fixed[0], "ray": fixed[1]},
        "files_per_s": {"local": rates[0], "ray": rates[1]},
        "break_even_files": even,
        "break_even_files_by_actors": clusters,
    }
    harness.report(args, payload, "\n".join(lines), threads=cpus)


if __name__ == "__main__":
    main()
