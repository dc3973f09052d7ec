"""A batch job's engine: ``hear-mn embed`` of a folder in a fresh process per run, with
``--backend torch``, ``onnxruntime`` and ``auto`` (the default) in turn.

    python benchmarks/bench_cli_backend.py                       # 70 files of 1 s and of 10 s
    python benchmarks/bench_cli_backend.py --files 400 --seconds 10 --repeats 3
    python benchmarks/bench_cli_backend.py --smoke --json /tmp/cli_backend.json   # does it run?

Why batch jobs stay in torch under "auto": a fresh process that moves to ONNX Runtime pays
its import and the network's export once, which only a long enough job earns back. Each run
is the whole command (start-up, model, decoding, embedding, writing), ``--overwrite`` so
that every run computes; the backends alternate, the order reversed every other repeat;
medians of the wall seconds and of the child's peak resident memory. Random weights saved
to a temporary checkpoint, random audio.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

import harness
import numpy as np
import soundfile
import torch

import hear_mn

BACKENDS = ("torch", "onnxruntime", "auto")


def write_folder(folder: Path, files: int, seconds: float, rate: int) -> Path:
    """``files`` float32 WAV files of ``seconds`` of noise in ``folder``."""
    folder.mkdir()
    generator = np.random.default_rng(0)
    for index in range(files):
        audio = 0.1 * generator.standard_normal(int(seconds * rate)).astype(np.float32)
        soundfile.write(folder / f"{index:04d}.wav", audio, rate, subtype="FLOAT")
    return folder


def bench(model: str, files: int, seconds: float, repeats: int, scratch: Path) -> dict:
    """One folder: each backend's median seconds and peak MiB over ``repeats`` runs."""
    torch.manual_seed(0)
    built = hear_mn.create_model(model, pretrained=False)
    weights = scratch / f"{model}.pt"
    torch.save(built.backbone.state_dict(), weights)
    folder = write_folder(scratch / f"{files}x{seconds:g}s", files, seconds, built.sample_rate)
    runs: dict[str, list] = {backend: [] for backend in BACKENDS}
    for repeat in range(repeats + 1):  # the first round warms the disk cache, not counted
        for backend in BACKENDS if repeat % 2 == 0 else BACKENDS[::-1]:
            out = scratch / f"out_{backend}"
            command = [sys.executable, "-m", "hear_mn", "embed", str(folder), "--model", model]
            command += ["--weights", str(weights), "--out", str(out), "--backend", backend]
            child = harness.run_child([*command, "--overwrite", "-q"])
            if repeat:
                runs[backend].append(child)
    medians = {b: statistics.median(run.seconds for run in runs[b]) for b in BACKENDS}
    peaks = {b: statistics.median(run.peak_rss_mib for run in runs[b]) for b in BACKENDS}
    return {
        "model": model,
        "files": files,
        "seconds_per_file": seconds,
        "seconds": medians,
        "peak_mib": peaks,
        "over_torch": {b: medians[b] / medians["torch"] for b in BACKENDS},
    }


def table(rows: list[dict]) -> str:
    headers = ["model", "files", *(f"{b} (s)" for b in BACKENDS)]
    headers += ["onnxruntime / torch", "auto / torch", "peak MiB torch / onnxruntime"]
    cells = [
        [
            row["model"],
            f"{row['files']} x {row['seconds_per_file']:g} s",
            *(f"{row['seconds'][b]:.2f}" for b in BACKENDS),
            f"{row['over_torch']['onnxruntime']:.2f}x",
            f"{row['over_torch']['auto']:.2f}x",
            f"{row['peak_mib']['torch']:.0f} / {row['peak_mib']['onnxruntime']:.0f}",
        ]
        for row in rows
    ]
    return harness.markdown_table(headers, cells)


def main() -> None:
    parser = harness.parser(__doc__, repeats=5)
    parser.add_argument("--model", default="mn04_e1_l")
    parser.add_argument("--files", type=int, default=70)
    parser.add_argument("--seconds", default="1,10", help="seconds per file, one folder each")
    args = harness.parse_args(parser)
    lengths = [float(value) for value in args.seconds.split(",")]
    if args.smoke:
        args.files, lengths = 2, [1.0]
    with tempfile.TemporaryDirectory(prefix="bench_cli_backend_") as scratch:
        rows = [bench(args.model, args.files, s, args.repeats, Path(scratch)) for s in lengths]
    harness.report(args, {"results": rows}, table(rows))


if __name__ == "__main__":
    main()
