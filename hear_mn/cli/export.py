"""``hear-mn export``: a configuration -> a verified ONNX file (:func:`hear_mn.export.export_onnx`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hear_mn.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    CLIError,
    SubParsers,
    add_command,
    add_model_options,
    load_model,
    model_config,
    out,
    positive_float,
    positive_int,
)

EXAMPLES = """examples:
  hear-mn export mn10_e1_l --out mn10_e1_l.onnx
  hear-mn export mn04_all_b_mel_avgs --weights my_finetuned.pt --out model.onnx
  hear-mn export mn40_ext_e1_l --features e1_l_all_se --no-frontend --out backbone.onnx
  hear-mn export kwmlp --out kwmlp.onnx
  hear-mn export --classifier my_classifier/ --out my_classifier.onnx

The file runs with onnxruntime alone (no torch): input `audio`, (batch, samples) float32 at
the model's sample rate (32 kHz for the MobileNets, 16 kHz for Audio-MLP), dynamic batch and
length; output `embeddings`, (batch, D). For a MobileNet that is one pass over each input:
the scene embedding of clips up to 10 s and, on each 160 ms window, the timestamp
embedding; for Audio-MLP the scene embedding. With --no-frontend a MobileNet takes
`log_mels` (batch, n_mels, frames), and Audio-MLP its 1 s chunks' features (chunks, 40, 98)
and gives each chunk's frame embeddings. The file's metadata (onnx metadata_props) names the
configuration, features, sizes, windows and input layout. Before writing, onnxruntime runs
the graph on fixed random inputs and it must agree with the torch model (default tolerance
1e-4 relative with the frontend, 1e-5 without; 2e-3 for DyMN); otherwise nothing is written
(exit code 1). Needs onnx and onnxruntime: pip install hear-mn[onnx].

--classifier DIR exports a classifier of `hear-mn fit` instead: its embedding model (the
weights it was trained with) and its head in one file, input `audio` as above, output
`probabilities` (batch, classes); the metadata add `labels` (JSON, in output order),
`multilabel` and `classifier_window` (samples). Verified the same way.
"""


def add_parser(subparsers: SubParsers) -> argparse.ArgumentParser:
    """Add the ``export`` command to ``subparsers``."""
    parser = add_command(
        subparsers,
        "export",
        "a model -> a self-contained ONNX file",
        "Export a configuration (with its released weights, or --weights) to an ONNX file "
        "that onnxruntime runs without torch, checked against the torch model first.",
        EXAMPLES,
    )
    parser.add_argument(
        "model", metavar="NAME", nargs="?", help="configuration name (see `hear-mn list`)"
    )
    parser.add_argument(
        "--classifier",
        metavar="DIR",
        help="export a `hear-mn fit` classifier (its model and head) instead of a model NAME",
    )
    add_model_options(parser, features=True, model=False, running=False)
    parser.add_argument(
        "--out", required=True, metavar="FILE", help="the ONNX file to write, e.g. model.onnx"
    )
    parser.add_argument(
        "--no-frontend",
        dest="frontend",
        action="store_false",
        help="leave the frontend out: the graph starts at the network's input (log-mels)",
    )
    parser.add_argument(
        "--opset", type=positive_int, default=17, metavar="N", help="ONNX opset (default 17)"
    )
    parser.add_argument(
        "--tolerance",
        type=positive_float,
        metavar="X",
        help="largest max|onnx - torch| / max|torch| accepted (default 1e-4, 1e-5 without "
        "the frontend; DyMN 2e-3)",
    )
    parser.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="write the file without running it with onnxruntime first",
    )
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Write the ONNX file; 1 when the graph disagrees with the torch model."""
    from hear_mn.export import OnnxExportError, OnnxVerificationError, export_onnx, read_metadata
    from hear_mn.hub.errors import FileAccessError

    if args.classifier is not None:
        return _run_classifier(args)
    if args.model is None:
        raise CLIError("give a configuration NAME to export, or --classifier DIR")
    model_config(args.model, args.features)
    model = load_model(args, args.features)
    try:
        path = export_onnx(
            model,  # type: ignore[arg-type]
            args.out,
            frontend=args.frontend,
            opset=args.opset,
            verify=args.verify,
            tolerance=args.tolerance,
        )
    except OnnxVerificationError as error:
        raise CLIError(str(error), EXIT_FAILED) from None
    except (ImportError, OnnxExportError, FileAccessError, ValueError, TypeError) as error:
        raise CLIError(str(error)) from None
    if not args.quiet:
        meta = read_metadata(path)
        _report_written(
            path,
            args.verify,
            f"{meta['model']}, input {meta['input_name']} {meta['input_layout']} -> "
            f"{meta['output_name']} (embedding size {meta['embedding_size']})",
        )
    return EXIT_OK


def _report_written(path: Path, verified: bool, contents: str) -> None:
    size = path.stat().st_size / 1e6
    checked = "checked with onnxruntime" if verified else "not verified"
    out(f"wrote {path} ({size:.1f} MB, {checked}): {contents}")


def _run_classifier(args: argparse.Namespace) -> int:
    """``--classifier``: the classifier's model and head in one verified file."""
    from hear_mn.classifier import ClassifierFileError, ClassifierMismatchError, load_classifier
    from hear_mn.export import OnnxExportError, OnnxVerificationError
    from hear_mn.export.classifier_graph import export_classifier_onnx
    from hear_mn.hub.errors import FileError

    if args.model is not None or args.features is not None or not args.frontend:
        raise CLIError(
            "--classifier exports the classifier's own model with its frontend: leave out "
            "NAME, --features and --no-frontend"
        )
    try:
        classifier = load_classifier(args.classifier, weights=args.weights)
        path = export_classifier_onnx(
            classifier, args.out, opset=args.opset, verify=args.verify, tolerance=args.tolerance
        )
    except OnnxVerificationError as error:
        raise CLIError(str(error), EXIT_FAILED) from None
    except (
        ClassifierFileError,
        ClassifierMismatchError,
        FileError,
        ImportError,
        OnnxExportError,
        ValueError,
        TypeError,
    ) as error:
        raise CLIError(str(error)) from None
    if not args.quiet:
        _report_written(
            path,
            args.verify,
            f"{classifier.card['embedding']['model']} + head, input audio (batch, samples) "
            f"float32 at {classifier.sample_rate} Hz -> probabilities "
            f"(batch, {len(classifier.labels)}): {', '.join(classifier.labels)}",
        )
    return EXIT_OK
