"""The package is publishable: an sdist and a wheel that install and run in a clean environment.

Issue 22, item 10. ``python -m build`` makes the sdist and then the wheel from that sdist (so a
file missing from the sdist is missing from the wheel too), from a copy of the working tree
(the files git tracks or would track), so that the build leaves nothing in the checkout. Both
archives must hold the shipped checkpoints with their licence and attribution, and AudioSet's
class list. The wheel is then installed into a fresh virtual environment (no system site
packages; torch's CPU wheel first, then the wheel, which resolves the other dependencies from
the configured indexes) and used from a folder outside the source tree: the shipped kwmlp
model embeds audio, the class list loads, and ``hear-mn list`` runs.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from support import ROOT

pytestmark = pytest.mark.slow

TORCH = "torch==2.13.0"
SHIPPED = [
    "hear_mn/checkpoints/kwmlp.pth",
    "hear_mn/checkpoints/audiomae.pth",
    "hear_mn/checkpoints/LICENSE-CC-BY-SA-4.0.txt",
    "hear_mn/checkpoints/ATTRIBUTION.md",
    "hear_mn/audioset/class_labels_indices.csv",
    "hear_mn/audioset/ATTRIBUTION.md",
]
SMOKE = """
import sys
from pathlib import Path

import torch

import hear_mn
from hear_mn import kwmlp
from hear_mn.labels import load_labels

assert "site-packages" in Path(hear_mn.__file__).parts, hear_mn.__file__
model = kwmlp.load_model()
scene = kwmlp.get_scene_embeddings(torch.rand(2, 16000) * 2 - 1, model)
assert tuple(scene.shape) == (2, 1024), scene.shape
assert len(load_labels()) == 527
print("smoke ok")
"""


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (
        f"{' '.join(map(str, command))} failed ({result.returncode}):\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


def _source_copy(destination: Path) -> list[str]:
    """Copy the files of the working tree that git tracks or would track to ``destination``;
    return their relative paths."""
    listed = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT)
    copied = []
    for relative in filter(None, listed.split("\0")):
        source = ROOT / relative
        if source.is_file():
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            copied.append(relative)
    return copied


def _clean_env() -> dict[str, str]:
    """The environment without anything that would let the source tree be imported."""
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
    return {key: value for key, value in os.environ.items() if key not in drop}


@pytest.fixture(scope="module")
def distributions(tmp_path_factory) -> tuple[Path, Path, str, list[str]]:
    """(sdist, wheel, the build's log, the files copied) built by ``python -m build`` from a
    copy of the tree."""
    if importlib.util.find_spec("build") is None:
        pytest.skip("the `build` package is not installed (pip install build)")
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("the packaging test copies the tree git lists: needs git and a clone")
    source = tmp_path_factory.mktemp("source")
    copied = _source_copy(source)
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "build", "--outdir", str(out), str(source)]
    result = subprocess.run(command, cwd=source, capture_output=True, text=True, timeout=900)
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"python -m build failed:\n{log[-5000:]}"
    (sdist,) = out.glob("hear_mn-*.tar.gz")
    (wheel,) = out.glob("hear_mn-*.whl")
    return sdist, wheel, log, copied


def test_the_build_declares_its_backend_and_warns_of_nothing(distributions) -> None:
    """A [build-system] table (no legacy fallback) and no deprecation warnings from setuptools,
    whose deprecated forms stop building in later releases."""
    _, _, log, _ = distributions
    warnings = [line for line in log.splitlines() if "deprecat" in line.lower()]
    assert not warnings, "\n".join(warnings)
    assert "[build-system]" in (ROOT / "pyproject.toml").read_text(encoding="utf-8")


def test_the_sdist_is_the_clone(distributions) -> None:
    """The sdist holds the shipped files and every file of the clone (docs, the whole test
    suite with its helpers and data, scripts, examples) except dot-files such as .ci/."""
    sdist, _, _, copied = distributions
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    clone = {path for path in copied if not any(part.startswith(".") for part in path.split("/"))}
    missing = sorted(set(SHIPPED) - names) + sorted(clone - names)
    assert not missing, f"{sdist.name} lacks {len(missing)} file(s): {missing[:20]}"


def test_the_wheel_holds_the_shipped_files(distributions) -> None:
    _, wheel, _, _ = distributions
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [path for path in SHIPPED if path not in names]
    assert not missing, f"{wheel.name} lacks {missing}"
    assert not any(name.startswith("tests/") for name in names), "the wheel ships the tests"


def test_the_wheel_installs_and_runs_outside_the_source_tree(distributions, tmp_path) -> None:
    _, wheel, _, _ = distributions
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    python, env = venv / "bin" / "python", _clean_env()
    _run([str(python), "-m", "pip", "install", "-q", "--no-compile", TORCH], cwd=tmp_path, env=env)
    _run(
        [str(python), "-m", "pip", "install", "-q", "--no-compile", str(wheel)],
        cwd=tmp_path,
        env=env,
    )
    away = tmp_path / "elsewhere"
    away.mkdir()
    assert "smoke ok" in _run([str(python), "-c", SMOKE], cwd=away, env=env)
    listing = _run([str(venv / "bin" / "hear-mn"), "list"], cwd=away, env=env)
    kwmlp_row = next(line for line in listing.splitlines() if "kwmlp" in line.split())
    assert "shipped" in kwmlp_row, kwmlp_row
