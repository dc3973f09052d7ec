"""Live streaming on one CPU thread: the time of each new window, per backend.

Pushes a signal in chunks of one hop (50 ms, like a microphone callback), so that every push
completes exactly one new 160 ms window, through three streams of the same weights in
lockstep: backend "torch", "onnxruntime" and "auto" (the default, which picks the engine
measured faster for single windows). The pushes of the three alternate, the order reversed
every other push, so that a noisy machine's slow phases fall on all of them alike. Reports
the median and 95th percentile of a push's time (= one window's), the real-time factor
(processing time / audio duration) and the worst push, and checks that every stream equals
the offline timestamp embeddings (1e-5 relative). A window's embedding is out once the
sample 80 ms after its centre has been pushed, plus the push's processing time.

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


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure(name: str, seconds: float, chunk_ms: float) -> list[dict]:
    """One row per backend: per-push times of streams pushed in lockstep."""
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
    for index, position in enumerate(range(0, signal.shape[0], chunk)):
        piece = signal[position : position + chunk]
        order = BACKENDS if index % 2 == 0 else BACKENDS[::-1]
        for backend in order:
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
    args = harness.parse_args(parser)
    if args.smoke:
        args.models, args.seconds = MODELS[0], 1.5
    torch.set_num_threads(args.threads)
    rows = [
        row for name in args.models.split(",") for row in measure(name, args.seconds, args.chunk_ms)
    ]
    lines = [
        f"streaming {args.seconds:g} s in {args.chunk_ms:g} ms pushes, {args.threads} thread(s); "
        "ms per new window",
        f"{'model':<12} {'backend':<12} {'engine':<12} {'median':>7} {'p95':>7} {'worst':>7} "
        f"{'RTF':>6}",
    ]
    lines += [
        f"{r['model']:<12} {r['backend']:<12} {r['engine']:<12} {r['median_ms']:7.3f} "
        f"{r['p95_ms']:7.3f} {r['worst_push_ms']:7.2f} {r['realtime_factor']:6.3f}"
        for r in rows
    ]
    harness.report(args, {"threads": args.threads, "results": rows}, "\n".join(lines))


if __name__ == "__main__":
    main()
