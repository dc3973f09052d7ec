"""Threads on a busy machine: the library API, like the command line, lets OpenMP's threads
sleep while they wait (benchmarks/bench_threads.py measures why), unless the user chose a
wait policy (OpenMP reads it once, when torch loads)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hear_mn.threads import usable_cores


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
threads.BUSY_RECHECK_SECONDS = 0  # look at the machine at every call
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


def test_on_a_busy_machine_hear_mn_calls_run_on_one_thread_unless_threads_are_chosen() -> None:
    """Beside a busy process on every core, torch's threads measured up to several times
    slower than 1 thread (spinning: torch loaded first) and 0.5x-1.2x (passive), so with
    every core busy hear_mn's calls use 1 thread (restored after each), on a quiet machine
    the default; a count the user chose is kept, busy or not."""
    torch_first = "import torch; torch.set_num_threads(2)\nimport hear_mn"
    hear_mn_first = "import hear_mn\nimport torch; torch.set_num_threads(2)"
    assert _threads_seen(torch_first) == [1, 2, 2]  # busy: 1; quiet: 2; afterwards: 2
    assert _threads_seen(hear_mn_first) == [1, 2, 2]
    assert _threads_seen(torch_first, "{'threads': 2}") == [2, 2, 2]
    assert _threads_seen(hear_mn_first, "{'threads': 2}") == [2, 2, 2]
    chosen_in_env = "import os; os.environ['OMP_NUM_THREADS'] = '2'\n" + hear_mn_first
    assert _threads_seen(chosen_in_env) == [2, 2, 2]


CLI_PROBE = """
import sys
import numpy as np, soundfile as sf, torch
from hear_mn import cli, threads
threads.others_running = lambda: 99  # every core busy with other work
counts = []
set_num_threads = torch.set_num_threads
torch.set_num_threads = lambda n: (counts.append(n), set_num_threads(n))[1]
folder = sys.argv[1]
sf.write(folder + "/a.wav", np.zeros(16000, dtype="float32"), 16000)
args = ["embed", folder + "/a.wav", "--model", "kwmlp", "--out", folder + "/out", "--quiet"]
print(cli.main(args + sys.argv[2:]), *counts)
"""


@pytest.mark.skipif(usable_cores() < 2, reason="needs 2 CPU cores for a default above 1")
@pytest.mark.parametrize(("given", "one_thread"), [([], True), (["--threads", "2"], False)])
def test_the_command_line_runs_on_one_thread_on_a_busy_machine_unless_told(
    tmp_path, given: list[str], one_thread: bool
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CLI_PROBE, str(tmp_path), *given], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    code, *counts = (int(word) for word in done.stdout.split())
    assert code == 0, done.stderr[-2000:]
    assert (1 in counts) == one_thread, counts
    assert counts[-1] == (usable_cores() if not given else 2)  # restored after the call


LOOKS_PROBE = """
import torch
import hear_mn
from hear_mn import threads
torch.set_num_threads(2)
looks = []
threads.others_running = lambda: looks.append(1) or 99
model = hear_mn.create_model("mn01_e1_l", pretrained=False)
for _ in range(5):
    model.scene_embeddings(torch.zeros(1, 16000))
threads.BUSY_RECHECK_SECONDS = 0
model.scene_embeddings(torch.zeros(1, 16000))
print(len(looks))
"""


def test_calls_in_quick_succession_share_one_look_at_the_machine() -> None:
    """Reading the load costs about 70 us, a tenth of a live window: 5 calls within
    BUSY_RECHECK_SECONDS look once; a look older than that is taken again."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    done = subprocess.run(
        [sys.executable, "-c", LOOKS_PROBE], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["2"]
