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

import os

__all__ = ["passive_waiting"]


def passive_waiting() -> None:
    """Let OpenMP threads sleep, not spin, while they wait, unless ``OMP_WAIT_POLICY`` is
    set already. It takes effect where torch loads afterwards: in this process if torch is
    not loaded yet, and in the processes it starts (Ray workers, subprocesses)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
