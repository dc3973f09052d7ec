"""Torch's threads on a shared machine: OpenMP's wait policy, chosen before torch loads, and
1 thread for hear_mn's calls while other work fills every core (torch-free).

Torch's intra-op threads meet at a barrier after every operation. On a shared machine one of
them is often descheduled, and under OpenMP's default policy its partners spin, burning the
CPU the descheduled one needs: beside a busy process on every core, torch's default thread
count ran several times slower than 1 thread (``benchmarks/bench_threads.py``; docs/speed.md).
OpenMP reads the policy once, when torch loads it, so ``import hear_mn`` sets passive waiting
unless the user has chosen a policy; the command line does the same. Passive threads beside a
busy process on every core still measured anywhere from 0.5x to 1.2x the time of 1 thread, so
unless the user chose a thread count (``threads=``, ``--threads``, ``OMP_NUM_THREADS``),
hear_mn's calls run on 1 thread while other runnable threads fill every core
(:func:`busy_machine_threads`): never slower than 1 thread there, whatever the import order.
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
    "others_running",
    "passive_waiting",
    "usable_cores",
]

logger = logging.getLogger("hear_mn")


# How long one look at the machine's load stands: reading it costs about 70 us (a /proc
# file per thread of this process), a tenth of a live stream's 160 ms window in ONNX Runtime,
# so calls in quick succession (a stream's pushes, a batch job's passes) share one look.
BUSY_RECHECK_SECONDS = 1.0


class _Guard:
    """Torch's thread count as hear_mn found it (at import where torch was loaded first, else
    at the first guarded call); ``kept``: the user chose the count, hear_mn leaves it;
    ``busy`` and ``checked_at``: the last look at the machine's load (time.monotonic())."""

    threads: int | None = None
    kept = False
    reported = False
    busy = False
    checked_at = -math.inf


def usable_cores() -> int:
    """The CPU cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def passive_waiting() -> None:
    """Let OpenMP threads sleep, not spin, while they wait, unless ``OMP_WAIT_POLICY`` is
    set already. It takes effect where torch loads afterwards: in this process if torch is
    not loaded yet, and in the processes it starts (Ray workers, subprocesses). Where torch
    was loaded first, its threads spin; :func:`busy_machine_threads` guards the calls."""
    if "torch" in sys.modules and _Guard.threads is None:
        _Guard.threads = sys.modules["torch"].get_num_threads()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def keep_threads() -> None:
    """The user asked for a thread count (``threads=``, ``--threads``): hear_mn leaves it as
    it is, busy machine or not."""
    _Guard.kept = True


def others_running() -> int | None:
    """Threads runnable on the machine right now, this process's own not counted (Linux
    /proc; None elsewhere)."""
    try:
        with open("/proc/loadavg", encoding="ascii") as loadavg:
            runnable = int(loadavg.read().split()[3].split("/")[0])
        own = 0
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/stat", encoding="ascii", errors="replace") as stat:
                own += stat.read().rpartition(")")[2].split()[0] == "R"
    except (OSError, ValueError, IndexError):
        return None
    return runnable - own


@contextlib.contextmanager
def busy_machine_threads() -> Iterator[None]:
    """One torch thread for the duration while other runnable threads fill every core, unless
    the user chose a thread count or changed torch's since hear_mn first saw it; the count is
    restored after. There, torch's threads were measured up to several times slower than 1
    thread (``benchmarks/bench_threads.py``)."""
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
    if not _machine_busy():
        yield
        return
    if not _Guard.reported:
        _Guard.reported = True
        logger.info(
            "every CPU core is busy with other work: hear_mn's calls run on 1 torch thread "
            "instead of %d while it is (pass threads= or --threads to choose)",
            threads,
        )
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _machine_busy() -> bool:
    """Whether other runnable threads fill every usable core, looked at again once the last
    look is :data:`BUSY_RECHECK_SECONDS` old."""
    now = time.monotonic()
    if now - _Guard.checked_at >= BUSY_RECHECK_SECONDS:
        running = others_running()
        _Guard.busy = running is not None and running >= usable_cores()
        _Guard.checked_at = now
    return _Guard.busy
