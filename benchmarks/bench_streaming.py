"""Live streaming on one CPU thread: the time of each new window, per backend.

Pushes a signal in chunks of one hop (50 ms, like a microphone callback), so that every push
completes exactly one new 160 ms window, through three streams of the same weights: backend
"torch", "onnxruntime" and "auto" (the default, which picks the engine measured faster for
single windows). Two schedules, each over the whole signal:

* ``blocks`` (as an application runs one stream): the streams take turns by blocks of
  ``--block-seconds`` of pushes, the order reversed every other block, so that a noisy
  machine's slow phases fall on all of them alike while each stream's weights and buffers
  stay in the CPU's caches from one of its pushes to the next, as they do in a program that
  runs one stream; the first push of each block pays for the cache the others used.
* ``lockstep``: the streams alternate every push, so each push also pays for the caches the
  other two streams used just before (a program running several models in one thread).

Reports the median and 95th percentile of a push's time (= one window's), the real-time
factor (processing time / audio duration) and the worst push, and checks that every stream
equals the offline timestamp embeddings (1e-5 relative). A window's embedding is out once
the sample 80 ms after its centre has been pushed, plus the push's processing time.

    python benchmarks/bench_streaming.py --models mn04_e1_l,mn10_e1_l --seconds 30
    python benchmarks/bench_streaming.py --smoke --json /tmp/streaming.json   # does it run?
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
SCHEDULES = ("blocks", "lockstep")


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure(
    name: str, seconds: float, chunk_ms: float, schedule: str, block_seconds: float
) -> list[dict]:
    """One row per backend: per-push times of the three streams taking turns by ``schedule``."""
    torch.manual_seed(0)
    models = {}
    for backend in BACKENDS:
        model = hear_mn.create_model(name, pretrained=False)
        if models:
            model.load_state_dict(models[BACKENDS[0]].state_dict())
        models[backend] = set_backend(model, backend)
    rate = models["torch"].sample_rate
    signal = 0.1 * torch.randn(int(seconds * rate))
    chunk = int(rate * chunk_ms / 1000)
    streams = {}
    for backend, model in models.items():
        warm = hear_mn.stream(model)  # compiles the ONNX Runtime session
        warm.push(signal[:rate])
        warm.close()
        streams[backend] = hear_mn.stream(model)
    times: dict[str, list[float]] = {backend: [] for backend in BACKENDS}
    outputs: dict[str, list[torch.Tensor]] = {backend: [] for backend in BACKENDS}
    positions = list(range(0, signal.shape[0], chunk))
    per_turn = 1 if schedule == "lockstep" else max(1, round(block_seconds * 1000 / chunk_ms))
    for index, first in enumerate(range(0, len(positions), per_turn)):
        order = BACKENDS if index % 2 == 0 else BACKENDS[::-1]
        for backend in order:
            for position in positions[first : first + per_turn]:
                piece = signal[position : position + chunk]
                start = time.perf_counter()
                embeddings, _ = streams[backend].push(piece)
                times[backend].append(time.perf_counter() - start)
                outputs[backend].append(embeddings)
    offline = models["torch"].get_timestamp_embeddings(signal[None])[0][0]
    rows = []
    for backend in BACKENDS:
        closing, _ = streams[backend].close()
        streamed = torch.cat([*outputs[backend], closing])
        difference = float((streamed - offline).abs().max() / offline.abs().max())
        if difference > 1e-5:
            raise AssertionError(f"{name} {backend}: stream differs from offline by {difference}")
        # pushes that completed a window (the first fill the left padding)
        per_window = [t for t, e in zip(times[backend], outputs[backend]) if e.shape[0] == 1]
        rows.append(
            {
                "model": name,
                "schedule": schedule,
                "backend": backend,
                "engine": streams[backend].output_settings()["backend"],
                "audio_seconds": seconds,
                "chunk_ms": chunk_ms,
                "windows_timed": len(per_window),
                "median_ms": 1000 * statistics.median(per_window),
                "p95_ms": 1000 * _percentile(per_window, 0.95),
                "worst_push_ms": 1000 * max(times[backend]),
                "realtime_factor": sum(times[backend]) / seconds,
                "max_relative_difference": difference,
            }
        )
    return rows


def main() -> None:
    parser = harness.parser(__doc__, repeats=1, threads="1")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--chunk-ms", type=float, default=50.0)
    parser.add_argument("--schedules", default=",".join(SCHEDULES), help="blocks, lockstep")
    parser.add_argument("--block-seconds", type=float, default=1.0, help="a turn in blocks")
    args = harness.parse_args(parser)
    if args.smoke:
        args.models, args.seconds = MODELS[0], 1.5
    torch.set_num_threads(args.threads)
    schedules = args.schedules.split(",")
    if unknown := set(schedules) - set(SCHEDULES):
        parser.error(f"unknown schedule(s) {sorted(unknown)}; choose from {SCHEDULES}")
    rows = [
        row
        for name in args.models.split(",")
        for schedule in schedules
        for row in measure(name, args.seconds, args.chunk_ms, schedule, args.block_seconds)
    ]
    lines = [
        f"streaming {args.seconds:g} s in {args.chunk_ms:g} ms pushes, {args.threads} thread(s); "
        "ms per new window",
        f"{'model':<12} {'schedule':<9} {'backend':<12} {'engine':<12} {'median':>7} {'p95':>7} "
        f"{'worst':>7} {'RTF':>6}",
    ]
    lines += [
        f"{r['model']:<12} {r['schedule']:<9} {r['backend']:<12} {r['engine']:<12} "
        f"{r['median_ms']:7.3f} "
        f"{r['p95_ms']:7.3f} {r['worst_push_ms']:7.2f} {r['realtime_factor']:6.3f}"
        for r in rows
    ]
    payload = {"threads": args.threads, "block_seconds": args.block_seconds, "results": rows}
    harness.report(args, payload, "\n".join(lines))


if __name__ == "__main__":
    main()
