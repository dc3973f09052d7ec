"""The README stays true: its model tables are the registry's, its commands are CI's."""

from __future__ import annotations

import importlib.util
import re

from support import ROOT


def _table_script():
    spec = importlib.util.spec_from_file_location(
        "update_readme_table", ROOT / "scripts" / "update_readme_table.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_model_tables_are_generated_from_the_registry() -> None:
    """The README's table of the paper's configurations, docs/models.md's table of the
    EfficientAT_HEAR modules and docs/speed.md's benchmark summary are the script's output."""
    script = _table_script()
    assert set(script.GENERATED) == {
        ROOT / "README.md",
        ROOT / "docs" / "models.md",
        ROOT / "docs" / "speed.md",
    }
    for document, update in script.GENERATED.items():
        text = document.read_text(encoding="utf-8")
        assert update(text) == text, (
            f"{document.relative_to(ROOT)} is stale: run python scripts/update_readme_table.py"
        )
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "`mn40_ext_e1_l_all_se` (best)" in readme
    assert "`mn10_all_b_mel_avgs_hop5`" in (ROOT / "docs" / "models.md").read_text("utf-8")


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


LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE_BLOCK = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of ``markdown`` (code blocks left out)."""
    anchors: set[str] = set()
    for line in FENCE_BLOCK.sub("", markdown).splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
            anchors.add(slug)
    return anchors


def test_documentation_links_resolve() -> None:
    """Every relative link of the README and docs/ names a file that exists and, with a
    #fragment, a heading of that file (issue 22, item 10: the manual moved to docs/)."""
    broken = []
    for document in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = document.read_text(encoding="utf-8")
        for target in LINK.findall(FENCE_BLOCK.sub("", text)):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, fragment = target.partition("#")
            linked = (document.parent / path).resolve() if path else document
            if not linked.exists():
                broken.append(f"{document.name}: {target} (no such file)")
            elif fragment and fragment not in _anchors(linked.read_text(encoding="utf-8")):
                broken.append(f"{document.name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
