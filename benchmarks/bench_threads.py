"""Threads under load: the default thread setting of the API and of the CLI against 1 thread,
with busy neighbours.

On a shared machine other processes compete for the cores. Torch's intra-op threads meet
at a barrier after every operation; when one of them is descheduled the others spin or
wait, so the default (every core) can become far slower than 1 thread. This measures it:
for each number of competing CPU-bound processes (pure Python loops; "a hog on every core"
is as many as CPUs), every configuration runs in a fresh child process (the wait policy is
read when torch loads), the configurations in alternation, and the median call time is
reported with its ratio to 1 thread under the same load, in the same run, with the torch
threads a call ran on. Separate processes differ by more than their work (where each lands
beside the busy ones), so one more child alternates calls of the API default with calls at
1 thread set by hand (``torch.set_num_threads(1)``, which hear_mn then leaves alone) in one
process: the same load on both, call by call. The last configuration is the library as it was before it left the
wait policy to OpenMP: ``OMP_WAIT_POLICY=PASSIVE``.

    python benchmarks/bench_threads.py                       # loads 0 and every core
    python benchmarks/bench_threads.py --loads 0,1,2 --clips 1 --json bench_out/threads.json
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

# (label, how the child starts, its OMP_WAIT_POLICY): "torch N" imports torch first and sets
# N threads (0: torch's default), the user's own setup before importing hear_mn; "api"
# imports hear_mn first and sets nothing (the library's default); "cli" sets up threads as
# `hear-mn` does.
CONFIGS = (
    ("1 thread (torch.set_num_threads(1))", "torch 1", None),
    ("API default, torch imported before hear_mn", "torch 0", None),
    ("API default, hear_mn imported before torch", "api", None),
    ("CLI default (hear-mn's thread setup)", "cli", None),
    ("API default, OMP_WAIT_POLICY=PASSIVE (before)", "api", "PASSIVE"),
)

# Both child programs end with this: the model, a spy on the threads each call runs on
# (``seen``) and the clips (``audio``), after a first untimed call.
MODEL_AND_SPY = """
torch.manual_seed(0)
model = hear_mn.create_model(model_name, pretrained=False)
seen = []
def spy(batch, embed=model._scene_embeddings):
    seen.append(torch.get_num_threads())  # the threads a call runs on
    return embed(batch)
model._scene_embeddings = spy
audio = 0.1 * torch.randn(clips, 10 * model.sample_rate)
model.scene_embeddings(audio)
"""

CHILD = (
    """
import os, statistics, sys, time
setup, model_name, calls, clips = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if setup == "api":
    import hear_mn
elif setup == "cli":
    from hear_mn.cli import common
policy = os.environ.get("OMP_WAIT_POLICY", "unset")  # what OpenMP reads when torch loads
import torch
if setup == "cli":
    common.set_threads(None)
elif setup.startswith("torch") and int(setup.split()[1]):
    torch.set_num_threads(int(setup.split()[1]))
import hear_mn
"""
    + MODEL_AND_SPY
    + """
times = []
for _ in range(calls):
    start = time.perf_counter()
    model.scene_embeddings(audio)
    times.append(time.perf_counter() - start)
print(min(seen[1:]), max(seen[1:]), policy, statistics.median(times))
"""
)

ONE_PROCESS = (
    """
import statistics, sys, time
import torch
import hear_mn
model_name, calls, clips = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
default = torch.get_num_threads()
"""
    + MODEL_AND_SPY
    + """
order = [(1, default)[(call + call // 2) % 2] for call in range(2 * calls)]  # 1, d, d, 1, ...
times = {1: [], default: []}
for threads in order:
    torch.set_num_threads(threads)
    start = time.perf_counter()
    model.scene_embeddings(audio)
    times[threads].append(time.perf_counter() - start)
by_default = [n for n, threads in zip(seen[1:], order) if threads == default]
print(min(by_default), max(by_default), statistics.median(times[1]),
      statistics.median(times[default]))
"""
)


def _child(program: str, args: list[str], policy: str | None) -> list[str]:
    """The words a child program prints, run under OpenMP wait ``policy`` (None: unset)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    command = [sys.executable, "-c", program, *args]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, check=True
    ).stdout.split()


def _one_process(model: str, calls: int, clips: int) -> tuple[list[int], float, float]:
    """Threads of the default's calls (fewest, most), then the median seconds at 1 thread
    set by hand and at the default, alternating in one child process."""
    fewest, most, one, default = _child(ONE_PROCESS, ["api", model, str(calls), str(clips)], None)
    return [int(fewest), int(most)], float(one), float(default)


def _measure(
    setup: str, policy: str | None, model: str, calls: int, clips: int
) -> tuple[tuple[int, int], str, float]:
    """(fewest, most) threads the timed calls ran on, the wait policy, the median call."""
    words = _child(CHILD, [setup, model, str(calls), str(clips)], policy)
    fewest, most, policy, seconds = words
    return (int(fewest), int(most)), policy, float(seconds)


def _span(counts: list[int]) -> str:
    low, high = counts
    return f"{low}" if low == high else f"{low}-{high}"


def _spin() -> None:
    while True:
        pass


def main() -> None:
    parser = harness.parser(__doc__, repeats=3)
    parser.add_argument(
        "--loads", default=f"0,{os.cpu_count()}", help="numbers of busy processes beside"
    )
    parser.add_argument("--model", default="mn04_e1_l")
    parser.add_argument("--rounds", type=int, help="child runs per configuration (--repeats)")
    parser.add_argument("--calls", type=int, default=5, help="timed calls per child")
    parser.add_argument("--clips", type=int, default=4, help="10 s clips per call")
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
            samples: dict[str, list[float]] = {label: [] for label, *_ in CONFIGS}
            used: dict[str, list[int]] = {label: [] for label, *_ in CONFIGS}
            policies: dict[str, str] = {}
            for round_ in range(rounds):
                order = CONFIGS if round_ % 2 == 0 else CONFIGS[::-1]
                for label, setup, given in order:
                    threads, policy, seconds = _measure(
                        setup, given, args.model, args.calls, args.clips
                    )
                    used[label] += threads
                    policies[label] = policy
                    samples[label].append(seconds)
            alternating = _one_process(args.model, rounds * args.calls, args.clips)
        finally:
            for process in busy:
                process.terminate()
        base = statistics.median(samples[CONFIGS[0][0]])
        for label, *_ in CONFIGS:
            seconds = statistics.median(samples[label])
            rows.append(
                {
                    "busy_processes": load,
                    "config": label,
                    "threads": [min(used[label]), max(used[label])],
                    "omp_wait_policy": policies[label],
                    "seconds": seconds,
                    "vs_1_thread": seconds / base,
                }
            )
        default_threads, one, default = alternating
        for label, threads, seconds in (
            ("one process, alternating: 1 thread by hand", [1, 1], one),
            ("one process, alternating: API default", default_threads, default),
        ):
            rows.append(
                {
                    "busy_processes": load,
                    "config": label,
                    "threads": threads,
                    "omp_wait_policy": "unset",
                    "seconds": seconds,
                    "vs_1_thread": seconds / one,
                }
            )
    lines = [
        f"scene embeddings of {args.clips} clip(s) of 10 s, {args.model}; {os.cpu_count()} CPUs; "
        "threads: those a call ran on"
    ]
    lines += [
        f"busy {r['busy_processes']:2d}  {r['config']:<48} threads {_span(r['threads'])} OpenMP "
        f"{r['omp_wait_policy']:<7} {r['seconds']:7.3f} s  {r['vs_1_thread']:5.2f}x the time "
        "of 1 thread"
        for r in rows
    ]
    payload = {"cpus": os.cpu_count(), "rounds": rounds, "clips": args.clips, "results": rows}
    used = sorted({count for r in rows for count in r["threads"]})
    harness.report(args, payload, "\n".join(lines), threads=used)


if __name__ == "__main__":
    main()
