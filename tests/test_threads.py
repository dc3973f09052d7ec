"""Threads on a busy machine: the library API, like the command line, lets OpenMP's threads
sleep while they wait (benchmarks/bench_threads.py measures why), unless the user chose a
wait policy (OpenMP reads it once, when torch loads)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _policy_after(code: str, given: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given is not None:
        env["OMP_WAIT_POLICY"] = given
    probe = code + "\nimport os; print(os.environ.get('OMP_WAIT_POLICY', 'unset'))"
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()[-1]


@pytest.mark.parametrize(("given", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_importing_hear_mn_makes_openmp_wait_passively(given: str | None, expected: str) -> None:
    assert _policy_after("import hear_mn", given) == expected


def test_torch_loaded_first_keeps_its_policy_and_children_wait_passively() -> None:
    """OpenMP read the policy when torch loaded: this process keeps spinning, but the
    processes it starts (Ray workers, subprocesses) get the passive policy."""
    code = "import torch\nimport hear_mn"
    assert _policy_after(code, None) == "PASSIVE"


def _stderr_of(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    busy = "import os; os.getloadavg = lambda: (99.0, 99.0, 99.0)\n"
    done = subprocess.run(
        [sys.executable, "-c", busy + code], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


def test_spinning_threads_on_a_busy_machine_are_reported_once() -> None:
    """torch loaded first without a policy: its threads spin; on a busy machine that is
    several times slower than 1 thread, so importing hear_mn says what to do."""
    warned = _stderr_of("import torch; torch.set_num_threads(2)\nimport hear_mn, hear_mn.cli")
    assert warned.count("OMP_WAIT_POLICY=PASSIVE") == 1, warned
    assert "torch.set_num_threads(1)" in warned
    assert _stderr_of("import torch; torch.set_num_threads(1)\nimport hear_mn") == ""
    assert _stderr_of("import hear_mn\nimport torch; torch.set_num_threads(2)") == ""
