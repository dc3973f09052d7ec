"""The package's structure: imports flow one way, no one uses another module's private names,
and modules stay small enough to read (ARCHITECTURE.md describes the layout)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

from support import ROOT

PACKAGE = ROOT / "hear_mn"
# Modules allowed past MAX_LINES, and why.
LONG_MODULES = {
    "hear_mn.models.audiomlp.network": "the two gMLP encoders, their frontends and their "
    "streaming in one reference-exact unit (see its docstring); split, the numbers would be "
    "spread apart",
}
MAX_LINES = 420


def _load_diagram_script():
    """scripts/architecture_diagram.py, which reads the same import graph from the source."""
    path = ROOT / "scripts" / "architecture_diagram.py"
    spec = importlib.util.spec_from_file_location("architecture_diagram", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DIAGRAM = _load_diagram_script()


def _imports(tree: ast.AST, modules: set[str], here: str) -> list[tuple[str, list[str]]]:
    """(imported hear_mn module, names taken from it) of every import, at any depth, except
    those only for type checkers."""
    found: list[tuple[str, list[str]]] = []
    for node in DIAGRAM.runtime_imports(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names if alias.name in modules)
            continue
        base = DIAGRAM.absolute_base(node, here)
        if base not in modules:
            continue
        names = []
        for alias in node.names:
            if f"{base}.{alias.name}" in modules:
                found.append((f"{base}.{alias.name}", []))
            else:
                names.append(alias.name)
        found.append((base, names))
    return found


def _package() -> dict[str, tuple[Path, ast.AST]]:
    return {
        DIAGRAM.module_name(path): (path, ast.parse(path.read_text(), str(path)))
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _graph() -> dict[str, set[str]]:
    package = _package()
    modules = set(package)
    return {
        name: {target for target, _ in _imports(tree, modules, name) if target != name}
        for name, (_, tree) in package.items()
    }


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (a module list that ends where it starts), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_import_graph_has_no_cycle() -> None:
    graph = _graph()
    assert "hear_mn.registry" in graph and graph["hear_mn.registry"]
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


# The package that lists the families (one import per folder registers it).
REGISTRATION = "hear_mn.models"


def _family_folder(module: str) -> str | None:
    """``hear_mn.models.<family>`` for a module in a family's folder, else None."""
    parts = module.split(".")
    if parts[:2] == ["hear_mn", "models"] and len(parts) > 2:
        return ".".join(parts[:3])
    return None


def test_only_a_family_folder_imports_that_family() -> None:
    """No module outside ``hear_mn/models/<family>/`` imports that family (the registration
    list ``hear_mn.models`` aside): the registry, export and engines ask the family through
    ``config.Family`` and ``model.EmbeddingModel``, and families do not import each other."""
    graph = _graph()
    assert {_family_folder(name) for name in graph} >= {
        "hear_mn.models.efficientat",
        "hear_mn.models.audiomlp",
    }
    offences = sorted(
        f"{name} imports {target}"
        for name, targets in graph.items()
        for target in targets
        if _family_folder(target) not in (None, _family_folder(name)) and name != REGISTRATION
    )
    assert offences == []


def test_family_folders_are_read_from_module_names() -> None:
    folder = "hear_mn.models.efficientat"
    assert _family_folder(f"{folder}.efficientat_embedder") == folder
    assert _family_folder("hear_mn.models") is None
    assert _family_folder("hear_mn.export.spec") is None


def test_no_module_imports_another_modules_private_names() -> None:
    package = _package()
    modules = set(package)
    offences = [
        f"{name} imports {target}.{taken}"
        for name, (_, tree) in package.items()
        for target, names in _imports(tree, modules, name)
        for taken in names
        if taken.startswith("_") and not taken.startswith("__") and target != name
    ]
    assert offences == []


def test_modules_stay_readable() -> None:
    long = {
        name: len(path.read_text().splitlines())
        for name, (path, _) in _package().items()
        if name not in LONG_MODULES
    }
    assert {name: lines for name, lines in long.items() if lines > MAX_LINES} == {}
