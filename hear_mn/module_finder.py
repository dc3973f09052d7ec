"""HEAR modules for every configuration name the registry accepts, made on import.

The named configurations have generated files (``hear_mn/mn10_e1_l.py``); any other name the
registry accepts (``mn40_as_ext_e1_l``, ``dymn04_as_clf1``, a feature suffix) imports too, as
``import hear_mn.<name>``: hear-validator and heareval import modules by name, and a name
that ``hear-mn embed --model`` takes should work there as well. The module is the generated
template's source, executed under that name, so both kinds behave alike.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

PACKAGE = "hear_mn"


def _accepted(name: str) -> bool:
    """Whether the registry builds a configuration of this name (imports torch)."""
    from hear_mn.registry import get_config

    try:
        get_config(name)
    except (KeyError, ValueError, TypeError):
        return False
    return True


class _ConfigurationLoader(importlib.abc.Loader):
    def __init__(self, name: str) -> None:
        self.name = name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # the default module object

    def exec_module(self, module: ModuleType) -> None:
        from hear_mn.hear import module_source

        code = compile(module_source(self.name), f"<hear_mn.{self.name}>", "exec")
        exec(code, module.__dict__)


class ConfigurationFinder(importlib.abc.MetaPathFinder):
    """Finds ``hear_mn.<name>`` for a configuration name with no file of its own; consulted
    after the normal finders, so files (and the package's other modules) come first."""

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != PACKAGE or not name.isidentifier() or name.startswith("_"):
            return None
        if not _accepted(name):
            return None
        return importlib.util.spec_from_loader(fullname, _ConfigurationLoader(name))


def install() -> None:
    """Append the finder to ``sys.meta_path`` once."""
    if not any(isinstance(finder, ConfigurationFinder) for finder in sys.meta_path):
        sys.meta_path.append(ConfigurationFinder())
