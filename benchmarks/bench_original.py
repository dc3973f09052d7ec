"""hear-mn against the original EfficientAT_HEAR computation, in the same run (issue 25's table).

The original is rebuilt here from the published facts (shared notes, REFERENCE.md), pinned
so that no change to hear-mn's compute path changes it: per call, pre-emphasis, a centred
``torch.stft``, power, the dense mel product, log; the backbone as the checkpoint's modules
run it (contiguous layout, BatchNorm unfolded, nothing in place); timestamp embeddings one
forward pass per 160 ms window position in a Python loop, a scene one pass over the clip.
Its mel matrix is built once (the original built it per call), so it is, if anything,
faster than the original. Contenders alternate within every repeat (medians); with
``--base REV`` hear-mn as of that git revision runs beside this checkout in the same
process (``compare_revisions.import_revision``), so a change's gain is measured on the
same load. Compare ratios, not seconds. Backend "auto" moves a job to another engine once it has run
long enough in torch; the ", long job" contender is that model moved at once. Run it under OpenMP's default wait policy, which
the original and hear-mn both get (the payload records the policy): with
``OMP_WAIT_POLICY=PASSIVE`` the original's loop of 401 small passes ran 2.6x slower at 2
threads (6.11 s against 2.35 s for mn04), which inflated the ratios.

    python benchmarks/bench_original.py --threads 2,1 --base main
    python benchmarks/bench_original.py --smoke --json /tmp/original.json   # does it run?
"""

from __future__ import annotations

import copy
import importlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import harness
import torch
from bench_speed import relative_difference
from compare_revisions import import_revision

import hear_mn
from hear_mn.models.efficientat.mobilenet_network import concatenate_taps

MODELS = ("mn04_e1_l", "mn10_e1_l")
PREEMPHASIS = (-0.97, 1.0)  # y[n] = x[n + 1] - 0.97 x[n]


class OriginalComputation:
    """One model as the original ran it: per-call frontend, plain backbone, window loop."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.backbone = copy.deepcopy(model.backbone).to(memory_format=torch.contiguous_format)
        self.backbone.eval()
        self.preemphasis = torch.tensor([[PREEMPHASIS]])

    def log_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> (batch, n_mels, frames), the original's steps in its order."""
        frontend = self.model.frontend
        x = torch.nn.functional.conv1d(audio[:, None], self.preemphasis)[:, 0]
        spectrum = torch.stft(
            x,
            frontend.n_fft,
            hop_length=frontend.hop_length,
            window=frontend.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        power = spectrum.real**2 + spectrum.imag**2
        mel = torch.matmul(frontend.mel_matrix, power)
        return (torch.log(mel + 1e-5) + 4.5) / 5.0

    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        """One forward pass: (batch, samples) -> (batch, D)."""
        with torch.no_grad():
            mels = self.log_mel(audio)
            outputs = self.backbone(mels[:, None], self.model.plan)
            return concatenate_taps(self.model.features, outputs, mels)

    def timestamp_embeddings(self, audio: torch.Tensor) -> torch.Tensor:
        """(1, samples) -> (1, windows, D): reflect-pad, then one pass per window position."""
        windows = self.model.windows
        padded = torch.nn.functional.pad(audio[:, None], (windows.pad, windows.pad), "reflect")
        padded = padded[:, 0]
        starts = range(0, windows.count(audio.shape[1]) * windows.hop, windows.hop)
        return torch.stack([self.embed(padded[:, s : s + windows.size]) for s in starts], 1)


def contenders(
    name: str, packages: dict[str, object], seconds: float
) -> dict[str, dict[str, Callable[[], torch.Tensor]]]:
    """Per call (timestamps of ``seconds`` s, scene of one 10 s clip): label -> run, the
    original first, then hear-mn of every package (same random weights); where a package's
    backend "auto" moves jobs to another engine after a while, also that model moved
    (label ", long job": what a batch job or a long run of calls gets)."""
    models = {}
    for label, package in packages.items():
        torch.manual_seed(0)
        registry = importlib.import_module(f"{package.__name__}.registry")
        models[label] = registry.create_model(name, pretrained=False)
        if hasattr(models[label], "settle_engines"):
            torch.manual_seed(0)
            settled = models[f"{label}, long job"] = registry.create_model(name, pretrained=False)
            settled.settle_engines()
    original = OriginalComputation(next(iter(models.values())))
    generator = torch.Generator().manual_seed(1)
    rate = original.model.sample_rate
    audio = 0.1 * torch.randn(1, int(seconds * rate), generator=generator)
    clip = 0.1 * torch.randn(1, 10 * rate, generator=generator)
    timestamp_runs = {"original": lambda: original.timestamp_embeddings(audio)[0]}
    scene_runs = {"original": lambda: original.embed(clip)}
    for label, model in models.items():
        timestamp_runs[label] = lambda model=model: model.timestamp_embeddings(audio)[0][0]
        scene_runs[label] = lambda model=model: model.scene_embeddings(clip)
    return {f"timestamps, {seconds:g} s": timestamp_runs, "scene, one 10 s clip": scene_runs}


def bench(
    name: str, packages: dict[str, object], threads: int, seconds: float, repeats: int
) -> list[dict]:
    """Rows of one model at ``threads``: medians, speed-ups over the original, differences."""
    torch.set_num_threads(threads)
    rows = []
    for call, runs in contenders(name, packages, seconds).items():
        reference = runs["original"]()
        differences = {
            label: relative_difference(run(), reference)
            for label, run in runs.items()
            if label != "original"
        }
        timings = harness.interleave(runs, repeats)
        rows.append(
            {
                "model": name,
                "threads": threads,
                "call": call,
                "seconds": harness.medians(timings),
                "speedup_over_original": harness.speedups(timings, "original"),
                "max_relative_difference": differences,
            }
        )
    return rows


def table(rows: list[dict], labels: list[str]) -> str:
    """Markdown: per model, threads and call, the medians and the speed-ups over the original;
    the last column is the largest relative difference of any hear-mn output from it."""
    headers = ["model", "threads", "call", "original (s)"]
    for label in labels:
        headers += [f"{label} (s)", f"{label} vs original"]
    headers.append("max rel. diff")
    cells = []
    for row in rows:
        cell = [row["model"], row["threads"], row["call"], f"{row['seconds']['original']:.3f}"]
        for label in labels:
            cell += [
                f"{row['seconds'][label]:.4f}",
                f"{row['speedup_over_original'][label]:.1f}x",
            ]
        cells.append([*cell, f"{max(row['max_relative_difference'].values()):.1e}"])
    return harness.markdown_table(headers, cells)


def main() -> None:
    policy = os.environ.get("OMP_WAIT_POLICY", "unset")  # before an older hear_mn may set it
    parser = harness.parser(__doc__, repeats=5, threads="2,1", several_threads=True)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--seconds", type=float, default=20.0, help="audio for timestamps")
    parser.add_argument("--base", help="also time hear-mn as of this git revision")
    args = harness.parse_args(parser)
    models = args.models.split(",")
    if args.smoke:
        models, args.seconds, args.threads = models[:1], 1.0, [1]
    with tempfile.TemporaryDirectory(prefix="bench_original_") as folder:
        packages: dict[str, object] = {}
        if args.base:
            packages[f"hear-mn {args.base}"] = import_revision(args.base, Path(folder))
        packages["hear-mn"] = hear_mn
        rows = [
            row
            for threads in args.threads
            for name in models
            for row in bench(name, packages, threads, args.seconds, args.repeats)
        ]
    labels = [label for label in rows[0]["seconds"] if label != "original"]
    payload = {"base": args.base, "omp_wait_policy": policy, "results": rows}
    harness.report(args, payload, table(rows, labels))


if __name__ == "__main__":
    main()
