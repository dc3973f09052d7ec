"""The documentation site builds and its package diagram is the code's (issue 23, item 6 and
"a diagram of the package, generated from the code so it cannot drift").

``mkdocs build --strict`` fails on a broken link or heading anchor and on a page left out of
the navigation, so a passing build is a manual whose every page is reachable and every
cross-reference lands."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT


def _diagram_script():
    spec = importlib.util.spec_from_file_location(
        "architecture_diagram", ROOT / "scripts" / "architecture_diagram.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_site_builds_in_strict_mode(tmp_path: Path) -> None:
    pytest.importorskip("material", reason="mkdocs-material is in the test extra")
    assert (ROOT / "mkdocs.yml").is_file(), "no mkdocs.yml at the repository root"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # no banner in a failure's message
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for page in ("index.html", "install/index.html", "ARCHITECTURE/index.html"):
        assert (tmp_path / page).is_file(), f"the site has no {page}"
    architecture = (tmp_path / "ARCHITECTURE" / "index.html").read_text(encoding="utf-8")
    assert '<pre class="mermaid">' in architecture, "the package diagram is not rendered"


def test_the_architecture_diagram_is_generated_from_the_code() -> None:
    script = _diagram_script()
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    assert script.START in text and script.END in text, (
        "ARCHITECTURE.md has no diagram block: run python scripts/architecture_diagram.py"
    )
    assert script.with_diagram(text) == text, (
        "ARCHITECTURE.md's diagram is stale: run python scripts/architecture_diagram.py"
    )


def test_the_diagram_groups_the_generated_modules_into_one_node() -> None:
    script = _diagram_script()
    assert script.group_of("hear_mn.mn10_all_b_mel_avgs") == script.GENERATED
    assert script.group_of("hear_mn.dymn04_clf1_logits") == script.GENERATED
    assert script.group_of("hear_mn.old_configs.mn10_all_b") == script.GENERATED
    assert script.group_of("hear_mn.kwmlp") == script.GENERATED
    assert script.group_of("hear_mn.models.efficientat.dymn_network") == "models/efficientat/"
    assert script.group_of("hear_mn.evaluation.trainer") == "evaluation/"
    assert script.group_of("hear_mn.registry") == "registry"
    edges = script.group_edges()
    assert ("cli/", "hear") in edges or any(source == "cli/" for source, _ in edges)
    assert all(source != target for source, target in edges)
