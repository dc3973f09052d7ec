"""Every Python snippet of the README and of docs/ runs as written (issue 22, item 4).

Each ```python block runs in a fresh interpreter, in a folder holding the placeholders the
snippets name (``my_audio/``, ``corpus/``, ``tasks/``, earlier outputs under
``embeddings/``), with random-weight checkpoints under the released file names in
``$HEAR_MN_WEIGHTS_DIR`` (nothing is downloaded). A snippet that uses Ray runs in a
loopback-only network namespace, as the Ray engine's tests do.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from support import ROOT

from hear_mn.registry import create_model, get_config

sf = pytest.importorskip("soundfile")

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
NAME = re.compile(r"\b((?:dy)?mn\d\d\w*|kwmlp|audiomae)\b")


def _snippets() -> list[tuple[str, str]]:
    found = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{document.relative_to(ROOT)}:{line}", match.group(1)))
    return found


SNIPPETS = _snippets()


def _weights_files(code: str) -> dict[str, str]:
    """Released weights file -> a configuration that uses it, for every name in ``code``."""
    files = {}
    for name in set(NAME.findall(code)):
        try:
            config = get_config(name)
        except (KeyError, ValueError):
            continue
        if not (ROOT / "hear_mn" / "checkpoints" / config.weights.file_name).exists():
            files.setdefault(config.weights.file_name, name)
    return files


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> tuple[Path, Path]:
    """(the snippets' working folder, the weights folder), made once for all snippets."""
    from support.hear_tasks import make_scene_task

    import hear_mn

    weights = tmp_path_factory.mktemp("weights")
    needed: dict[str, str] = {}
    for _, code in SNIPPETS:
        needed.update(_weights_files(code))
    torch.manual_seed(0)
    for file_name, name in needed.items():
        torch.save(create_model(name, pretrained=False).state_dict(), weights / file_name)

    work = tmp_path_factory.mktemp("snippets")
    rng = np.random.default_rng(0)
    for relative, rate in [
        ("my_audio/birds/a.wav", 44100),
        ("my_audio/b.flac", 16000),
        ("corpus/x/one.flac", 32000),
        ("corpus/y/two.flac", 22050),
    ]:
        path = work / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, 0.1 * rng.standard_normal(int(1.5 * rate)).astype(np.float32), rate)
    make_scene_task(work / "tasks")
    hear_mn.embed_files([work / "my_audio"], create_model("kwmlp"), work / "embeddings")
    return work, weights


def _namespaced(command: list[str]) -> list[str]:
    """``command`` in a loopback-only network namespace (skips where none can be made)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("unshare and ip are needed to run Ray in a loopback-only namespace")
    only_loopback = "test \"$(ip -o link show | cut -d: -f2 | tr -d ' ')\" = lo"
    script = f'ip link set lo up && {only_loopback} && exec "$@"'
    return ["unshare", "-n", "sh", "-c", script, "sh", *command]


@pytest.mark.parametrize("where, code", SNIPPETS, ids=[where for where, _ in SNIPPETS])
def test_snippet_runs_as_written(where: str, code: str, workspace, tmp_path: Path) -> None:
    work, weights = workspace
    script = tmp_path / "snippet.py"
    script.write_text(code, encoding="utf-8")
    env = {
        **os.environ,
        "HEAR_MN_WEIGHTS_DIR": str(weights),
        "HEAR_MN_HOME": str(tmp_path / "home"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, str(script)]
    ray_folder = None
    if re.search(r"\bimport ray\b|embed_dataset", code):
        pytest.importorskip("ray.data", reason="ray[data] is not installed")
        ray_folder = Path(tempfile.mkdtemp(prefix="hear-mn-ray-", dir="/tmp"))
        env["RAY_TMPDIR"] = str(ray_folder)
        command = _namespaced(command)
    try:
        result = subprocess.run(
            command, cwd=work, env=env, capture_output=True, text=True, timeout=600
        )
    finally:
        if ray_folder is not None:
            shutil.rmtree(ray_folder, ignore_errors=True)
    assert result.returncode == 0, f"{where} failed:\n{code}\n{result.stderr[-3000:]}"
