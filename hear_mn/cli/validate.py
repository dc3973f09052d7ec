"""``hear-mn validate``: hear-validator's checks on a HEAR module (:mod:`hear_mn.validation`)."""

from __future__ import annotations

import argparse

from hear_mn.cli.common import EXIT_FAILED, EXIT_OK, SubParsers, add_command, err, out

EXAMPLES = """examples:
  hear-mn validate hear_mn.mn04_e1_l
  hear-mn validate hear_mn.mn40_ext_e1_l -m ~/weights/mn40_as_ext_mAP_487.pt
  hear-mn validate path/to/my_module.py
  hear-mn validate hear_mn.mn10_all_b_mel_avgs_hop5 --random-weights   # no weights needed

Checks what hear-validator checks, without TensorFlow: the module imports and has
load_model, get_scene_embeddings and get_timestamp_embeddings; the model's sample_rate
is one of HEAR's rates and its embedding sizes are positive ints; on random audio of two
lengths the outputs are float32 tensors of the right shapes, timestamps are evenly spaced
within the audio, and results do not depend on the batch size. Exit code 0 when all pass.
"""


def add_parser(subparsers: SubParsers) -> argparse.ArgumentParser:
    """Add the ``validate`` command to ``subparsers``."""
    parser = add_command(
        subparsers,
        "validate",
        "check a HEAR module the way hear-validator does",
        "Check that a Python module implements the HEAR API correctly.",
        EXAMPLES,
    )
    parser.add_argument(
        "module", metavar="MODULE", help="module name (hear_mn.mn04_e1_l) or path to a .py file"
    )
    parser.add_argument(
        "-m",
        "--model",
        dest="model_file",
        metavar="WEIGHTS",
        default="",
        help="file passed to load_model (default: load_model() with no argument)",
    )
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="load_model(pretrained=False): check the API without any weights file "
        "(hear-mn modules)",
    )
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Print a PASS, FAIL or SKIP line per check and the summary; 1 when a check failed."""
    from hear_mn.validation import FAIL, PASS, CheckResult, validate_module

    def report(result: CheckResult) -> None:
        if result.traceback and args.verbose:
            err(result.traceback, end="")
        shown = result.detail or result.status != PASS  # a PASS may have nothing to add
        out(f"{result.status}  {result.name}" + (f": {result.detail}" if shown else ""))

    results = validate_module(
        args.module,
        model_file=args.model_file,
        random_weights=args.random_weights,
        on_result=report,
    )
    passed = sum(result.status == PASS for result in results)
    failed = sum(result.status == FAIL for result in results)
    out(f"validate {'passed' if failed == 0 else 'FAILED'}: {passed} passed, {failed} failed")
    return EXIT_OK if failed == 0 else EXIT_FAILED
