"""Write the per-configuration HEAR modules from the catalog (never edit them by hand).

Every named configuration of :mod:`hear_mn.catalog` gets ``hear_mn/<name>.py``, a few lines
that name its registry entry (the template is :func:`hear_mn.hear.module_source`); the paper's configurations also get
``hear_mn/old_configs/<name>.py``, the import path of the original README.

    python scripts/generate_modules.py          # (re)write them, remove stale ones
    python scripts/generate_modules.py --check  # exit 1 if any is missing, stale or extra
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hear_mn.catalog import NAMED
from hear_mn.hear import GENERATED_MARK, module_source, old_configs_source

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hear_mn"
OLD_CONFIGS = PACKAGE / "old_configs"


def expected_files() -> dict[Path, str]:
    """Every generated file and its content."""
    files = {PACKAGE / f"{name}.py": module_source(name) for name in NAMED}
    for name, row in NAMED.items():
        if row.old_configs:
            files[OLD_CONFIGS / f"{name}.py"] = old_configs_source(name)
    return files


def _is_generated(path: Path) -> bool:
    """A module this script wrote: its docstring opens with "HEAR module" and has the mark."""
    text = path.read_text()
    return text.startswith('"""HEAR module') and GENERATED_MARK in text.split("\n", 1)[0]


def stale_files(expected: dict[Path, str]) -> list[Path]:
    """Generated modules that no catalog entry asks for any more."""
    found = [*PACKAGE.glob("*.py"), *OLD_CONFIGS.glob("*.py")]
    return [path for path in found if path not in expected and _is_generated(path)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check, change nothing")
    args = parser.parse_args()
    expected = expected_files()
    wrong = [p for p, text in expected.items() if not p.exists() or p.read_text() != text]
    stale = stale_files(expected)
    if args.check:
        if wrong or stale:
            names = ", ".join(str(p.relative_to(ROOT)) for p in [*wrong, *stale][:5])
            sys.exit(f"HEAR modules out of date ({names} ...): run scripts/generate_modules.py")
        return
    for path in wrong:
        path.write_text(expected[path])
    for path in stale:
        path.unlink()
    print(f"{len(wrong)} written, {len(stale)} removed, {len(expected)} in all")


if __name__ == "__main__":
    main()
