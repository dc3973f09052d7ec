"""Running the project's pieces from a test: the hear-mn command in-process, a random
checkpoint to load without a download, a wheel built from a copy of the project."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from support import ROOT


def build_wheel(folder: Path, leave_out: tuple[str, ...] = ()) -> Path:
    """The wheel ``pip wheel`` builds from a copy of the project in ``folder`` (offline, no
    build isolation), the package's files matching ``leave_out`` not copied."""
    source = folder / "source"
    source.mkdir()
    for name in ("setup.py", "setup.cfg", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", *leave_out)
    shutil.copytree(ROOT / "hear_mn", source / "hear_mn", ignore=ignore)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation"]
        + ["--no-index", "-q", "-w", str(folder / "dist")],
        cwd=source,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, f"building the wheel failed:\n{build.stdout}{build.stderr}"
    (wheel,) = (folder / "dist").glob("hear_mn-*.whl")
    return wheel


def run_cli(capsys: pytest.CaptureFixture, *argv: object) -> tuple[int, str, str]:
    """hear-mn in this process: (exit code, stdout, stderr)."""
    from hear_mn import cli

    return (cli.main([str(a) for a in argv]), *capsys.readouterr())


def save_random_checkpoint(path: Path, config: str, seed: int = 0) -> Path:
    """A randomly initialised backbone of ``config`` (seeded by ``seed``) saved at ``path``,
    for runs that must load weights without downloading any."""
    from hear_mn.registry import create_model

    torch.manual_seed(seed)
    torch.save(create_model(config, pretrained=False).backbone.state_dict(), path)
    return path
