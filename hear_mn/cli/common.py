"""Plumbing shared by the ``hear-mn`` commands.

Exit codes, :class:`CLIError` and the argument parser class, output helpers, argument types,
torch thread setup, the model (and its configuration) from the parsed arguments, the audio
progress bar, and the scan of the input files. Torch-free at import: ``hear-mn --help``
stays fast.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from hear_mn.catalog import DEFAULT_CONFIG
from hear_mn.progress import AudioProgress
from hear_mn.run_options import BACKENDS, RunOptions
from hear_mn.threads import keep_threads, usable_cores

if TYPE_CHECKING:
    from hear_mn.audio_io import AudioInputs
    from hear_mn.registry import ModelConfig

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "FORMATTER",
    "add_command",
    "add_engine_options",
    "PROG",
    "AudioProgress",
    "CLIError",
    "Parser",
    "SubParsers",
    "add_model_options",
    "chosen_threads",
    "default_threads",
    "err",
    "find_inputs",
    "is_tty",
    "load_model",
    "model_config",
    "out",
    "positive_float",
    "positive_int",
    "ray_engine_options",
    "report_failures",
    "report_ignored",
    "run_options",
    "set_threads",
    "weights_location",
    "wrap",
]

PROG = "hear-mn"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # as a shell reports a process ended by Ctrl-C (SIGINT)
FORMATTER = argparse.RawDescriptionHelpFormatter  # descriptions and examples keep their lines

logger = logging.getLogger("hear_mn.cli")


class CLIError(Exception):
    """A one-line error that ends the command with ``code``."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and no exit from :func:`hear_mn.cli.main`."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CLIError(f"{self.prog}: error: {message} (see {self.prog} --help)")


class SubParsers(Protocol):
    """What a command's ``add_parser`` gets: the ``add_subparsers()`` of :class:`Parser`."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


# --------------------------------------------------------------------------- output


def out(text: str = "") -> None:
    """Write a line to stdout, at once."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def err(text: str, end: str = "\n") -> None:
    """Write ``text`` (a line, unless ``end`` says otherwise) to stderr, at once."""
    sys.stderr.write(text + end)
    sys.stderr.flush()


def is_tty(stream: IO[str]) -> bool:
    """Whether ``stream`` is a terminal (False for anything that cannot say)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, OSError, ValueError):
        return False


def add_command(
    subparsers: SubParsers, name: str, summary: str, description: str, examples: str
) -> argparse.ArgumentParser:
    """The parser of command ``name``: one-line ``summary`` for the command list, the
    ``description`` wrapped to the terminal, ``examples`` kept as written."""
    return subparsers.add_parser(
        name,
        help=summary,
        description=wrap(description),
        epilog=examples,
        formatter_class=FORMATTER,
    )


def wrap(text: str) -> str:
    """``text`` as a paragraph of the help's width."""
    return textwrap.fill(text, 79)


def report_ignored(ignored: list[tuple[Path, str]], quiet: bool) -> None:
    """List on stderr the files of the input folders that were not read as audio."""
    if ignored and not quiet:
        err(f"{PROG}: ignored {len(ignored)} file(s) in the input folders, not read as audio:")
        for path, reason in ignored:
            err(f"  {path}: {reason}")


def report_failures(failures: list[tuple[Path, str]], verb: str) -> None:
    """List on stderr the files ``verb`` (e.g. "embedding") failed for, with the reasons."""
    if not failures:
        return
    err(f"{PROG}: {verb} failed for {len(failures)} file(s):")
    for path, reason in failures:
        prefix = f"{path}: "
        err("  " + (reason if reason.startswith(prefix) else prefix + reason))


# --------------------------------------------------------------------------- argument types


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def add_model_options(
    parser: argparse.ArgumentParser, *, features: bool, model: bool = True, running: bool = True
) -> None:
    """The options of the commands that run a model (``--features`` only when asked).

    ``model=False`` leaves out ``--model`` (the command takes the name as an argument, in
    ``args.model``); ``running=False`` leaves out ``--device`` and ``--batch-size`` (the
    command runs no audio through the model).
    """
    if model:
        parser.add_argument(
            "--model",
            default=DEFAULT_CONFIG,
            metavar="NAME",
            help=f"configuration name (see `hear-mn list`; default {DEFAULT_CONFIG})",
        )
    parser.add_argument(
        "--weights",
        metavar="FILE",
        help="checkpoint file to load instead of the released weights",
    )
    if features:
        parser.add_argument(
            "--features",
            metavar="F",
            help="another feature set for the model's checkpoint, e.g. e1_l_all_se (MobileNets)",
        )
    if running:
        parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
        parser.add_argument(
            "--backend",
            choices=BACKENDS,
            default="auto",
            help="engine of the network: auto (default: torch for these batch jobs), torch or "
            "onnxruntime (MobileNets on the CPU; pip install 'hear-mn[onnx]')",
        )
        parser.add_argument(
            "--batch-size",
            type=positive_int,
            default=8,
            metavar="N",
            help="clips of equal length per forward pass (default 8)",
        )
    parser.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="torch threads (default: every CPU core this process may use, fewer while "
        "other work keeps some of them busy: the cores it leaves free, at least 1)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")


def add_engine_options(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """``--engine`` and the Ray engine's options (in args: engine, address, actors,
    threads_per_actor, gpus_per_actor); returns the group for more Ray-only options."""
    ray = parser.add_argument_group("engine")
    ray.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local (default): this process; ray: Ray Data actors (pip install 'hear-mn[ray]')",
    )
    ray.add_argument(
        "--address", metavar="ADDR", help="with --engine ray: a running cluster, auto or HOST:PORT"
    )
    ray.add_argument(
        "--actors", type=positive_int, metavar="N", help="with --engine ray: actors in the pool"
    )
    ray.add_argument(
        "--threads-per-actor",
        type=positive_int,
        default=1,
        metavar="T",
        help="with --engine ray: torch threads (and CPUs reserved) per actor (default 1)",
    )
    ray.add_argument(
        "--gpus-per-actor",
        type=positive_float,
        metavar="G",
        help="with --engine ray: GPUs per actor; the model then runs on the actor's GPU",
    )
    return ray


def ray_engine_options(
    args: argparse.Namespace, more: dict[str, object] | None = None
) -> object | None:
    """The Ray engine's options (None: --engine local), checked before any work; ``more``:
    the command's other Ray-only flags and their values."""
    ray_only = {
        "--address": args.address,
        "--actors": args.actors,
        "--gpus-per-actor": args.gpus_per_actor,
        **(more or {}),
    }
    if args.engine == "local":
        given = [flag for flag, value in ray_only.items() if value is not None]
        if given or args.threads_per_actor != 1:
            given += ["--threads-per-actor"] if args.threads_per_actor != 1 else []
            raise CLIError(f"{', '.join(given)} work(s) with --engine ray only")
        return None
    from hear_mn.engines.ray_data import RayOptions, import_ray

    if getattr(args, "device", None) not in (None, "cpu"):
        raise CLIError(
            "with --engine ray the actors choose the device: use --gpus-per-actor to run on "
            "GPUs (and leave --device out)"
        )
    try:
        import_ray()
    except ImportError as error:
        raise CLIError(str(error)) from None
    return RayOptions(
        address=args.address,
        actors=args.actors,
        threads_per_actor=args.threads_per_actor,
        gpus_per_actor=args.gpus_per_actor or 0.0,
        quiet=True,
    )


# --------------------------------------------------------------------------- threads


def default_threads() -> int:
    """Torch threads for a run: the CPU cores this process may use."""
    return usable_cores()


def chosen_threads(threads: int | None) -> int:
    """The torch threads of a run: ``threads``, or :func:`default_threads` for None."""
    chosen = threads or default_threads()
    logger.info("using %d torch thread(s)", chosen)
    return chosen


def set_threads(threads: int | None) -> int:
    """Use ``threads`` torch threads, the user's choice (None: :func:`default_threads`,
    which hear_mn lowers to the cores other work leaves free: :mod:`hear_mn.threads`)."""
    import torch

    chosen = chosen_threads(threads)
    torch.set_num_threads(chosen)
    if threads is not None:
        keep_threads()
    return chosen


# --------------------------------------------------------------------------- models and inputs


def model_config(name: str, features: str | None = None) -> ModelConfig:
    """The configuration ``name`` (with ``features``); an unknown one is a :class:`CLIError`."""
    from hear_mn.registry import get_config

    try:
        return get_config(name, features=features)
    except ValueError as error:
        raise CLIError(str(error)) from None


def run_options(args: argparse.Namespace) -> RunOptions:
    """How the model of ``args`` runs (--device, --backend, --threads). A --threads given is
    the run's (``create_model`` sets it); without it, the default count is set here and
    hear_mn's calls use only the cores other work leaves free (:mod:`hear_mn.threads`)."""
    if args.threads is None:
        set_threads(None)
    try:
        return RunOptions(
            device=getattr(args, "device", None),
            backend=getattr(args, "backend", "auto"),
            threads=None if args.threads is None else chosen_threads(args.threads),
        )
    except ValueError as error:
        raise CLIError(str(error)) from None


def load_model(args: argparse.Namespace, features: str | None) -> object:
    """The model of ``args`` (--model, --weights, --device, --backend, --threads, --quiet)."""
    from hear_mn.hub.errors import FileError
    from hear_mn.registry import create_model

    run = run_options(args)
    progress = False if args.quiet else None
    try:
        return create_model(
            args.model, weights=args.weights, features=features, progress=progress, run=run
        )
    except (ValueError, ImportError, FileError) as error:
        raise CLIError(str(error)) from None


def weights_location(config: ModelConfig) -> tuple[str, Path | None]:
    """Where the released weights file is: ("offline"|"shipped"|"cached"|"missing", path)."""
    from hear_mn.hub.locations import find

    found = find(config.weights.file_name)
    return found if found is not None else ("missing", None)


def find_inputs(inputs: Sequence[str]) -> AudioInputs:
    """The files to read and the other files found in the folders (listed at the end, not
    skipped silently); a missing input or two inputs of the same name end the command."""
    from hear_mn.audio_io import InputNameError, scan_audio_inputs

    try:
        scan = scan_audio_inputs(inputs)
    except (FileNotFoundError, InputNameError) as error:
        raise CLIError(str(error)) from None
    if not scan.files:
        unreadable = "".join(f"; {path}: {why}" for path, why in scan.unreadable)
        where = " ".join(map(str, inputs))
        raise CLIError(f"no audio or video files found in {where}{unreadable}")
    return scan
