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


def _imports(
    tree: ast.AST, modules: set[str], here: str, type_checking: bool = False
) -> list[tuple[str, list[str]]]:
    """(imported hear_mn module, names taken from it) of every import, at any depth; those
    only for type checkers (``if TYPE_CHECKING:``) too with ``type_checking``."""
    found: list[tuple[str, list[str]]] = []
    if type_checking:
        statements = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    else:
        statements = DIAGRAM.runtime_imports(tree)
    for node in statements:
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


def _graph(type_checking: bool = False) -> dict[str, set[str]]:
    package = _package()
    modules = set(package)
    return {
        name: {
            target
            for target, _ in _imports(tree, modules, name, type_checking)
            if target != name
        }
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
    """Not even through imports for type checkers: a type one module needs of a module that
    imports it is a Protocol where it is needed."""
    graph = _graph(type_checking=True)
    assert "hear_mn.registry" in graph and graph["hear_mn.registry"]
    runtime = _graph()
    assert any(graph[name] > runtime[name] for name in graph)  # they are read
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


# --------------------------------------------------------------------------- hub/ and writers

# hear_mn/hub/, bottom up: each module imports only those before it (and hear_mn.atomic), so
# loading a weights file walks down the list and never back up.
HUB_LAYERS = (
    "errors",
    "regular_files",
    "locations",
    "limits",
    "integrity",
    "published",
    "download",
    "fetch",
    "weights_spec",
    "checkpoint",
    "weights",
)
ATOMIC = "hear_mn.atomic"


def test_the_hub_imports_one_way() -> None:
    graph = _graph()
    hub = [f"hear_mn.hub.{name}" for name in HUB_LAYERS]
    assert sorted(name for name in graph if name.startswith("hear_mn.hub")) == sorted(
        ["hear_mn.hub", *hub]
    )
    assert graph["hear_mn.hub"] == set(), "hear_mn/hub/__init__.py re-exports nothing"
    offences = [
        f"{name} imports {target}"
        for rank, name in enumerate(hub)
        for target in sorted(graph[name])
        if target not in (*hub[:rank], ATOMIC, "hear_mn.hub")
    ]
    assert offences == [], "\n".join(offences)


def _dotted(node: ast.AST) -> str:
    """``os.replace`` for the expression ``os.replace``; "" for anything but names."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


# Calls that put a file in place, or make one to put in place: hear_mn.atomic's job alone.
PLACING = {
    "os.replace",
    "os.rename",
    "os.renames",
    "os.fsync",
    "os.link",
    "shutil.move",
    "shutil.copy",
    "shutil.copy2",
    "shutil.copyfile",
}
# The only parts of tempfile used: files that delete themselves, scratch space (a spill, a
# probe), never an output.
SCRATCH = {
    "tempfile.TemporaryFile",
    "tempfile.TemporaryDirectory",
    "tempfile.NamedTemporaryFile",
    "tempfile.SpooledTemporaryFile",
}
# Modules that write a scratch file by hand, and why.
SCRATCH_WRITERS = {
    "hear_mn.engines.ray_worker": "a Ray row's bytes copied into a TemporaryDirectory for "
    "the audio decoder, which reads paths",
}


def _writing_mode(call: ast.Call) -> bool:
    """Whether a call of ``open`` opens for writing (mode with w, a, x or +)."""
    modes = [*call.args[1:2], *(k.value for k in call.keywords if k.arg == "mode")]
    return any(
        isinstance(mode, ast.Constant)
        and isinstance(mode.value, str)
        and set(mode.value) & set("wax+")
        for mode in modes
    )


def _hand_written_writes(name: str, tree: ast.AST) -> list[str]:
    """What in ``tree`` writes or places a file without :mod:`hear_mn.atomic`."""
    found = []
    for node in ast.walk(tree):
        where = f"{name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.ImportFrom) and node.module in ("os", "shutil", "tempfile"):
            found += [
                f"{where} imports {node.module}.{alias.name}"
                for alias in node.names
                if f"{node.module}.{alias.name}" in PLACING
                or (node.module == "tempfile" and f"tempfile.{alias.name}" not in SCRATCH)
            ]
        elif isinstance(node, (ast.Name, ast.Attribute)) and _dotted(node).endswith("O_CREAT"):
            found.append(f"{where} creates a file with os.open")
        elif isinstance(node, ast.Attribute) and _dotted(node).startswith("tempfile."):
            if _dotted(node) not in SCRATCH:
                found.append(f"{where} uses {_dotted(node)}")
        if not isinstance(node, ast.Call):
            continue
        called = _dotted(node.func)
        method = node.func.attr if isinstance(node.func, ast.Attribute) else ""
        if called in PLACING:
            found.append(f"{where} calls {called}")
        elif called == "open" and _writing_mode(node):
            found.append(f"{where} opens a file for writing")
        elif method == "rename" or (
            method == "replace" and len(node.args) == 1 and not node.keywords
        ):
            found.append(f"{where} calls .{method}() (a Path moved into place)")
        elif method in ("write_bytes", "write_text") and name not in SCRATCH_WRITERS:
            found.append(f"{where} calls .{method}()")
        elif called == "tempfile.NamedTemporaryFile" and any(
            k.arg == "delete" for k in node.keywords
        ):
            found.append(f"{where} keeps a NamedTemporaryFile")
    return found


def test_every_writer_goes_through_the_atomic_helper() -> None:
    """Outputs, downloads, hash records, ONNX files, classifier heads, evaluation files: every
    file the library leaves on disk is written by :mod:`hear_mn.atomic` (a temporary file
    beside the target, fsynced, moved into place, its mode from the umask); elsewhere only
    self-deleting scratch files are made."""
    offences = [
        found
        for name, (_, tree) in _package().items()
        if name != ATOMIC
        for found in _hand_written_writes(name, tree)
    ]
    assert offences == [], "\n".join(offences)


def test_the_writer_scan_sees_hand_written_writes() -> None:
    source = """
import os, tempfile
from shutil import move
fd = os.open(path, os.O_WRONLY | os.O_CREAT)
os.replace(tmp, path)
Path(tmp).replace(path)
open(path, "wb")
open(path, mode="a")
tempfile.mkstemp()
tempfile.NamedTemporaryFile(delete=False)
Path(path).write_bytes(b"")
"""
    found = _hand_written_writes("m", ast.parse(source))
    assert len(found) == 9, found
    harmless = 'open(path, "rb"); text.replace("a", "b"); dataclasses.replace(row, x=1)\n'
    harmless += "with tempfile.TemporaryFile() as f: pass\n"
    assert _hand_written_writes("m", ast.parse(harmless)) == []


def test_each_file_error_is_defined_once_under_one_name() -> None:
    """The errors of needed files (:mod:`hear_mn.hub.errors`) and every subclass of them are
    each defined once, and no module binds another name to one (no ``FileError = ...``)."""
    package = _package()
    homes = [
        name
        for name, (_, tree) in package.items()
        if any(isinstance(node, ast.ClassDef) and node.name == "FileError" for node in tree.body)
    ]
    family = {node.name for node in package[homes[0]][1].body if isinstance(node, ast.ClassDef)}
    assert {"FileError", "BadFileError", "FileAccessError", "FileUnavailableError"} <= family
    definitions: dict[str, list[str]] = {}
    aliases = []
    for name, (_, tree) in package.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                definitions.setdefault(node.name, []).append(name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                value = _dotted(node.value).rpartition(".")[2]
                if value in family:
                    aliases.append(f"{name}:{node.lineno} binds a second name to {value}")
    subclasses = {
        node.name
        for _, tree in package.values()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and any(_dotted(base).rpartition(".")[2] in family for base in node.bases)
    }
    twice = {
        error: definitions[error]
        for error in sorted(family | subclasses)
        if len(definitions[error]) != 1
    }
    assert aliases == [], "\n".join(aliases)
    assert twice == {}
    assert homes == ["hear_mn.hub.errors"]
