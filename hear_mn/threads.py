"""OpenMP's wait policy for torch's threads, chosen before torch loads (torch-free).

Torch's intra-op threads meet at a barrier after every operation. On a shared machine one of
them is often descheduled, and under OpenMP's default policy its partners spin, burning the
CPU the descheduled one needs: beside a busy process on every core, torch's default thread
count ran several times slower than 1 thread, and with passive waiting no slower
(``benchmarks/bench_threads.py``; docs/speed.md), for a few per cent on an idle machine.
OpenMP reads the policy once, when torch loads it, so ``import hear_mn`` sets it unless the
user has chosen one; the command line does the same. Where torch was imported before
hear_mn, it applies to the processes started afterwards only; in this process hear_mn's
calls then run on 1 thread while the machine is busy (:func:`busy_machine_threads`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

__all__ = [
    "busy_machine_threads",
    "keep_threads",
    "others_running",
    "passive_waiting",
    "usable_cores",
]

logger = logging.getLogger("hear_mn")


class _SpinningTorch:
    """Torch's thread count when hear_mn was imported after torch under OpenMP's default
    (spinning) wait policy; None where there is nothing to guard (passive waiting, a policy
    the user chose, or threads the user asked hear_mn for)."""

    threads: int | None = None
    reported = False


def usable_cores() -> int:
    """The CPU cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def passive_waiting() -> None:
    """Let OpenMP threads sleep, not spin, while they wait, unless ``OMP_WAIT_POLICY`` is
    set already. It takes effect where torch loads afterwards: in this process if torch is
    not loaded yet, and in the processes it starts (Ray workers, subprocesses). Where torch
    was loaded first with spinning threads, :func:`busy_machine_threads` guards the calls."""
    if "OMP_WAIT_POLICY" not in os.environ and "torch" in sys.modules:
        _SpinningTorch.threads = sys.modules["torch"].get_num_threads()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def keep_threads() -> None:
    """The user asked for a thread count (``threads=``): hear_mn leaves it as it is."""
    _SpinningTorch.threads = None


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
    """One torch thread for the duration when torch's threads spin (torch was imported
    before hear_mn, no wait policy chosen), their count is still torch's own, and other
    threads keep every core busy: there, spinning threads were measured several times
    slower than 1 thread (``benchmarks/bench_threads.py``). The count is restored after."""
    threads = _SpinningTorch.threads
    torch = sys.modules.get("torch")
    if threads is None or threads < 2 or torch is None or torch.get_num_threads() != threads:
        yield
        return
    running = others_running()
    if running is None or running < usable_cores():
        yield
        return
    if not _SpinningTorch.reported:
        _SpinningTorch.reported = True
        logger.info(
            "torch was imported before hear_mn, so its %d threads spin while they wait; with "
            "every core busy, hear_mn's calls run on 1 thread (set OMP_WAIT_POLICY=PASSIVE, "
            "import hear_mn first, or pass threads= to choose)",
            threads,
        )
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
