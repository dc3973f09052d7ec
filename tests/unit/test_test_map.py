"""The map of the tests (tests/README.md) holds: every test file lives in a tier folder, the
README names every folder, and the fast tier (``python -m pytest -m "not slow"``) imports
every module of hear_mn (issue 23, item 4).

The import check is static and cheap: it reads the fast-tier test files' imports (statements
anywhere in the file, ``importlib.import_module("hear_mn...")`` and ``hear_mn.<name>`` for
the package's lazily imported names), then follows the module-level imports of the hear_mn
modules they reach, which run whenever those modules are imported. The generated
per-configuration modules (``hear_mn/mn*.py``, ``dymn*.py``, ``kwmlp.py``, ``audiomae.py``
and ``old_configs/``) are the same few lines each: one of each kind stands for all.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from support import ROOT
from support.tiers import is_slow_path

import hear_mn

TESTS = ROOT / "tests"
PACKAGE = ROOT / "hear_mn"
TIERS = ("unit", "parity", "integration")
GENERATED = re.compile(r"hear_mn\.(old_configs\.\w+|(mn|dymn)\d\w*|kwmlp|audiomae)$")
# Modules that hear_mn imports only inside functions, where an import scan cannot follow, and
# the fast-tier test file that runs them (a test below checks that each is still only
# imported lazily, so that the table cannot outlive its reason).
LAZY = {
    "hear_mn.export.classifier_graph": "unit/classifier/test_classifier.py",  # export --classifier
    "hear_mn.models.audiomlp.onnx_graph": "unit/export/test_export.py",  # export_onnx of kwmlp
    "hear_mn.models.efficientat.graph_specs": "unit/export/test_export.py",  # MobileNet, DyMN
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_marked_slow(tree: ast.Module) -> bool:
    """Whether the file's ``pytestmark`` names ``slow``."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "pytestmark" for target in node.targets
        ):
            return "slow" in ast.unparse(node.value)
    return False


def fast_tier_files() -> list[Path]:
    """The test files the fast tier runs (besides single tests marked slow)."""
    files = []
    for path in sorted(TESTS.rglob("test_*.py")):
        if not is_slow_path(path) and not _is_marked_slow(ast.parse(path.read_text())):
            files.append(path)
    return files


def _with_parents(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def _imported(node: ast.AST, importer: str) -> set[str]:
    """The hear_mn modules that one import statement (in module ``importer``) imports."""
    names: set[str] = set()
    if isinstance(node, ast.Import):
        names = {alias.name for alias in node.names}
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            package = importer.split(".")
            if not MODULES.get(importer, Path()).name == "__init__.py":
                package = package[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join([*package, base] if base else package)
        names = {base} | {f"{base}.{alias.name}" for alias in node.names}
    found: set[str] = set()
    for name in names:
        if name in MODULES:
            found |= _with_parents(name)
    return found


def _used_by_test(tree: ast.Module) -> set[str]:
    """The hear_mn modules a test file imports: statements anywhere in it, import_module
    calls with a constant name, and the package's lazily imported names (hear_mn.<name>)."""
    used: set[str] = set()
    for node in ast.walk(tree):
        used |= _imported(node, "tests")
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("import_module"):
            if node.args and isinstance(node.args[0], ast.Constant):
                name = str(node.args[0].value)
                if name in MODULES:
                    used |= _with_parents(name)
        if isinstance(node, (ast.List, ast.Tuple)) and "'-m', 'hear_mn'" in ast.unparse(node):
            used.add("hear_mn.__main__")  # python -m hear_mn
        if isinstance(node, ast.Attribute) and ast.unparse(node.value) == "hear_mn":
            module = hear_mn._EXPORTS.get(node.attr)
            if module:
                used |= _with_parents(module)
    return used


def _module_level_imports(name: str) -> set[str]:
    """What importing hear_mn module ``name`` imports of hear_mn (its top-level statements,
    also inside top-level if/try blocks)."""
    tree = ast.parse(MODULES[name].read_text())
    found: set[str] = set()
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.If, ast.Try)):
            pending.extend(ast.iter_child_nodes(node))
        found |= _imported(node, name)
    return found


def imported_by_fast_tier() -> set[str]:
    """Every hear_mn module that the fast-tier test files import, directly or through the
    module-level imports of what they import."""
    direct: set[str] = set()
    for path in fast_tier_files():
        direct |= _used_by_test(ast.parse(path.read_text()))
    return with_module_level_imports(direct)


def with_module_level_imports(names: set[str]) -> set[str]:
    """``names`` and every hear_mn module their import imports in turn."""
    reached = set(names)
    pending = list(reached)
    while pending:
        for name in _module_level_imports(pending.pop()) - reached:
            reached.add(name)
            pending.append(name)
    return reached


def test_every_test_file_lives_in_a_tier_folder() -> None:
    misplaced = [
        str(path.relative_to(TESTS))
        for path in TESTS.rglob("test_*.py")
        if path.relative_to(TESTS).parts[0] not in TIERS
    ]
    assert not misplaced, f"test files outside {TIERS} (tests/README.md): {misplaced}"


def test_the_map_names_every_folder() -> None:
    readme = (TESTS / "README.md").read_text()
    folders = {
        f"{path.relative_to(TESTS).as_posix()}/"
        for path in TESTS.rglob("*")
        if path.is_dir() and "__pycache__" not in path.parts and path.parent.name != "data"
    }  # data/'s own folders are described by data/README.md
    missing = sorted(folder for folder in folders if f"`{folder}`" not in readme)
    assert not missing, f"tests/README.md does not name these folders: {missing}"


def test_the_fast_tier_imports_every_module() -> None:
    reached = imported_by_fast_tier()
    generated = {name for name in MODULES if GENERATED.search(name)}
    run_lazily = with_module_level_imports(set(LAZY))  # what a lazy import brings with it
    missing = sorted(set(MODULES) - generated - reached - run_lazily)
    assert not missing, f"no fast-tier test file imports these modules: {missing}"
    old_configs = {name for name in generated if name.startswith("hear_mn.old_configs.")}
    assert reached & (generated - old_configs), "no generated HEAR module is imported"
    assert reached & old_configs, "no module of hear_mn.old_configs is imported"


def test_the_scan_follows_module_level_imports() -> None:
    """Modules that no test imports itself count when an imported module imports them."""
    direct: set[str] = set()
    for path in fast_tier_files():
        direct |= _used_by_test(ast.parse(path.read_text()))
    assert "hear_mn.registry" in direct
    assert imported_by_fast_tier() > direct


def test_the_lazily_imported_modules_are_run_by_their_fast_tier_files() -> None:
    fast = {path.relative_to(TESTS).as_posix() for path in fast_tier_files()}
    reached = imported_by_fast_tier()
    for module, test_file in LAZY.items():
        assert module in MODULES and test_file in fast, (module, test_file)
        assert module not in reached, f"{module} is imported at module level now: drop it from LAZY"
