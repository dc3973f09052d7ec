"""``hear-mn evaluate``: HEAR task folders -> downstream scores (:mod:`hear_mn.evaluation`)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from hear_mn.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    PROG,
    CLIError,
    SubParsers,
    add_command,
    add_engine_options,
    err,
    is_tty,
    out,
    positive_int,
    ray_engine_options,
    set_threads,
)

EXAMPLES = """examples:
  hear-mn evaluate tasks/ --model mn04_all_b_mel_avgs --out hear_eval/
  hear-mn evaluate tasks/ --model mn04_all_b_mel_avgs --model kwmlp --model dymn04_all_b_mel_avgs
  hear-mn evaluate tasks/speech_commands-v0.0.2-5h --model mn10_e1_l --weights mn10.pt
  hear-mn evaluate tasks/ --task dcase2016_task2-hear2021-full --model kwmlp --grid fast
  hear-mn evaluate tasks/ --model my_package.my_hear_module --model-options '{"size": 2}'
  hear-mn evaluate --embeddings embeddings/hear_mn.kwmlp      # heareval's embeddings, scored here

TASKS_DIR is a folder of HEAR task folders (heareval's --tasks-dir) or one task folder
(task_metadata.json, labelvocabulary.csv, <split>.json, <sample rate>/<split>/<file>).
Every task is checked before anything is computed. For each model, the audio at its sample
rate is embedded into OUT/<module>/<task>/ in heareval's embeddings layout (heareval's
predictions runner reads it; a rerun reuses what was embedded with the same settings from
unchanged audio, and refuses a folder of other settings unless --overwrite), then
heareval's downstream protocol trains and tests the task's models (its grid, early
stopping, model selection, event post-processing, fold rotation and scores; no TensorFlow,
no Lightning). Each task folder gets hear-mn.scores.json, test.predicted-scores.json and
the test predictions; OUT gets summary.md, summary.csv and summary.png over every module
evaluated there. --model takes hear-mn names (see `hear-mn list`) and the import names of
other HEAR modules; give --weights once per --model, in the same order, or not at all.
"""


def add_parser(subparsers: SubParsers) -> argparse.ArgumentParser:
    """Add the ``evaluate`` command to ``subparsers``."""
    parser = add_command(
        subparsers,
        "evaluate",
        "HEAR tasks -> downstream scores (heareval's protocol)",
        "Embed HEAR tasks with one or more models and score the embeddings with heareval's "
        "downstream protocol, or score embeddings already in heareval's layout.",
        EXAMPLES,
    )
    parser.add_argument(
        "tasks_dir", nargs="?", metavar="TASKS_DIR", help="HEAR tasks (or one task)"
    )
    parser.add_argument(
        "--model", action="append", metavar="NAME", help="a model to evaluate (repeatable)"
    )
    parser.add_argument(
        "--weights",
        action="append",
        metavar="FILE",
        help="checkpoint of the --model at its position",
    )
    parser.add_argument(
        "--features", metavar="F", help="another feature set (hear-mn MobileNets, DyMN)"
    )
    parser.add_argument(
        "--model-options", metavar="JSON", help="load_model keyword arguments, a JSON object"
    )
    parser.add_argument(
        "--task", action="append", metavar="NAME", help="only this task (repeatable)"
    )
    parser.add_argument(
        "--out",
        default="hear_evaluation",
        metavar="DIR",
        help="output folder (default hear_evaluation)",
    )
    parser.add_argument(
        "--embeddings",
        metavar="DIR",
        help="score embeddings already in heareval's layout (a task's or a module's folder) instead",
    )
    parser.add_argument(
        "--grid",
        choices=("default", "fast", "faster"),
        default="default",
        help="heareval's hyper-parameter grid (default: its default grid; fast and faster are "
        "smaller and give other scores)",
    )
    parser.add_argument(
        "--grid-points",
        type=positive_int,
        default=8,
        metavar="N",
        help="grid points tried (default 8)",
    )
    parser.add_argument(
        "--seed", type=int, default=42, help="seed of the grid order and the models (default 42)"
    )
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        metavar="N",
        help="clips per forward pass (default: heareval's estimate)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="recompute embeddings of other settings"
    )
    parser.add_argument(
        "--threads", type=positive_int, metavar="N", help="torch threads (default: every core)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no tables")
    add_engine_options(parser)
    parser.set_defaults(handler=run)
    return parser


def _model_options(args: argparse.Namespace) -> dict:
    options: dict = {}
    if args.model_options:
        try:
            options = json.loads(args.model_options)
        except ValueError as error:
            raise CLIError(f"--model-options is not JSON: {error}") from None
        if not isinstance(options, dict):
            raise CLIError('--model-options must be a JSON object, e.g. \'{"features": "e1_l"}\'')
    if args.features:
        options["features"] = args.features
    return options


def _check_arguments(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    if args.embeddings:
        extra = [
            flag
            for flag, given in (("TASKS_DIR", args.tasks_dir), ("--model", args.model))
            if given
        ]
        if extra:
            raise CLIError(f"--embeddings scores existing embeddings: leave out {', '.join(extra)}")
        return []
    if not args.tasks_dir:
        raise CLIError("give TASKS_DIR (a folder of HEAR tasks) or --embeddings DIR")
    if not args.model:
        raise CLIError("give at least one --model NAME (see `hear-mn list`)")
    weights = args.weights or [None] * len(args.model)
    if len(weights) != len(args.model):
        raise CLIError(
            f"{len(args.weights)} --weights for {len(args.model)} --model: give one per model, in order"
        )
    return list(zip(args.model, weights))


def _print_results(title: str, results: dict[str, dict]) -> None:
    out(title)
    for task, report in results.items():
        primary = report["scores"][0]
        test, valid = report["test"].get(primary, math.nan), report["valid"].get(primary, math.nan)
        spread = f" ± {report['test_std'][primary]:.4f}" if "test_std" in report else ""
        out(
            f"  {task}: {primary} test {test:.4f}{spread}, valid {valid:.4f} "
            f"(downstream {report['downstream_seconds']:.1f} s)"
        )


def run(args: argparse.Namespace) -> int:
    """Evaluate every --model on the tasks (or score --embeddings); 1 when a task failed."""
    from hear_mn.batch import OutputConflictError, OutputFolderError
    from hear_mn.evaluation import EvaluationError, evaluate, score_embeddings
    from hear_mn.evaluation.embedders import UnknownModelError, check_model_name
    from hear_mn.evaluation.tasks import TaskError
    from hear_mn.hub.errors import FileError

    models = _check_arguments(args)
    options = _model_options(args)
    ray_options = ray_engine_options(args)
    set_threads(args.threads)
    usage_errors = (
        TaskError,
        UnknownModelError,
        OutputConflictError,
        OutputFolderError,
        FileError,
        ValueError,
        ImportError,
    )
    code = EXIT_OK
    try:
        if args.embeddings:
            results = score_embeddings(
                args.embeddings,
                grid=args.grid,
                grid_points=args.grid_points,
                seed=args.seed,
                device=args.device,
            )
            if not args.quiet:
                _print_results(f"scored {args.embeddings}", results)
            return EXIT_OK
        for name, _ in models:  # a misspelt --model is found before the first is evaluated
            check_model_name(name)
        for name, weights in models:
            try:
                results = evaluate(
                    args.tasks_dir,
                    name,
                    weights=weights,
                    options=options,
                    tasks=args.task,
                    out=args.out,
                    grid=args.grid,
                    grid_points=args.grid_points,
                    seed=args.seed,
                    device=args.device,
                    batch_size=args.batch_size,
                    overwrite=args.overwrite,
                    ray_options=ray_options,
                    progress=is_tty(sys.stderr) and not args.quiet,
                )
            except EvaluationError as error:
                err(f"{PROG} evaluate: {error}")
                results, code = error.results, EXIT_FAILED
            if not args.quiet:
                _print_results(f"{name}:", results)
    except usage_errors as error:
        raise CLIError(str(error)) from None
    if not args.quiet:
        written = [
            name
            for name in ("summary.md", "summary.csv", "summary.png")
            if (Path(args.out) / name).exists()
        ]
        out(f"summary in {args.out}: {', '.join(written)}")
    return code
