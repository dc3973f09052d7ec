"""The README stays true: its model table is the registry's, its commands are CI's."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _table_script():
    spec = importlib.util.spec_from_file_location(
        "update_readme_table", ROOT / "scripts" / "update_readme_table.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_model_table_is_generated_from_the_registry() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert _table_script().updated_readme(text) == text, (
        "README.md model table is stale: run python scripts/update_readme_table.py"
    )


def test_ci_runs_the_readme_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for command in ('pip install -e ".[test]"', "python -m pytest -q"):
        assert command in readme
        assert command in ci
