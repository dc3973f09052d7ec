"""The test command says what it skipped and why, and has a fast tier (issue 22, item 6;
issue 23, item 4: the tier is the folder, or a slow mark in the file)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support import ROOT


def _pytest(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_quiet_run_prints_each_skip_reason(tmp_path: Path) -> None:
    """`python -m pytest -q` (the README's command) lists every skip with its reason."""
    test = tmp_path / "test_skips.py"
    test.write_text(
        "import pytest\n\n\ndef test_skipped():\n    pytest.skip('needs the widget fixtures')\n"
    )
    result = _pytest("-q", "-c", str(ROOT / "setup.cfg"), "--rootdir", str(tmp_path), str(test))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "needs the widget fixtures" in result.stdout, result.stdout


def _collected(*args: str) -> set[str]:
    result = _pytest("--collect-only", "-q", *args)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return {line.split("::")[0] for line in result.stdout.splitlines() if "::" in line}


def test_the_fast_tier_leaves_out_integration_and_upstream_watchers() -> None:
    """`-m "not slow"` is the fast tier: no file of tests/integration/, every file of
    tests/unit/ and tests/parity/ not marked slow; upstream_bug tests stay out of every
    default run."""
    everything = _collected()
    fast = _collected("-m", "not slow")
    integration = {name for name in everything if name.startswith("tests/integration/")}
    assert {
        "tests/integration/test_evaluation_heareval.py",
        "tests/integration/test_ray_engine.py",
    } <= integration
    assert not integration & fast
    assert {"tests/unit/test_hostile.py", "tests/parity/test_parity_subset.py"} <= fast
    for run in (["-q"], ["-q", "-m", "not slow"]):
        listed = _pytest("--collect-only", *run).stdout
        assert "upstream_bug" not in listed and "known_upstream_bug" not in listed
    watchers = _pytest("--collect-only", "-q", "-m", "upstream_bug").stdout
    assert "test_known_upstream_bug_event_predictions_keyerror" in watchers
