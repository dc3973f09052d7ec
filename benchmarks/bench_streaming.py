"""Real-time factor of streaming timestamp embeddings on one CPU thread.

Pushes a signal in fixed-size chunks (default 100 ms, like a microphone callback) and reports
processing time / audio duration (below 1 = faster than real time), and the worst time a
single push took. A window's embedding is out once the sample 80 ms after its centre has
been pushed, plus the push's processing time.

    python benchmarks/bench_streaming.py --models mn04_e1_l,mn10_e1_l --seconds 60
    python benchmarks/bench_streaming.py --smoke --json /tmp/streaming.json   # does it run?
"""

from __future__ import annotations

import time

import harness
import torch

import hear_mn

MODELS = ("mn04_e1_l", "mn10_e1_l")


def measure(name: str, seconds: float, chunk_ms: float) -> dict:
    torch.manual_seed(0)
    model = hear_mn.create_model(name, pretrained=False)
    signal = 0.1 * torch.randn(int(seconds * model.sample_rate))
    chunk = int(model.sample_rate * chunk_ms / 1000)
    warm = hear_mn.stream(model)
    warm.push(signal[: model.sample_rate])
    warm.close()
    stream = hear_mn.stream(model)
    worst = 0.0
    start = time.perf_counter()
    for position in range(0, signal.shape[0], chunk):
        pushed = time.perf_counter()
        stream.push(signal[position : position + chunk])
        worst = max(worst, time.perf_counter() - pushed)
    stream.close()
    total = time.perf_counter() - start
    return {
        "model": name,
        "audio_seconds": seconds,
        "chunk_ms": chunk_ms,
        "processing_seconds": total,
        "realtime_factor": total / seconds,
        "worst_push_ms": worst * 1000,
        "windows": stream.num_emitted,
    }


def main() -> None:
    parser = harness.parser(__doc__, repeats=1, threads="1")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--chunk-ms", type=float, default=100.0)
    args = harness.parse_args(parser)
    if args.smoke:
        args.models, args.seconds = MODELS[0], 2.0
    torch.set_num_threads(args.threads)
    results = [measure(name, args.seconds, args.chunk_ms) for name in args.models.split(",")]
    lines = [
        f"streaming {args.seconds:g} s in {args.chunk_ms:g} ms chunks, {args.threads} thread(s)",
        f"{'model':<12} {'real-time factor':>17} {'worst push ms':>14}",
    ]
    lines += [
        f"{r['model']:<12} {r['realtime_factor']:17.3f} {r['worst_push_ms']:14.1f}" for r in results
    ]
    harness.report(args, {"threads": args.threads, "results": results}, "\n".join(lines))


if __name__ == "__main__":
    main()
