"""Backend "auto" over runs of scene calls: a short run stays in torch, a long one moves to
ONNX Runtime once it has paid for the export.

    python benchmarks/bench_auto.py                   # mn04, mn10; runs of 1, 10, 100, 400 calls
    python benchmarks/bench_auto.py --models mn40_ext_e1_l --calls 1,10,50 --repeats 1
    python benchmarks/bench_auto.py --smoke --json /tmp/auto.json   # does it run?

Per model and run length k: a fresh model (same random weights) per backend ("torch",
"onnxruntime", "auto"), then k scene calls of one 10 s clip, timed as a whole, so the first
call and any export are included (as a user's run of k calls pays them). The backends take
turns, the order reversed every other repeat; medians of the totals, and each backend's
total over the best of torch and onnxruntime for that k (what an oracle that knew k would
pay). The exporter's one-off import is paid before timing, so every export costs the same.
"""

from __future__ import annotations

import statistics
import time

import harness
import torch

import hear_mn
from hear_mn.engines.ort import set_backend

MODELS = ("mn04_e1_l", "mn10_e1_l")
BACKENDS = ("torch", "onnxruntime", "auto")


def fresh(name: str, backend: str, weights: dict[str, torch.Tensor]) -> object:
    """A model of ``name`` with ``weights`` run by ``backend``, nothing exported yet."""
    model = hear_mn.create_model(name, pretrained=False)
    model.load_state_dict(weights)
    return set_backend(model, backend)


def run_seconds(model: object, clip: torch.Tensor, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        model.scene_embeddings(clip)
    return time.perf_counter() - start


def bench(name: str, runs: list[int], repeats: int, clip_seconds: float) -> list[dict]:
    """Rows of one model: per run length, each backend's median total and its ratio."""
    torch.manual_seed(0)
    built = hear_mn.create_model(name, pretrained=False)
    weights, rate = built.state_dict(), built.sample_rate
    clip = 0.1 * torch.randn(
        1, int(clip_seconds * rate), generator=torch.Generator().manual_seed(1)
    )
    fresh(name, "onnxruntime", weights).scene_embeddings(clip)  # the exporter's first import
    rows = []
    for calls in runs:
        samples: dict[str, list[float]] = {backend: [] for backend in BACKENDS}
        for repeat in range(repeats):
            for backend in BACKENDS if repeat % 2 == 0 else BACKENDS[::-1]:
                model = fresh(name, backend, weights)
                samples[backend].append(run_seconds(model, clip, calls))
                if backend == "auto":
                    moved_after = model.engines()["scene"]
        totals = {backend: statistics.median(values) for backend, values in samples.items()}
        best = min(totals["torch"], totals["onnxruntime"])
        rows.append(
            {
                "model": name,
                "calls": calls,
                "seconds": totals,
                "over_best_fixed": {backend: total / best for backend, total in totals.items()},
                "auto_scene_engine_at_end": moved_after,
                "samples": samples,
            }
        )
    return rows


def table(rows: list[dict]) -> str:
    headers = [
        "model",
        "calls",
        *(f"{b} (s)" for b in BACKENDS),
        "auto / best fixed",
        "auto ends in",
    ]
    cells = [
        [
            row["model"],
            row["calls"],
            *(f"{row['seconds'][b]:.3f}" for b in BACKENDS),
            f"{row['over_best_fixed']['auto']:.2f}x",
            row["auto_scene_engine_at_end"],
        ]
        for row in rows
    ]
    return harness.markdown_table(headers, cells)


def main() -> None:
    parser = harness.parser(__doc__, repeats=3)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--calls", default="1,10,100,400", help="run lengths (scene calls)")
    parser.add_argument("--clip-seconds", type=float, default=10.0)
    args = harness.parse_args(parser)
    models = args.models.split(",")
    runs = [int(k) for k in args.calls.split(",")]
    if args.smoke:
        models, runs, args.clip_seconds = models[:1], [1, 2], 1.0
    torch.set_num_threads(args.threads)
    rows = [row for name in models for row in bench(name, runs, args.repeats, args.clip_seconds)]
    harness.report(args, {"results": rows}, table(rows), threads=args.threads)


if __name__ == "__main__":
    main()
