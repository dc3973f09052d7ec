"""``hear-mn embed``: audio files -> one .npz of embeddings each (:func:`hear_mn.batch.embed_files`)."""

from __future__ import annotations

import argparse
import sys

from hear_mn.catalog import DEFAULT_CONFIG
from hear_mn.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    PROG,
    AudioProgress,
    CLIError,
    SubParsers,
    add_command,
    add_model_options,
    err,
    find_inputs,
    is_tty,
    load_model,
    model_config,
    out,
    report_failures,
    report_ignored,
)

EXAMPLES = f"""examples:
  hear-mn embed song.wav --model mn10_e1_l
  hear-mn embed recordings/ --model {DEFAULT_CONFIG} --out embeddings/
  hear-mn embed a.flac b.mp3 --model mn04_e1_l --timestamps --batch-size 16
  hear-mn embed clips/ --model mn40_ext_e1_l --features e1_l_all_se --device cuda
  hear-mn embed clips/ --model mn04_e1_l --weights my_finetuned.pt --overwrite
  hear-mn embed train/ test/ --model kwmlp        # OUT/train/..., OUT/test/...

Each input file gets OUT/<its path relative to the input directory>.npz (a file named
directly: OUT/<its name>.npz; with several inputs, each directory's files go under its own
name), e.g. recordings/birds/a.wav -> embeddings/birds/a.wav.npz, holding `embedding` ((D,)
scene, or (T, D) with --timestamps), `timestamps` ((T,) ms, with --timestamps), `model`,
`features`, `sample_rate` and `settings` (JSON). Load one with numpy.load.
Outputs written with the same settings (model, features, mode, weights) are skipped, so an
interrupted run resumes; outputs of other settings stop the run before any work, and
--overwrite recomputes them. Files that cannot be read are listed at the end (exit code
1), as are files in the folders that are not audio or video. Ctrl-C says how many outputs
were saved (exit code 130).
"""


def add_parser(subparsers: SubParsers) -> argparse.ArgumentParser:
    """Add the ``embed`` command to ``subparsers``."""
    parser = add_command(
        subparsers,
        "embed",
        "audio files -> .npz embeddings",
        "Embed audio files (any format soundfile reads: wav, flac, ogg, mp3, ...; else "
        "FFmpeg through PyAV: m4a, aac, opus, webm, and the audio of video files; any "
        "sample rate, resampled with soxr; any number of channels, mixed to mono). "
        "Directories are searched recursively.",
        EXAMPLES,
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files or directories")
    add_model_options(parser, features=True)
    parser.add_argument(
        "--timestamps",
        action="store_true",
        help="timestamp embeddings (T, D) and their times instead of one scene embedding",
    )
    parser.add_argument(
        "--out", default="embeddings", metavar="DIR", help="output directory (default embeddings)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="recompute outputs that already exist"
    )
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Embed the inputs into ``args.out``; 1 when some files failed, 130 on Ctrl-C."""
    from hear_mn.batch import (
        EmbeddingInterrupted,
        OutputConflictError,
        OutputFolderError,
        check_writable,
        embed_files,
    )

    model_config(args.model, args.features)
    scan = find_inputs(args.inputs)
    try:
        check_writable(args.out)
    except OutputFolderError as error:
        raise CLIError(str(error)) from None
    model = load_model(args, args.features)
    progress = AudioProgress("embed", scan.files, is_tty(sys.stderr) and not args.quiet)
    try:
        report = embed_files(
            scan,
            model,
            args.out,
            timestamps=args.timestamps,
            overwrite=args.overwrite,
            batch_size=args.batch_size,
            progress=progress.done,
        )
    except OutputConflictError as error:
        raise CLIError(str(error)) from None
    except EmbeddingInterrupted as stop:
        progress.close()
        err(
            f"{PROG}: interrupted; {len(stop.report.written)} output(s) were saved in "
            f"{args.out}; run the same command again to resume"
        )
        return EXIT_INTERRUPTED
    finally:
        progress.close()
    if not args.quiet:
        out(f"embedded {len(report.written)} file(s) with {args.model} into {args.out}")
        if report.resumed:
            out(
                f"skipped {len(report.resumed)} file(s) whose output already exists in "
                f"{args.out} with the same settings (--overwrite recomputes them)"
            )
    report_ignored(scan.ignored, args.quiet)
    report_failures(report.failures, "embedding")
    return EXIT_FAILED if report.failures else EXIT_OK
