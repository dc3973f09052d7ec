"""``hear-mn list`` shows a fixed table: it needs no torch and no numpy (issue 22, item 9e), so that it is
as fast as ``hear-mn --help`` (0.4 s) instead of 3-6 s.

What the table shows (the registry, embedding sizes from the block table and the Audio-MLP
rows, parameter and MAC counts from the generated table, the weights files' state) comes
from torch-free modules; the networks load only when a model is built.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from support import ROOT

WITHOUT_TORCH = textwrap.dedent(
    """
    import importlib.abc, sys

    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "numpy"):
                raise ImportError(f"{name} is not importable in this test")
            return None

    sys.meta_path.insert(0, NoTorch())
    from hear_mn import cli
    sys.exit(cli.main(["list"]))
    """
)


def test_list_runs_without_torch() -> None:
    run = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "mn10_e1_l" in run.stdout and "kwmlp" in run.stdout


def test_naming_and_sizing_configurations_needs_no_torch() -> None:
    """The registry, the families' registrations, sizes and weights files load without torch."""
    code = WITHOUT_TORCH.replace(
        'sys.exit(cli.main(["list"]))',
        "from hear_mn.registry import get_config, named_configs\n"
        "sizes = [c.embedding_sizes for c in named_configs()]\n"
        "print(get_config('mn40_as_ext_e1_l_all_se').embedding_sizes, len(sizes))",
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    from hear_mn.registry import named_configs

    assert run.stdout.split()[-1] == str(len(named_configs()))
