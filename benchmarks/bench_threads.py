"""Threads under load: the default thread setting of the API and of the CLI against 1 thread,
with busy neighbours.

On a shared machine other processes compete for the cores. Torch's intra-op threads meet
at a barrier after every operation; when one of them is descheduled the others spin or
wait, so the default (every core) can become far slower than 1 thread. This measures it:
for each number of competing CPU-bound processes (pure Python loops; "a hog on every core"
is as many as CPUs), every configuration runs in a fresh child process (the wait policy is
read when torch loads), the configurations in alternation, and the median call time is
reported with its ratio to 1 thread under the same load, in the same run.

    python benchmarks/bench_threads.py                       # loads 0 and every core
    python benchmarks/bench_threads.py --loads 0,1,2 --rounds 2 --json bench_out/threads.json
    python benchmarks/bench_threads.py --smoke --json /tmp/threads.json   # does it run?

(``--threads`` is not used: the configurations below set the threads of each child.)
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import subprocess
import sys

import harness

# (label, how the child starts): "torch N" imports torch first and sets N threads (0: torch's
# default), the user's own setup before importing hear_mn; "api" imports hear_mn first and
# sets nothing (the library's default); "cli" sets up threads as `hear-mn` does.
CONFIGS = (
    ("1 thread (torch.set_num_threads(1))", "torch 1"),
    ("API default, torch imported before hear_mn (spinning)", "torch 0"),
    ("API default, hear_mn imported before torch (passive)", "api"),
    ("CLI default (hear-mn's thread setup)", "cli"),
)

CHILD = """
import os, statistics, sys, time
setup, model_name, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
if setup == "api":
    import hear_mn
elif setup == "cli":
    from hear_mn.cli import common
    common.passive_waiting()
policy = os.environ.get("OMP_WAIT_POLICY", "unset")  # what OpenMP reads when torch loads
import torch
if setup == "cli":
    common.set_threads(None)
elif setup.startswith("torch") and int(setup.split()[1]):
    torch.set_num_threads(int(setup.split()[1]))
import hear_mn
torch.manual_seed(0)
model = hear_mn.create_model(model_name, pretrained=False)
audio = 0.1 * torch.randn(4, 10 * model.sample_rate)
model.scene_embeddings(audio)
times = []
for _ in range(calls):
    start = time.perf_counter()
    model.scene_embeddings(audio)
    times.append(time.perf_counter() - start)
print(torch.get_num_threads(), policy, statistics.median(times))
"""


def _spin() -> None:
    while True:
        pass


def _measure(setup: str, model: str, calls: int) -> tuple[int, str, float]:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    result = subprocess.run(
        [sys.executable, "-c", CHILD, setup, model, str(calls)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    used, policy, seconds = result.stdout.split()
    return int(used), policy, float(seconds)


def main() -> None:
    parser = harness.parser(__doc__, repeats=3)
    parser.add_argument(
        "--loads", default=f"0,{os.cpu_count()}", help="numbers of busy processes beside"
    )
    parser.add_argument("--model", default="mn04_e1_l")
    parser.add_argument("--rounds", type=int, help="child runs per configuration (--repeats)")
    parser.add_argument("--calls", type=int, default=5, help="timed calls per child")
    args = harness.parse_args(parser)
    rounds = args.repeats if args.rounds is None else args.rounds
    if args.smoke:
        args.loads, rounds, args.calls = "0", 1, 1
    rows = []
    for load in (int(n) for n in args.loads.split(",")):
        busy = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(load)]
        for process in busy:
            process.start()
        try:
            samples: dict[str, list[float]] = {label: [] for label, _ in CONFIGS}
            used: dict[str, tuple[int, str]] = {}
            for round_ in range(rounds):
                order = CONFIGS if round_ % 2 == 0 else CONFIGS[::-1]
                for label, setup in order:
                    threads, policy, seconds = _measure(setup, args.model, args.calls)
                    used[label] = (threads, policy)
                    samples[label].append(seconds)
        finally:
            for process in busy:
                process.terminate()
        base = statistics.median(samples[CONFIGS[0][0]])
        for label, _ in CONFIGS:
            seconds = statistics.median(samples[label])
            rows.append(
                {
                    "busy_processes": load,
                    "config": label,
                    "threads": used[label][0],
                    "omp_wait_policy": used[label][1],
                    "seconds": seconds,
                    "vs_1_thread": seconds / base,
                }
            )
    lines = [f"scene embeddings of 4 clips of 10 s, {args.model}; {os.cpu_count()} CPUs"]
    lines += [
        f"busy {r['busy_processes']:2d}  {r['config']:<55} threads {r['threads']} OpenMP "
        f"{r['omp_wait_policy']:<7} {r['seconds']:7.3f} s  {r['vs_1_thread']:5.2f}x the time "
        "of 1 thread"
        for r in rows
    ]
    payload = {"cpus": os.cpu_count(), "rounds": rounds, "results": rows}
    harness.report(args, payload, "\n".join(lines), threads=sorted({r["threads"] for r in rows}))


if __name__ == "__main__":
    main()
