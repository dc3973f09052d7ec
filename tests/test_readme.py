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


def _setup_commands() -> list[str]:
    """The command lines of the README's set-up block (comments stripped)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Set-up", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    lines = [line.split("  #", 1)[0].strip() for line in block.splitlines()]
    return [line for line in lines if line]


def test_readme_set_up_makes_a_fresh_small_cpu_install() -> None:
    """Issue 22, item 1: the set-up a newcomer copies makes a virtual environment and takes
    torch's CPU build before the package (a plain torch requirement pulls a multi-GB CUDA build)."""
    commands = _setup_commands()
    assert "venv" in commands[0], commands
    install = next(line for line in commands if 'pip install -e ".[test]"' in line)
    cpu = "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
    assert cpu in install and install.index(cpu) < install.index("pip install -e"), install


def test_ci_runs_the_readme_commands() -> None:
    """.ci/run runs exactly the README's set-up lines, in the README's order."""
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    positions = []
    for command in _setup_commands():
        assert command in ci_lines, f".ci/run does not run the README's {command!r}"
        positions.append(ci_lines.index(command))
    assert positions == sorted(positions)
