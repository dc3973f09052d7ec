"""``hear-mn predict``: a classifier (``hear-mn fit``) on audio files, per file or per window."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hear_mn.cli.common import (
    AudioProgress,
    CLIError,
    SubParsers,
    add_command,
    add_engine_options,
    add_model_options,
    find_inputs,
    is_tty,
    positive_float,
    positive_int,
    ray_engine_options,
    set_threads,
)
from hear_mn.cli.tables import finish, print_segments, top_classes

EXAMPLES = """examples:
  hear-mn predict new_sounds/ --classifier my_classifier/
  hear-mn predict street.flac --classifier my_classifier/ --window 1 --top-k 2
  hear-mn predict corpus/ --classifier my_classifier/ --json > predictions.json
  hear-mn predict /data/corpus --classifier my_classifier/ --engine ray --actors 4 --json

Each file (decoded and resampled to the model's rate) gets the probabilities of the
classifier's classes: softmax over the classes, or for a multi-label classifier one sigmoid
per class. --window S classifies consecutive windows of S seconds instead (the last one
shorter), as the classifier's stream() does on live audio. The embedding model is the one the
classifier was trained on (its card names it and the SHA-256 of its weights): another model
or other weights are refused, naming which; --weights gives the checkpoint when the one it
was trained with has moved. --json prints every probability; the table shows the --top-k
classes. Files that cannot be read are listed at the end (exit code 1). --engine ray
classifies the files on a pool of Ray actors (whole files or --window; the same numbers as
locally).
"""


def add_parser(subparsers: SubParsers) -> argparse.ArgumentParser:
    """Add the ``predict`` command to ``subparsers``."""
    parser = add_command(
        subparsers,
        "predict",
        "your classifier on audio files",
        "Class probabilities of audio files (or of windows of them) from a classifier "
        "written by `hear-mn fit`.",
        EXAMPLES,
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files or directories")
    parser.add_argument("--classifier", required=True, metavar="DIR", help="a `hear-mn fit` folder")
    add_model_options(parser, features=False, model=False)
    parser.add_argument(
        "--window",
        type=positive_float,
        metavar="SECONDS",
        help="classify consecutive windows of this length instead of whole files",
    )
    parser.add_argument(
        "--top-k", type=positive_int, default=3, metavar="K", help="classes shown (3)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON with every probability")
    add_engine_options(parser)
    parser.set_defaults(handler=run)
    return parser


def _entry(prediction: object, labels: list[str], top_k: int) -> dict:
    segments = []
    for (start, end), row in zip(prediction.bounds, prediction.probabilities):
        order = top_classes(row, top_k)
        segments.append(
            {
                "start_s": round(float(start), 3),
                "end_s": round(float(end), 3),
                "probabilities": {label: float(p) for label, p in zip(labels, row)},
                "top": [
                    {"label": labels[i], "probability": round(float(row[i]), 4)} for i in order
                ],
            }
        )
    return {
        "file": str(prediction.path),
        "duration_s": round(prediction.duration, 3),
        "segments": segments,
    }


def _load(args: argparse.Namespace) -> object:
    from hear_mn.classifier import ClassifierFileError, ClassifierMismatchError, load_classifier
    from hear_mn.engines.ort import set_backend
    from hear_mn.hub.errors import FileError

    set_threads(args.threads)
    try:
        classifier = load_classifier(args.classifier, weights=args.weights, device=args.device)
    except (ClassifierFileError, ClassifierMismatchError, ValueError, FileError) as error:
        raise CLIError(str(error)) from None
    try:
        set_backend(classifier.model, args.backend)
    except (ValueError, ImportError) as error:
        raise CLIError(str(error)) from None
    return classifier


def run(args: argparse.Namespace) -> int:
    """Print each file's probabilities (a table, or one JSON report); 1 when files failed."""
    from hear_mn.classifier.classifier import FilePrediction
    from hear_mn.classifier.corpus import predict_files, predict_on_ray

    ray_options = ray_engine_options(args)
    scan = find_inputs(args.inputs)
    classifier = _load(args)
    labels = classifier.labels
    top_k = min(args.top_k, len(labels))
    paths = [path for path, _ in scan.files]
    show = is_tty(sys.stderr) and not args.quiet and args.json
    progress = AudioProgress("predict", scan.files, show)
    failures: list[tuple[Path, str]] = list(scan.unreadable)
    results = []
    try:
        if ray_options is None:
            outcomes = predict_files(
                classifier,
                paths,
                window=args.window,
                batch_size=args.batch_size,
                progress=progress.done,
            )
        else:
            outcomes = predict_on_ray(
                classifier,
                paths,
                ray_options,
                window=args.window,
                batch_size=args.batch_size,
                progress=progress.done,
            )
        for outcome in outcomes:
            if not isinstance(outcome, FilePrediction):
                failures.append(outcome)
                continue
            entry = _entry(outcome, labels, top_k)
            results.append(entry)
            if not args.json:
                print_segments(entry, ranked="top", score="probability")
    finally:
        progress.close()
    report = None
    if args.json:
        report = {
            "classifier": str(args.classifier),
            "model": classifier.card["embedding"]["model"],
            "labels": labels,
            "multilabel": classifier.multilabel,
            "window_s": args.window,
            "files": results,
        }
    return finish(report, failures, scan, args.quiet, "prediction")
