"""``hear-mn tag``: the top AudioSet classes of audio files, or of windows of them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hear_mn.catalog import AUDIOMLP_CONFIGS, DEFAULT_CONFIG
from hear_mn.cli.common import (
    AudioProgress,
    CLIError,
    SubParsers,
    add_command,
    add_model_options,
    find_inputs,
    is_tty,
    load_model,
    model_config,
    positive_float,
    positive_int,
)
from hear_mn.cli.tables import finish, print_segments, top_classes

if TYPE_CHECKING:
    import numpy as np

EXAMPLES = f"""examples:
  hear-mn tag dog.wav --model mn10_e1_l
  hear-mn tag recordings/ --model {DEFAULT_CONFIG} --top-k 3 --window 5
  hear-mn tag street.flac --model mn04_e1_l --json > tags.json

Scores are the sigmoid of the model's 527 AudioSet logits. Class names come from AudioSet's
class_labels_indices.csv (Google, CC BY 4.0), shipped with hear-mn and checked by its SHA-256:
no download. --labels gives another list of the same classes in the same order (say,
translated names). MobileNets and DyMNs can tag ({", ".join(AUDIOMLP_CONFIGS)} have no
classifier).
"""


def add_parser(subparsers: SubParsers) -> argparse.ArgumentParser:
    """Add the ``tag`` command to ``subparsers``."""
    parser = add_command(
        subparsers,
        "tag",
        "AudioSet tags of audio files",
        "The top AudioSet classes of each file, or of each window of a file.",
        EXAMPLES,
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files or directories")
    add_model_options(parser, features=False)
    parser.add_argument(
        "--top-k", type=positive_int, default=5, metavar="K", help="classes shown (default 5)"
    )
    parser.add_argument(
        "--window",
        type=positive_float,
        metavar="SECONDS",
        help="tag consecutive windows of this length instead of whole files",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--labels",
        metavar="CSV",
        help="a class_labels_indices.csv naming AudioSet's classes in AudioSet's order "
        "(default: the list shipped with hear-mn)",
    )
    parser.set_defaults(handler=run)
    return parser


def _tag_file(
    model: object, audio: np.ndarray, window: int | None, batch_size: int
) -> list[tuple[int, int, np.ndarray]]:
    """(start, stop, probabilities) per segment; equal-length windows share forward passes."""
    import torch

    from hear_mn.windowing import score_windows, window_bounds

    def sigmoid_scores(batch: np.ndarray) -> np.ndarray:
        return torch.sigmoid(model.scene_embeddings(torch.from_numpy(batch))).cpu().numpy()

    bounds = window_bounds(len(audio), window)
    scores = score_windows(audio, bounds, batch_size, sigmoid_scores)
    return [(start, stop, row) for (start, stop), row in zip(bounds, scores)]


def _entry(
    path: Path,
    n_samples: int,
    sample_rate: int,
    segments: list[tuple[int, int, np.ndarray]],
    labels: list,
    top_k: int,
) -> dict:
    """One file's JSON record: its duration and each segment's ``top_k`` tags."""
    entry = {
        "file": str(path),
        "duration_s": round(n_samples / sample_rate, 3),
        "segments": [],
    }
    for start, stop, probs in segments:
        order = top_classes(probs, top_k)
        entry["segments"].append(
            {
                "start_s": round(start / sample_rate, 3),
                "end_s": round(stop / sample_rate, 3),
                "tags": [
                    {
                        "index": int(i),
                        "mid": labels[i].mid,
                        "label": labels[i].name,
                        "score": round(float(probs[i]), 4),
                    }
                    for i in order
                ],
            }
        )
    return entry


def run(args: argparse.Namespace) -> int:
    """Tag the inputs (a table per file, or one JSON report); 1 when some files failed."""
    from hear_mn.audio_io import AudioReadError, load_audio
    from hear_mn.labels import LabelsError, load_labels

    model_config(args.model)
    try:
        model_config(args.model, "l")  # the 527 logits: the models with a classifier
    except CLIError:
        raise CLIError(
            f"{args.model} has no AudioSet classifier (Audio-MLP models give embeddings only); "
            f"tag with a MobileNet or a DyMN, e.g. --model {DEFAULT_CONFIG}"
        ) from None
    scan = find_inputs(args.inputs)
    files = scan.files
    problems = []  # the class list and the model: both reported, not one per run
    try:
        labels = load_labels(args.labels)
    except LabelsError as error:
        problems.append(str(error))
    try:
        model = load_model(args, "l")
        model.start_batch_job()  # every file in one engine (docs/python.md)
    except CLIError as error:
        problems.append(str(error))
    if problems:
        raise CLIError("\n".join(problems))
    sample_rate = int(model.sample_rate)
    window = max(1, round(args.window * sample_rate)) if args.window else None
    top_k = min(args.top_k, len(labels))
    failures: list[tuple[Path, str]] = []
    results = []
    show = is_tty(sys.stderr) and not args.quiet and args.json
    progress = AudioProgress("tag", files, show)
    try:
        for path, _ in files:
            try:
                audio = load_audio(path, sample_rate)
                segments = _tag_file(model, audio, window, args.batch_size)
            except AudioReadError as error:
                failures.append((path, str(error)))
                progress.done(path, 0.0)
                continue
            except Exception as error:  # one bad file must not end the run
                failures.append((path, f"tagging failed: {type(error).__name__}: {error}"))
                progress.done(path, 0.0)
                continue
            entry = _entry(path, len(audio), sample_rate, segments, labels, top_k)
            results.append(entry)
            progress.done(path, len(audio) / sample_rate)
            if not args.json:
                print_segments(entry, ranked="tags", score="score")
    finally:
        progress.close()
    report = None
    if args.json:
        report = {"model": args.model, "top_k": top_k, "window_s": args.window, "files": results}
    return finish(report, failures, scan, args.quiet, "tagging")
