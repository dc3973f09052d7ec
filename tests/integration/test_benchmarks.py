"""Every benchmark runs in its --smoke mode (tiny inputs, one repeat, random weights) and
writes well-formed JSON with the environment record (benchmarks/harness.py)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT

BENCHMARKS = ROOT / "benchmarks"

# script (relative to benchmarks/) -> extra arguments of its smoke run
SMOKE = {
    "run_all.py": [],
    "bench_speed.py": [],
    "bench_original.py": ["--base", "HEAD"],
    "profile_breakdown.py": [],
    "bench_ablation.py": [],
    "bench_streaming.py": [],
    "bench_long_audio.py": [],
    "bench_threads.py": [],
    "bench_audiomlp_reference.py": [],
    "bench_backends.py": [],
    "bench_auto.py": [],
    "bench_cli_backend.py": [],
    "bench_dymn.py": [],
    "bench_fraction_of_peak.py": [],
    "bench_gpu.py": [],
    "bench_batch_independence.py": [],
    "bench_edge.py": [],
    "compare_revisions.py": [],
    "parity_table.py": [],
    "precision_margin.py": [],
    "bench_evaluation.py": [],  # heareval's runners on one small task: about a minute
    "evaluation_parity.py": [],  # heareval's runners and ours, kwmlp, one task, one seed
    "bench_long_file_memory.py": [],
    "studies/bench_decode.py": [],
    "studies/bench_quantization.py": [],
    "studies/window_reuse.py": [],
    "studies/bench_fit_memory.py": [],
}
# Ray binds its servers to every interface: these run in a loopback-only namespace.
RAY = {"bench_ray.py": [], "bench_ray_fixed_cost.py": []}
ENVIRONMENT_KEYS = ("cpu", "cpus", "torch", "numpy", "onnxruntime", "threads", "load_average")


def _check(command: list[str], out: Path) -> None:
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(out.read_text())
    environment = record["environment"]
    for key in ENVIRONMENT_KEYS:
        assert key in environment, f"{command[1]}: the environment record lacks {key}"
    assert record["smoke"] is True


def test_every_benchmark_has_a_smoke_run() -> None:
    """A new script is on the harness and listed here, or this fails."""
    scripts = {
        str(path.relative_to(BENCHMARKS))
        for path in [*BENCHMARKS.glob("*.py"), *BENCHMARKS.glob("studies/*.py")]
    }
    assert scripts - {"harness.py"} == set(SMOKE) | set(RAY)


@pytest.mark.parametrize("script", sorted(SMOKE))
def test_smoke_run_writes_json_with_the_environment(script: str, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    command = [sys.executable, str(BENCHMARKS / script), "--smoke", "--json", str(out)]
    _check(command + SMOKE.get(script, []), out)


def _loopback_only() -> str | None:
    """Why no loopback-only network namespace can be made here (None: it can)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare and ip are needed for a loopback-only namespace"
    probe = subprocess.run(
        ["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, text=True
    )
    return None if probe.returncode == 0 else f"no loopback-only namespace: {probe.stderr}"


@pytest.mark.parametrize("script", sorted(RAY))
def test_ray_smoke_run_writes_json_with_the_environment(script: str, tmp_path: Path) -> None:
    reason = _loopback_only()
    if reason:
        pytest.skip(reason)
    out = tmp_path / "out.json"
    inner = [sys.executable, str(BENCHMARKS / script), "--smoke", "--json", str(out), *RAY[script]]
    command = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *inner]
    _check(command, out)


def test_run_all_names_only_scripts_that_exist() -> None:
    scripts = re.findall(r'Step\(\s*"([\w/]+\.py)"', (BENCHMARKS / "run_all.py").read_text())
    assert len(scripts) >= 10
    for script in scripts:
        assert (BENCHMARKS / script).exists(), script
