"""Throughput of the Ray Data engine against the local engine, on the same files, one run.

    unshare -n sh -c 'ip link set lo up && exec python benchmarks/bench_ray.py'
    unshare -n sh -c 'ip link set lo up && exec python benchmarks/bench_ray.py --files 40'
    unshare -n sh -c 'ip link set lo up && exec python benchmarks/bench_ray.py --smoke --json /tmp/ray.json'

(Ray binds its servers to every interface: run it in a loopback-only network namespace, as
above, as root.) Generates ``--files`` clips of 10 s, then times whole jobs, contenders
alternating over ``--repeats`` rounds (each job writes every output again): the local engine
(``embed_files``) with 1 and 2 torch threads, Ray with 1 and 2 actors of 1 thread and 1
actor of 2 threads (Ray started once in this process, its start-up timed apart). Each
contender runs the corpus and a 1-file job, whose time is the fixed cost of a job (for Ray:
lengths measured, actors started, the model shipped to them); before each job the
benchmark waits (untimed) until the previous job's actors have given their CPUs back. Prints per contender the
median job's files/s and audio-seconds/s, the marginal rate once the job runs ((files - 1)
/ (corpus job - 1-file job)), and both as ratios to the local engine at 1 thread.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# This benchmark's workers wait passively, as when its recorded results were measured (set
# before torch loads; Ray's workers inherit it).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import harness  # noqa: E402
import numpy as np  # noqa: E402
import soundfile  # noqa: E402
import torch  # noqa: E402

from hear_mn.batch import embed_files, plan_embedding  # noqa: E402
from hear_mn.engines.ray_data import RayOptions, connect, run_plan  # noqa: E402
from hear_mn.registry import create_model  # noqa: E402

SECONDS = 10
RATE = 32000


def make_corpus(folder: Path, count: int) -> None:
    """``count`` 10 s clips of noise at 32 kHz."""
    generator = np.random.default_rng(0)
    for index in range(count):
        audio = 0.1 * generator.standard_normal(SECONDS * RATE).astype(np.float32)
        soundfile.write(folder / f"clip{index:03d}.wav", audio, RATE)


def ray_job(
    model: object, options: RayOptions, batch_size: int, timestamps: bool
) -> Callable[[Path, Path], None]:
    def run(corpus: Path, out: Path) -> None:
        plan = plan_embedding([corpus], model, out, timestamps=timestamps, overwrite=True)
        for _ in run_plan(plan, model, options, timestamps=timestamps, batch_size=batch_size):
            pass
        if plan.report.failures:
            raise RuntimeError(f"failures: {plan.report.failures[:3]}")

    return run


def wait_for_idle_cluster(ray: object, timeout: float = 60.0) -> None:
    """Until the previous job's actors have given their CPUs back (Ray stops them
    asynchronously), so that a job does not wait for its predecessor's (not timed)."""
    deadline = time.monotonic() + timeout
    total = ray.cluster_resources().get("CPU", 0)
    while ray.available_resources().get("CPU", 0) < total and time.monotonic() < deadline:
        time.sleep(0.05)


def local_job(
    model: object, threads: int, batch_size: int, timestamps: bool
) -> Callable[[Path, Path], None]:
    def run(corpus: Path, out: Path) -> None:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            report = embed_files(
                [corpus], model, out, timestamps=timestamps, overwrite=True, batch_size=batch_size
            )
        finally:
            torch.set_num_threads(previous)
        if report.failures:
            raise RuntimeError(f"failures: {report.failures[:3]}")

    return run


def main() -> None:
    parser = harness.parser(__doc__, repeats=3, threads="1")
    parser.add_argument("--model", default="mn10_e1_l")
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--timestamps", action="store_true", help="timestamp embeddings")
    args = harness.parse_args(parser, default_json=harness.RESULTS / "ray.json")
    if args.quick:
        args.files = min(args.files, 2 if args.smoke else 10)
        args.model = "mn04_e1_l" if args.smoke else args.model
    import ray

    work = Path(tempfile.mkdtemp(prefix="bench-ray-", dir="/tmp"))  # Ray's socket paths: short
    corpus = work / "corpus"
    corpus.mkdir()
    make_corpus(corpus, args.files)
    torch.manual_seed(0)
    model = create_model(args.model, pretrained=False)

    started = time.perf_counter()
    connect(RayOptions(temp_dir=str(work / "ray"), quiet=True))
    ray_start = time.perf_counter() - started
    single = work / "single"
    single.mkdir()
    make_corpus(single, 1)
    mode = args.timestamps
    first = ray_job(model, RayOptions(actors=1), args.batch_size, mode)
    wait_for_idle_cluster(ray)
    started = time.perf_counter()
    first(single, work / "out-first")
    first_job = time.perf_counter() - started

    contenders = {
        "local, 1 thread": local_job(model, 1, args.batch_size, mode),
        "local, 2 threads": local_job(model, 2, args.batch_size, mode),
        "ray, 1 actor x 1 thread": ray_job(model, RayOptions(actors=1), args.batch_size, mode),
        "ray, 2 actors x 1 thread": ray_job(model, RayOptions(actors=2), args.batch_size, mode),
        "ray, 1 actor x 2 threads": ray_job(
            model, RayOptions(actors=1, threads_per_actor=2), args.batch_size, mode
        ),
    }
    if args.smoke:  # one contender of each engine: does it run?
        contenders = {
            k: v
            for k, v in contenders.items()
            if k.endswith("x 1 thread") or k == "local, 1 thread"
        }
        contenders.pop("ray, 2 actors x 1 thread")
    times: dict[str, dict[str, list[float]]] = {
        label: {"corpus": [], "one file": []} for label in contenders
    }
    for _ in range(args.repeats):
        for label, run in contenders.items():
            for job, folder in (("one file", single), ("corpus", corpus)):
                out = work / ("out-" + label.replace(" ", "").replace(",", "_") + job[:3])
                wait_for_idle_cluster(ray)
                started = time.perf_counter()
                run(folder, out)
                times[label][job].append(time.perf_counter() - started)
    ray.shutdown()

    rows = []
    for label, samples in times.items():
        job_s = statistics.median(samples["corpus"])
        fixed_s = statistics.median(samples["one file"])
        # None when the corpus job is not longer than the 1-file job (too few files).
        marginal = (args.files - 1) / (job_s - fixed_s) if job_s > fixed_s else None
        rows.append(
            {
                "contender": label,
                "job_s": job_s,
                "one_file_job_s": fixed_s,
                "files_per_s": args.files / job_s,
                "audio_seconds_per_s": args.files * SECONDS / job_s,
                "marginal_files_per_s": marginal,
                "marginal_audio_seconds_per_s": marginal and marginal * SECONDS,
                "all_job_s": samples["corpus"],
                "all_one_file_job_s": samples["one file"],
            }
        )
    base = rows[0]
    for row in rows:
        row["job_speedup_vs_local_1_thread"] = base["job_s"] / row["job_s"]
        rates = row["marginal_files_per_s"], base["marginal_files_per_s"]
        row["marginal_speedup_vs_local_1_thread"] = rates[0] / rates[1] if all(rates) else None
    lines = [
        f"{args.model}, {args.files} files of {SECONDS} s, "
        f"{'timestamp' if mode else 'scene'} embeddings, batch size {args.batch_size}; "
        f"ray {ray.__version__}; medians of {args.repeats} alternated jobs",
        f"ray.init: {ray_start:.2f} s; the first 1-file job (cold workers): {first_job:.2f} s",
        f"{'contender':26} {'job s':>6} {'1-file s':>8} {'files/s':>8} {'audio s/s':>9} "
        f"{'x':>6} {'marginal files/s':>17} {'audio s/s':>9} {'x':>6}",
    ]
    for row in rows:
        lines.append(
            f"{row['contender']:26} {row['job_s']:6.2f} {row['one_file_job_s']:8.2f} "
            f"{row['files_per_s']:8.1f} {row['audio_seconds_per_s']:9.0f} "
            f"{row['job_speedup_vs_local_1_thread']:5.2f}x "
            + (
                f"{row['marginal_files_per_s']:17.1f} {row['marginal_audio_seconds_per_s']:9.0f} "
                f"{row['marginal_speedup_vs_local_1_thread']:5.2f}x"
                if row["marginal_speedup_vs_local_1_thread"]
                else f"{'-':>17} {'-':>9} {'-':>6}"
            )
        )
    payload = {
        "model": args.model,
        "files": args.files,
        "seconds_per_file": SECONDS,
        "batch_size": args.batch_size,
        "timestamps": mode,
        "ray": ray.__version__,
        "ray_init_s": ray_start,
        "first_one_file_job_s": first_job,
        "rows": rows,
    }
    harness.report(args, payload, "\n".join(lines))


if __name__ == "__main__":
    main()
