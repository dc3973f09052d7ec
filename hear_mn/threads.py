"""Torch's threads on a shared machine: hear_mn's calls use only the cores that other work
leaves free (torch-free).

Torch's intra-op threads meet at a barrier after every operation and, under OpenMP's default
wait policy, spin there for a while. On a quiet machine that is the fastest setting (mn04's
scene embedding of one 10 s clip took 0.014 s at 2 threads against 0.021 s with
``OMP_WAIT_POLICY=PASSIVE``, which hear_mn used to set), so hear_mn leaves the policy to
OpenMP and the user. But when another process holds one of the cores, one of torch's threads
is often descheduled while its partners spin: beside one busy process on 2 cores, 2 threads
measured 2.85x the time of 1 thread (``benchmarks/bench_threads.py``; docs/speed.md). So,
unless the user chose a thread count (``threads=``, ``--threads``, ``OMP_NUM_THREADS``),
each of hear_mn's calls runs on the cores that other runnable threads leave free, at least 1
and at most the default (:func:`busy_machine_threads`), whatever the import order.
Embeddings are the same at any thread count; training is not, so downstream training keeps
the count it was given.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from collections.abc import Iterator

__all__ = [
    "busy_machine_threads",
    "keep_threads",
    "free_cores",
    "others_busy",
    "others_running",
    "usable_cores",
]

logger = logging.getLogger("hear_mn")


# How long one look at the machine's load stands: reading it costs about 120 us (a /proc
# file per thread of this process, twice), a fifth of a live stream's 160 ms window in ONNX
# Runtime, so calls in quick succession (a stream's pushes, a batch job's passes) share one look.
BUSY_RECHECK_SECONDS = 1.0


class _Guard:
    """Torch's thread count as hear_mn found it (at the first guarded call); ``kept``: the
    user chose the count, hear_mn leaves it; ``free`` and ``checked_at``: the last look at
    the machine's load (time.monotonic())."""

    threads: int | None = None
    kept = False
    reported = False
    free = 0
    checked_at = -math.inf
    cpu_times: tuple[float, float, float] | None = None  # the last look at CPU time


def usable_cores() -> int:
    """The CPU cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def keep_threads() -> None:
    """The user asked for a thread count (``threads=``, ``--threads``): hear_mn leaves it as
    it is, busy machine or not."""
    _Guard.kept = True


def others_running() -> int | None:
    """Threads runnable on the machine right now, this process's own not counted (Linux
    /proc; None elsewhere). Own threads are those runnable just before or just after the
    machine's count is read: torch's waiting threads go to sleep and wake up all the time, and
    one counted by the machine but asleep by the time this process is looked at would look
    like another process's."""
    try:
        before = _own_running()
        with open("/proc/loadavg", encoding="ascii") as loadavg:
            runnable = int(loadavg.read().split()[3].split("/")[0])
        own = before | _own_running()
    except (OSError, ValueError, IndexError):
        return None
    return max(0, runnable - len(own))


def _own_running() -> set[str]:
    """This process's threads (ids) that are running or runnable."""
    running = set()
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/stat", encoding="ascii", errors="replace") as stat:
                if stat.read().rpartition(")")[2].split()[0] == "R":
                    running.add(task)
        except FileNotFoundError:  # the thread has ended since the listing
            continue
    return running


@contextlib.contextmanager
def busy_machine_threads() -> Iterator[None]:
    """Torch threads for the duration: the cores other runnable threads leave free (at
    least 1, at most torch's count), unless the user chose a thread count or changed torch's
    since hear_mn first saw it; the count is restored after. Beside busy processes, torch's
    spinning threads were measured up to several times slower than 1 thread
    (``benchmarks/bench_threads.py``)."""
    torch = sys.modules.get("torch")
    if torch is None or _Guard.kept or "OMP_NUM_THREADS" in os.environ:
        yield
        return
    if _Guard.threads is None:
        _Guard.threads = torch.get_num_threads()
    threads = _Guard.threads
    if threads < 2 or torch.get_num_threads() != threads:
        yield
        return
    use = max(1, min(threads, free_cores()))
    if use == threads:
        yield
        return
    if not _Guard.reported:
        _Guard.reported = True
        logger.info(
            "other work keeps CPU cores busy: hear_mn's calls run on the %d torch thread(s) "
            "the free cores allow instead of %d while it does (pass threads= or --threads "
            "to choose)",
            use,
            threads,
        )
    torch.set_num_threads(use)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def free_cores() -> int:
    """Usable cores that other work leaves free, looked at again once the last look is
    :data:`BUSY_RECHECK_SECONDS` old. Other work is the threads runnable right now
    (:func:`others_running`) that the time they have used lately confirms
    (:func:`others_busy`): a thread the kernel runs for a moment (the first call of a fresh
    process often saw one) does not take a core from a whole second of calls."""
    now = time.monotonic()
    if now - _Guard.checked_at >= BUSY_RECHECK_SECONDS:
        others = others_running() or 0
        busy = others_busy()
        if busy is not None:
            others = min(others, round(busy))
        _Guard.free = usable_cores() - others
        _Guard.checked_at = now
    return _Guard.free


# The shortest span over which :func:`others_busy` measures: /proc/stat counts in ticks of
# 10 ms, so a core busy for 50 ms shows as 5 +- 1 ticks.
SHORTEST_BUSY_SPAN = 0.05


def others_busy() -> float | None:
    """Cores kept busy by other work on average since the last call (or since hear_mn.threads
    was imported): the machine's busy CPU time less this process's, over the time between;
    None where it cannot be read or the span is shorter than :data:`SHORTEST_BUSY_SPAN`."""
    now = _cpu_times()
    before = _Guard.cpu_times
    if now is None or before is None:
        _Guard.cpu_times = now
        return None
    span = now[0] - before[0]
    if span < SHORTEST_BUSY_SPAN:
        return None
    _Guard.cpu_times = now
    return max(0.0, (now[1] - before[1]) - (now[2] - before[2])) / span


def _cpu_times() -> tuple[float, float, float] | None:
    """(now, CPU seconds the machine's cores have been busy, this process's CPU seconds);
    None where /proc/stat cannot be read."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = stat.readline().split()
        user, nice, system, _idle, _iowait, irq, softirq = (int(word) for word in fields[1:8])
    except (OSError, ValueError):
        return None
    busy = (user + nice + system + irq + softirq) / _TICKS_PER_SECOND
    return time.monotonic(), busy, time.process_time()


_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_Guard.cpu_times = _cpu_times()
