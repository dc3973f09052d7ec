"""``hear-mn embed``: audio files -> one .npz of embeddings each (:func:`hear_mn.batch.embed_files`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    add_engine_options,
    add_model_options,
    err,
    find_inputs,
    is_tty,
    load_model,
    model_config,
    out,
    ray_engine_options,
    report_failures,
    report_ignored,
)

# Recomputed outputs listed by name after the run's summary (the rest are counted).
LISTED = 10

EXAMPLES = f"""examples:
  hear-mn embed song.wav --model mn10_e1_l
  hear-mn embed recordings/ --model {DEFAULT_CONFIG} --out embeddings/
  hear-mn embed a.flac b.mp3 --model mn04_e1_l --timestamps --batch-size 16
  hear-mn embed clips/ --model mn40_ext_e1_l --features e1_l_all_se --device cuda
  hear-mn embed clips/ --model mn04_e1_l --weights my_finetuned.pt --overwrite
  hear-mn embed train/ test/ --model kwmlp        # OUT/train/..., OUT/test/...
  hear-mn embed corpus/ --model mn10_e1_l --engine ray --actors 2     # Ray, started here
  hear-mn embed /data/corpus --engine ray --address auto --parquet rows/  # a running cluster

Each input file gets OUT/<its path relative to the input directory>.npz (a file named
directly: OUT/<its name>.npz; with several inputs, each directory's files go under its own
name), e.g. recordings/birds/a.wav -> embeddings/birds/a.wav.npz, holding `embedding` ((D,)
scene, or (T, D) with --timestamps), `timestamps` ((T,) ms, with --timestamps), `model`,
`features`, `sample_rate` and `settings` (JSON). Load one with numpy.load.
Outputs written with the same settings (model, features, mode, weights) from the same
input bytes are skipped, so an interrupted run resumes; an output whose input changed, that
records no input (older hear-mn) or that cannot be read is computed again, with a note;
outputs of other settings stop the run before any work, and --overwrite recomputes them.
Files and folders that cannot be read are listed at the end (exit code 1), as are files in
the folders that are not audio or video. Ctrl-C says how many outputs were saved (exit code
130). Files of equal length share forward passes (--batch-size), which can change an
output's last float32 bits; --batch-size 1 makes each output depend on its file alone
(docs/batch_embedding.md). A file longer than 60 s is decoded and embedded block by block,
alone, so memory holds a block and its output, not the file; the bar advances inside it.

--engine ray runs the same job on Ray Data (pip install 'hear-mn[ray]'): the same outputs,
names, skip rule, failure list and exit codes, and the same numbers as --engine local, bit
for bit, for the same files to compute, --batch-size and threads (each actor uses
--threads-per-actor torch threads). The
files' lengths are measured by Ray tasks first, so that they are batched as locally; a pool
of actors (--actors, default one per --threads-per-actor CPUs of the cluster), each holding
the model once, decodes, embeds and writes the outputs. Without --address Ray starts in this
process; --address auto or HOST:PORT joins a running cluster (`ray start --head` there),
whose nodes must see the input and output paths (a shared file system).
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
    ray = add_engine_options(parser)
    ray.add_argument(
        "--parquet",
        metavar="DIR",
        help="with --engine ray: also write the rows (path, embedding, timestamps, ...) as "
        "Parquet files into DIR",
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
    ray_options = ray_engine_options(args, {"--parquet": args.parquet})
    scan = find_inputs(args.inputs)
    try:
        check_writable(args.out)
    except OutputFolderError as error:
        raise CLIError(str(error)) from None
    model = load_model(args, args.features)
    progress = AudioProgress("embed", scan.files, is_tty(sys.stderr) and not args.quiet)
    try:
        if ray_options is None:
            report = embed_files(
                scan,
                model,
                args.out,
                timestamps=args.timestamps,
                overwrite=args.overwrite,
                batch_size=args.batch_size,
                progress=progress.done,
                progress_in_file=progress.advance,
            )
        else:
            report = _embed_on_ray(args, scan, model, ray_options, progress)
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
        if report.recomputed:
            out(
                f"recomputed {len(report.recomputed)} output(s) that could not be reused: "
                f"{report.recomputed_summary()}"
            )
            for output, why in report.recomputed[:LISTED]:
                out(f"  {output}: {why}")
            if len(report.recomputed) > LISTED:
                out(f"  ... and {len(report.recomputed) - LISTED} more")
    report_ignored(scan.ignored, args.quiet)
    report_failures(report.failures, "embedding")
    return EXIT_FAILED if report.failures else EXIT_OK


def _embed_on_ray(
    args: argparse.Namespace, scan: object, model: object, options: object, progress: object
) -> object:
    """``embed_files`` on Ray Data: the same plan, outputs and report."""
    from hear_mn.batch import EmbeddingInterrupted, plan_embedding
    from hear_mn.engines.ray_data import run_plan, stop_ray_after_interrupt

    plan = plan_embedding(
        scan, model, args.out, timestamps=args.timestamps, overwrite=args.overwrite
    )
    rows = run_plan(
        plan,
        model,
        options,
        timestamps=args.timestamps,
        batch_size=args.batch_size,
        parquet=args.parquet,
    )
    try:
        for row in rows:
            progress.done(Path(row["path"]), row["seconds"])
    except KeyboardInterrupt:
        # The actors write before their rows reach this process: stop them, then count
        # what is on disk.
        stop_ray_after_interrupt(plan)
        raise EmbeddingInterrupted(plan.count_outputs_on_disk()) from None
    return plan.report
