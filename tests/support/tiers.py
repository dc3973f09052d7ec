"""The test tiers (tests/README.md): a test is slow when it lives under tests/integration/ or
is marked ``@pytest.mark.slow`` (itself, or its file through ``pytestmark``); the fast tier,
``python -m pytest -m "not slow"``, runs everything else."""

from __future__ import annotations

from pathlib import Path

from support import ROOT

SLOW_FOLDER = ROOT / "tests" / "integration"
# Seconds a fast-tier file may take (setup, calls and teardowns, on 2 busy cores) before the
# fast tier's summary names it as one to mark slow or make cheaper.
FAST_FILE_BUDGET = 20.0


def is_slow_path(path: Path) -> bool:
    """Whether a test file belongs to the slow tier by where it lives (tests/integration/)."""
    return SLOW_FOLDER in Path(path).resolve().parents
