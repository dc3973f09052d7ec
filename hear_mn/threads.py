"""OpenMP's wait policy for torch's threads, chosen before torch loads (torch-free).

Torch's intra-op threads meet at a barrier after every operation. On a shared machine one of
them is often descheduled, and under OpenMP's default policy its partners spin, burning the
CPU the descheduled one needs: beside a busy process on every core, torch's default thread
count ran several times slower than 1 thread, and with passive waiting no slower
(``benchmarks/bench_threads.py``; docs/speed.md), for a few per cent on an idle machine.
OpenMP reads the policy once, when torch loads it, so ``import hear_mn`` sets it unless the
user has chosen one; the command line does the same. Where torch was imported before
hear_mn, it applies to the processes started afterwards only (docs/speed.md).
"""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["passive_waiting", "usable_cores"]

logger = logging.getLogger("hear_mn")


def usable_cores() -> int:
    """The CPU cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def passive_waiting() -> None:
    """Let OpenMP threads sleep, not spin, while they wait, unless ``OMP_WAIT_POLICY`` is
    set already. It takes effect where torch loads afterwards: in this process if torch is
    not loaded yet, and in the processes it starts (Ray workers, subprocesses). Where torch
    was loaded first with spinning threads on a busy machine, a warning says what to do."""
    if "OMP_WAIT_POLICY" not in os.environ and "torch" in sys.modules:
        _warn_if_spinning(sys.modules["torch"].get_num_threads())
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _warn_if_spinning(threads: int) -> None:
    """Warn when ``threads`` spinning torch threads share a machine whose load average
    already fills its cores: measured several times slower than 1 thread there."""
    cores = usable_cores()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return
    if threads > 1 and load >= cores:
        logger.warning(
            "torch was imported before hear_mn, so its %d threads spin while they wait; with "
            "the machine busy (load average %.1f on %d cores) that can be several times "
            "slower than 1 thread. Set OMP_WAIT_POLICY=PASSIVE in the environment (or import "
            "hear_mn before torch), or call torch.set_num_threads(1).",
            threads,
            load,
            cores,
        )
