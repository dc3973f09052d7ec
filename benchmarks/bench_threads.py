"""Threads under load: 1 vs 2 torch threads, and OpenMP's wait policy, with busy neighbours.

On a shared machine other processes compete for the cores. Torch's intra-op threads meet
at a barrier after every operation; when one of them is descheduled the others spin or
wait, so the 2-thread path can become far slower than 1 thread. This measures it: for each
number of competing CPU-bound processes (pure Python loops), every configuration runs in a
fresh child process (the wait policy must be set before torch loads), the configurations
in alternation, and the median call time is reported with its ratio to 1 thread.

    python benchmarks/bench_threads.py                       # loads 0, 1, 2, 8; about 8 min
    python benchmarks/bench_threads.py --loads 0,4 --rounds 2 --json bench_out/threads.json
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

# (label, torch threads, OMP_WAIT_POLICY or None for the default)
CONFIGS = (
    ("1 thread", 1, None),
    ("2 threads", 2, None),
    ("2 threads, OMP_WAIT_POLICY=PASSIVE (hear-mn's default)", 2, "PASSIVE"),
)

CHILD = """
import os, statistics, sys, time
threads = int(sys.argv[1])
import torch
torch.set_num_threads(threads)
import hear_mn
torch.manual_seed(0)
model = hear_mn.create_model(sys.argv[2], pretrained=False)
audio = 0.1 * torch.randn(4, 10 * model.sample_rate)
model.scene_embeddings(audio)
times = []
for _ in range(int(sys.argv[3])):
    start = time.perf_counter()
    model.scene_embeddings(audio)
    times.append(time.perf_counter() - start)
print(threads, statistics.median(times))
"""


def _spin() -> None:
    while True:
        pass


def _measure(threads: int, policy: str | None, model: str, calls: int) -> tuple[int, float]:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(threads), model, str(calls)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    used, seconds = result.stdout.split()
    return int(used), float(seconds)


def main() -> None:
    parser = harness.parser(__doc__, repeats=3)
    parser.add_argument("--loads", default="0,1,2,8", help="numbers of busy processes beside")
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
            samples: dict[str, list[float]] = {label: [] for label, _, _ in CONFIGS}
            used: dict[str, int] = {}
            for _ in range(rounds):
                for label, threads, policy in CONFIGS:
                    used[label], seconds = _measure(threads, policy, args.model, args.calls)
                    samples[label].append(seconds)
        finally:
            for process in busy:
                process.terminate()
        base = statistics.median(samples["1 thread"])
        for label, _, _ in CONFIGS:
            seconds = statistics.median(samples[label])
            rows.append(
                {
                    "busy_processes": load,
                    "config": label,
                    "threads": used[label],
                    "seconds": seconds,
                    "vs_1_thread": seconds / base,
                }
            )
    lines = [f"scene embeddings of 4 clips of 10 s, {args.model}; {os.cpu_count()} CPUs"]
    lines += [
        f"busy {r['busy_processes']:2d}  {r['config']:<54} threads {r['threads']}  "
        f"{r['seconds']:7.3f} s  {r['vs_1_thread']:5.2f}x the time of 1 thread"
        for r in rows
    ]
    payload = {"cpus": os.cpu_count(), "rounds": rounds, "results": rows}
    harness.report(args, payload, "\n".join(lines), threads=[t for _, t, _ in CONFIGS])


if __name__ == "__main__":
    main()
