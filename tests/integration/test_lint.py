"""The code base stays ruff-clean (skipped where ruff is not installed)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from support import ROOT


def _ruff(*args: str) -> subprocess.CompletedProcess:
    """ruff of this interpreter's environment (``python -m ruff``), not whichever is on PATH."""
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True
    )


def test_ruff_check_is_clean() -> None:
    if _ruff("--version").returncode != 0:
        pytest.skip(f"ruff is not installed for {sys.executable} (pip install -e '.[test]')")
    result = _ruff("check", "hear_mn", "tests", "benchmarks", "setup.py")
    assert result.returncode == 0, result.stdout + result.stderr
