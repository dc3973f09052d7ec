"""The ``hear-mn`` command line: ``list``, ``embed``, ``tag``, ``validate``, ``evaluate``, ``export``,
``fit`` and ``predict``.

Run ``hear-mn --help`` (or ``python -m hear_mn --help``) for the commands and
``hear-mn COMMAND --help`` for each command's options and examples. Exit codes: 0 success,
1 some inputs failed (or a validation check failed), 2 nothing was done because of a usage
error (bad flag, unknown model, missing input, weights not available).

One module per command (:mod:`~hear_mn.cli.listing`, :mod:`~hear_mn.cli.embed`,
:mod:`~hear_mn.cli.tag`, :mod:`~hear_mn.cli.validate`, :mod:`~hear_mn.cli.evaluate`,
:mod:`~hear_mn.cli.export`, :mod:`~hear_mn.cli.fit`, :mod:`~hear_mn.cli.predict`), each
with ``add_parser`` and ``run``; what they share is in :mod:`hear_mn.cli.common`.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import traceback
from collections.abc import Sequence

# Only torch-free modules at import time: `hear-mn --help` and `--version` stay fast.
from hear_mn.cli import embed, evaluate, export, fit, listing, predict, tag, validate
from hear_mn.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    FORMATTER,
    PROG,
    CLIError,
    Parser,
    default_threads,
    err,
    weights_location,
    wrap,
)

__all__ = ["build_parser", "default_threads", "in_flags", "main", "weights_location"]

COMMANDS = (
    listing,
    embed,
    tag,
    validate,
    evaluate,
    export,
    fit,
    predict,
)  # in the order `hear-mn --help` lists them


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``hear-mn`` (exposed for documentation tools)."""
    from hear_mn.version import __version__

    parser = Parser(
        prog=PROG,
        description=wrap(
            "Audio embeddings (EfficientAT MobileNets, Audio-MLP) from audio files, "
            "AudioSet tags, a HEAR API validator, HEAR task scores, ONNX export, and "
            "classifiers of your own sounds."
        ),
        epilog=(
            "examples:\n"
            "  hear-mn list\n"
            "  hear-mn embed recordings/ --model mn10_e1_l --out embeddings/\n"
            "  hear-mn tag dog.wav --model mn10_e1_l\n"
            "  hear-mn validate hear_mn.mn04_e1_l\n"
            "  hear-mn evaluate tasks/ --model mn04_all_b_mel_avgs --model kwmlp\n"
            "  hear-mn export mn10_e1_l --out mn10_e1_l.onnx\n"
            "  hear-mn fit sounds/ --model mn04_all_b_mel_avgs --out my_classifier/\n"
            "  hear-mn predict new_sounds/ --classifier my_classifier/\n\n"
            "Run `hear-mn COMMAND --help` for a command's options."
        ),
        formatter_class=FORMATTER,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log more (-vv: debug) and show tracebacks of errors",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hear-mn`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except CLIError as error:
        err(str(error))
        return error.code
    except SystemExit as exit_:  # --help and --version
        return exit_.code if isinstance(exit_.code, int) else EXIT_OK

    package_logger = logging.getLogger("hear_mn")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(message)s"))
    level = logging.WARNING if args.verbose == 0 else logging.INFO
    if args.verbose > 1:
        level = logging.DEBUG
    previous_level = package_logger.level
    package_logger.addHandler(handler)
    package_logger.setLevel(level)
    try:
        return int(args.handler(args))
    except CLIError as error:
        if args.verbose:
            print_traceback(error)
        for line in in_flags(str(error)).splitlines():  # a line per problem
            err(f"{PROG} {args.command}: error: {line}")
        return error.code
    except KeyboardInterrupt:
        err(f"{PROG}: interrupted")
        return EXIT_INTERRUPTED
    except Exception as error:  # anything unexpected: one line, the traceback with -v
        if args.verbose:
            print_traceback(error)
        err(
            f"{PROG} {args.command}: error: {type(error).__name__}: {in_flags(str(error))}"
            + ("" if args.verbose else " (run with -v for the traceback)")
        )
        return EXIT_FAILED
    finally:
        package_logger.removeHandler(handler)
        package_logger.setLevel(previous_level)


def print_traceback(error: BaseException) -> None:
    """The traceback of ``error`` with the errors that led to it, also those its raise
    hid (``raise CLIError(...) from None`` keeps the one-line message free of them; -v
    asks for the whole story)."""
    cause, seen = error, set()
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        cause.__suppress_context__ = False
        cause = cause.__cause__ or cause.__context__
    traceback.print_exception(error)


# Keyword arguments the library's messages may name, and the flags that set them here.
_FLAGS = {
    "overwrite": "--overwrite",
    "timestamps": "--timestamps",
    "backend": "--backend",
    "device": "--device",
    "batch_size": "--batch-size",
    "features": "--features",
    "threads": "--threads",
}
_KEYWORD = re.compile(r"\b(" + "|".join(_FLAGS) + r")=('[^']*'|\"[^\"]*\"|[\w.:-]+)")
_FLAG_TWICE = re.compile(r"(--[\w-]+)(?: \(\1\)|, \1\b)")


def in_flags(message: str) -> str:
    """``message`` in the command line's words: a keyword argument it names
    (``overwrite=True``, ``backend='torch'``) becomes the flag (``--overwrite``,
    ``--backend torch``), said once where the message gave both."""

    def flag(match: re.Match[str]) -> str:
        option, value = _FLAGS[match.group(1)], match.group(2).strip("'\"")
        return option if value == "True" else f"{option} {value}"

    return _FLAG_TWICE.sub(r"\1", _KEYWORD.sub(flag, message))
