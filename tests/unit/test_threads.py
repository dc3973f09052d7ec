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


GUARD_PROBE = """
import torch
from hear_mn import threads
model = hear_mn.create_model("mn01_e1_l", pretrained=False, **OPTIONS)
seen = []
def spy(batch, network=model._scene_embeddings):
    seen.append(torch.get_num_threads())
    return network(batch)
model._scene_embeddings = spy
for running in (99, 0):  # other runnable threads on the machine: busy, then quiet
    threads.others_running = lambda: running
    model.scene_embeddings(torch.zeros(1, 16000))
print(*seen, torch.get_num_threads())
"""


def _threads_seen(setup: str, options: str = "{}") -> list[int]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    code = setup + f"\nOPTIONS = {options}\n" + GUARD_PROBE
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return [int(word) for word in done.stdout.split()]


def test_spinning_threads_on_a_busy_machine_run_hear_mn_calls_on_one_thread() -> None:
    """torch loaded first without a policy: its threads spin, which on a busy machine is
    several times slower than 1 thread (bench_threads.py); hear_mn's calls then use 1 thread
    (the user's setting restored after each), and the default on a quiet machine."""
    torch_first = "import torch; torch.set_num_threads(2)\nimport hear_mn"
    assert _threads_seen(torch_first) == [1, 2, 2]  # busy: 1; quiet: 2; afterwards: 2
    # threads asked for explicitly are kept, busy or not
    assert _threads_seen(torch_first, "{'threads': 2}") == [2, 2, 2]
    # hear_mn first: passive waiting, no slower than 1 thread when busy; nothing changed
    assert _threads_seen("import hear_mn\nimport torch; torch.set_num_threads(2)") == [2, 2, 2]
