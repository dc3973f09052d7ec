"""Threads on a shared machine: hear_mn leaves OpenMP's wait policy to OpenMP and the user
(passive waiting measured 1.4-1.7x slower on a quiet machine), and its calls use only the
cores that other work leaves free (benchmarks/bench_threads.py measures why)."""

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


@pytest.mark.parametrize("given", [None, "PASSIVE", "ACTIVE"])
@pytest.mark.parametrize(
    "code",
    [
        "import hear_mn",
        "import torch\nimport hear_mn",
        "from hear_mn import cli\ncli.main(['list', '--group', 'audiomlp'])",
    ],
)
def test_hear_mn_leaves_the_wait_policy_to_openmp_and_the_user(
    code: str, given: str | None
) -> None:
    """Passive waiting made every call on a quiet machine slower (mn04's scene of one 10 s
    clip 25.5 ms against 15.0 ms at 2 threads), and the free-cores rule below keeps torch's
    spinning threads off cores that other work holds."""
    assert _policy_after(code, given) == (given or "unset")


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
checks = []  # the threads the input's checks ran on (a long input's are parallel work)
def check_spy(audio, rate, check=model._audio_batch):
    checks.append(torch.get_num_threads())
    return check(audio, rate)
model._audio_batch = check_spy
threads.usable_cores = lambda: 4
for running in (99, 3, 1, 0):  # other runnable threads on the machine: busy ... quiet
    threads.others_running = lambda: running
    threads.others_busy = lambda: float(running)  # ... and busy all along
    model.scene_embeddings(torch.zeros(1, 16000))
print(*seen, torch.get_num_threads())
print(*checks)
"""


def _threads_seen(setup: str, options: str = "{}") -> list[int]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    code = setup + f"\nOPTIONS = {options}\n" + GUARD_PROBE
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    seen, checks = done.stdout.splitlines()[-2:]
    assert checks.split() == seen.split()[:-1], "the input checks ran on other threads"
    return [int(word) for word in seen.split()]


def test_hear_mn_calls_use_only_the_cores_other_work_leaves_free_unless_threads_are_chosen() -> (
    None
):
    """Beside a busy process on one of 2 cores, torch's 2 threads measured 2.85x the time of
    1 thread: the threads of hear_mn's calls are the cores that other runnable threads leave
    free (at least 1, at most the default; restored after each call); a count the user chose
    is kept, busy or not."""
    torch_first = "import torch; torch.set_num_threads(4)\nimport hear_mn"
    hear_mn_first = "import hear_mn\nimport torch; torch.set_num_threads(4)"
    # 4 usable cores; others running: 99, 3, 1, 0; then the count after the calls
    assert _threads_seen(torch_first) == [1, 1, 3, 4, 4]
    assert _threads_seen(hear_mn_first) == [1, 1, 3, 4, 4]
    assert _threads_seen(torch_first, "{'threads': 4}") == [4, 4, 4, 4, 4]
    assert _threads_seen(hear_mn_first, "{'threads': 4}") == [4, 4, 4, 4, 4]
    chosen_in_env = "import os; os.environ['OMP_NUM_THREADS'] = '4'\n" + hear_mn_first
    assert _threads_seen(chosen_in_env) == [4, 4, 4, 4, 4]


CLI_PROBE = """
import sys
import numpy as np, soundfile as sf, torch
from hear_mn import cli, threads
threads.others_running = lambda: 99  # every core busy with other work
threads.others_busy = lambda: 99.0
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
threads.others_busy = lambda: 99.0
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


@pytest.mark.parametrize(
    ("running", "busy", "free"),
    [
        (1, 0.97, 3),  # a busy process: one core less
        (3, 2.1, 2),  # two busy, a third just started: what both looks agree on
        (1, 0.04, 4),  # a thread the kernel ran for a moment: no core taken
        (2, None, 2),  # no measure of the time used (first look, or no /proc/stat)
        (None, None, 4),  # nothing to read (not Linux): every core
    ],
)
def test_free_cores_are_those_other_work_holds_now_and_has_held_lately(
    monkeypatch, running: int | None, busy: float | None, free: int
) -> None:
    from hear_mn import threads

    monkeypatch.setattr(threads, "usable_cores", lambda: 4)
    monkeypatch.setattr(threads, "others_running", lambda: running)
    monkeypatch.setattr(threads, "others_busy", lambda: busy)
    monkeypatch.setattr(threads._Guard, "checked_at", -float("inf"))
    assert threads.free_cores() == free


def test_others_busy_measures_another_process_and_not_this_one() -> None:
    """A process spinning on one core counts as about one busy core; this process's own
    spinning does not count."""
    code = """
import subprocess, sys, time
from hear_mn import threads
time.sleep(0.1)
threads.others_busy()
end = time.monotonic() + 0.4
while time.monotonic() < end:
    pass
alone = threads.others_busy()
hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
time.sleep(0.2)
threads.others_busy()
time.sleep(0.6)
beside = threads.others_busy()
hog.kill()
print(alone, beside)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    alone, beside = (float(word) for word in done.stdout.split())
    assert alone < 0.5 and 0.5 < beside < 1.6, (alone, beside)
