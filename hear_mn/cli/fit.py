"""``hear-mn fit``: labelled audio -> a classifier folder (:func:`hear_mn.classifier.fit`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hear_mn.catalog import DEFAULT_CONFIG
from hear_mn.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    AudioProgress,
    CLIError,
    SubParsers,
    add_command,
    add_model_options,
    is_tty,
    load_model,
    model_config,
    out,
    positive_int,
    report_failures,
)

EXAMPLES = f"""examples:
  hear-mn fit sounds/ --model {DEFAULT_CONFIG} --out my_classifier/
  hear-mn fit sounds/ --model kwmlp --valid held_out/ --test-fraction 0 --out clf/
  hear-mn fit labels.csv --model mn10_e1_l --grid fast --out clf/
  hear-mn fit sounds/ --model {DEFAULT_CONFIG} --param lr=1e-3,1e-4 --param hidden_layers=1 --out clf/

DATA is a folder with one sub-folder per class (sounds/dog/a.wav is "dog"; deeper folders
belong to their class), or a CSV: file,label[,label...] (several labels: multi-label; paths
relative to the CSV) or file,label,start,end (seconds: the segment is the example; a header
row `file,label,start,end` makes it unambiguous). Without --valid/--test a stratified split
seeded by --seed holds out --valid-fraction and --test-fraction of every class (0.2 each;
--test-fraction 0: no test split); a class with too few examples is an error that says how
many it needs. The head is trained as `hear-mn evaluate` trains one (heareval's grid, early
stopping, the grid point of the best validation score: top-1 accuracy, or mAP for
multi-label data), on the scene embeddings of the model; they are cached in OUT/embeddings
(--cache), so an interrupted run, or a fit with another grid, reuses them. OUT gets head.pt
(tensors only) and classifier.json (the card: model and weights SHA-256, labels, scores per
split and class, the grid point, the data). Files that cannot be read are listed and left
out (exit code 1 after writing the classifier); bad data is exit code 2.
"""


def _param(text: str) -> tuple[str, list[object]]:
    name, sep, values = text.partition("=")
    if not sep or not name or not values:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE[,VALUE...], got {text!r}")
    parsed = []
    for value in values.split(","):
        try:
            parsed.append(json.loads(value))
        except ValueError:
            parsed.append(value)  # a string such as xavier_normal_
    return name.strip(), parsed


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def add_parser(subparsers: SubParsers) -> argparse.ArgumentParser:
    """Add the ``fit`` command to ``subparsers``."""
    parser = add_command(
        subparsers,
        "fit",
        "labelled audio -> your own classifier",
        "Train a classifier head on the embeddings of labelled audio (a folder of class "
        "sub-folders, or a CSV) with the HEAR evaluator's trainer; use it with `hear-mn "
        "predict`, hear_mn.load_classifier, or `hear-mn export --classifier`.",
        EXAMPLES,
    )
    parser.add_argument(
        "data", metavar="DATA", help="class sub-folders, or a CSV of file,label rows"
    )
    add_model_options(parser, features=True)
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="the classifier folder to write"
    )
    parser.add_argument(
        "--valid", metavar="DATA", help="validation examples (default: split off DATA)"
    )
    parser.add_argument("--test", metavar="DATA", help="test examples (default: split off DATA)")
    parser.add_argument(
        "--valid-fraction",
        type=_fraction,
        default=0.2,
        metavar="F",
        help="share of each class held out for validation without --valid (0.2)",
    )
    parser.add_argument(
        "--test-fraction",
        type=_fraction,
        default=0.2,
        metavar="F",
        help="share of each class held out for testing without --test (0.2; 0: none)",
    )
    parser.add_argument(
        "--grid",
        choices=("default", "fast", "faster"),
        default="default",
        help="heareval's hyper-parameter grid (default: its default grid)",
    )
    parser.add_argument(
        "--grid-points",
        type=positive_int,
        default=8,
        metavar="N",
        help="grid points trained (default 8, as heareval)",
    )
    parser.add_argument(
        "--param",
        type=_param,
        action="append",
        default=[],
        metavar="NAME=V[,V]",
        help="replace a hyper-parameter's values in the grid, e.g. lr=1e-3,1e-4",
    )
    parser.add_argument(
        "--seed", type=int, default=42, help="grid order, initialisation, split (42)"
    )
    parser.add_argument("--cache", metavar="DIR", help="embedding cache (default OUT/embeddings)")
    parser.add_argument("--json", action="store_true", help="print the card as JSON")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Fit and write the classifier; 1 when some files were left out."""
    from hear_mn.batch import OutputFolderError
    from hear_mn.classifier import ClassifierDataError, fit
    from hear_mn.classifier.data import read_labelled
    from hear_mn.classifier.report import summary_lines

    model_config(args.model, args.features)
    try:
        sources = [source for source in (args.data, args.valid, args.test) if source]
        files = sorted({e.path for source in sources for e in read_labelled(source).examples})
    except ClassifierDataError as error:
        raise CLIError(str(error)) from None
    model = load_model(args, args.features)
    progress = AudioProgress("fit", files, is_tty(sys.stderr) and not args.quiet)
    try:
        classifier = fit(
            args.data,
            model,  # type: ignore[arg-type]
            out=args.out,
            valid=args.valid,
            test=args.test,
            valid_fraction=args.valid_fraction,
            test_fraction=args.test_fraction,
            weights=args.weights,
            features=args.features,
            grid=args.grid,
            grid_points=args.grid_points,
            params=dict(args.param),
            seed=args.seed,
            batch_size=args.batch_size,
            cache=args.cache,
            progress=progress.done,
        )
    except (ClassifierDataError, OutputFolderError, ValueError) as error:
        raise CLIError(str(error)) from None
    finally:
        progress.close()
    if args.json:
        out(json.dumps(classifier.card, indent=2))
    elif not args.quiet:
        for line in summary_lines(classifier.card, args.out):
            out(line)
    left_out = classifier.card["data"]["left_out"]
    report_failures([(Path(e["example"]), e["why"]) for e in left_out], "reading")
    return EXIT_FAILED if left_out else EXIT_OK
