"""Time this checkout against an earlier revision, in one process, calls in alternation.

    python benchmarks/compare_revisions.py --base 3640564            # mn04_e1_l, mn10_e1_l
    python benchmarks/compare_revisions.py --base HEAD~3 --models mn10_e1_l --repeats 15
    python benchmarks/compare_revisions.py --smoke --json /tmp/revisions.json   # against HEAD

The base revision's ``hear_mn`` is exported with ``git archive`` into a temporary folder
and imported under another name (``hear_mn_base``), so both versions run side by side in
one process on the same inputs and weights: timestamp embeddings of 20 s and scene
embeddings of 16 clips of 10 s, calls alternating, medians compared. Outputs must be
equal (the ratio of unequal computations would mean nothing); the script says how far
apart they are. On a noisy machine this is the comparison to trust, not two runs of the
suite.
"""

from __future__ import annotations

import importlib
import io
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import harness
import torch
from bench_speed import paired_calls

import hear_mn

ROOT = Path(__file__).resolve().parents[1]
BASE_NAME = "hear_mn_base"


def import_revision(revision: str, folder: Path) -> object:
    """The package ``hear_mn`` as of ``revision``, imported as ``hear_mn_base``."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, "hear_mn"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    package = folder / BASE_NAME
    (folder / "hear_mn").rename(package)
    for path in package.rglob("*.py"):
        path.write_text(re.sub(r"\bhear_mn\b", BASE_NAME, path.read_text()))
    sys.path.insert(0, str(folder))
    return importlib.import_module(BASE_NAME)


def compare(
    base: object, name: str, repeats: int, seconds: float = 20, clips: int = 16
) -> list[dict]:
    """Per standard call: both revisions' median seconds, their ratio, how far apart."""
    models = {}
    for label, package in (("base", base), ("this", hear_mn)):
        torch.manual_seed(0)
        models[label] = package.create_model(name, pretrained=False)
    models["this"].load_state_dict(models["base"].state_dict())
    return [
        {
            "model": name,
            "call": row["call"],
            "base_s": row["seconds"]["base"],
            "this_s": row["seconds"]["this"],
            "ratio": row["seconds"]["this"] / row["seconds"]["base"],
            "max_relative_difference": row["max_relative_difference"]["this"],
        }
        for row in paired_calls(models, repeats, seconds, clips)
    ]


def main() -> None:
    parser = harness.parser(__doc__, repeats=9)
    parser.add_argument("--base", help="a git revision, e.g. HEAD~1 or a hash (--smoke: HEAD)")
    parser.add_argument("--models", default="mn04_e1_l,mn10_e1_l")
    args = harness.parse_args(parser)
    seconds, clips = (1, 2) if args.smoke else (20, 16)
    if args.smoke:
        args.base, args.models = args.base or "HEAD", "mn04_e1_l"
    if not args.base:
        parser.error("--base is required: the git revision to compare with")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        base = import_revision(args.base, Path(scratch))
        rows = [
            row
            for name in args.models.split(",")
            for row in compare(base, name, args.repeats, seconds, clips)
        ]
    lines = [
        f"base {args.base} vs this checkout",
        f"{'model':<22} {'call':<24} {'base s':>8} {'this s':>8} {'this/base':>9} "
        f"{'max rel diff':>12}",
    ]
    lines += [
        f"{r['model']:<22} {r['call']:<24} {r['base_s']:8.4f} {r['this_s']:8.4f} "
        f"{r['ratio']:9.3f} {r['max_relative_difference']:12.1e}"
        for r in rows
    ]
    harness.report(args, {"base": args.base, "rows": rows}, "\n".join(lines))


if __name__ == "__main__":
    main()
