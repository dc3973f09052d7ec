"""Time Audio-MLP (kwmlp, audiomae) on 60 s of audio, the length the original was timed on.

    python benchmarks/bench_audiomlp_reference.py [--seconds 60] [--threads 2] [--repeats 7]
    python benchmarks/bench_audiomlp_reference.py --smoke --json /tmp/audiomlp.json

Prints the median wall time of timestamp and scene embeddings after warm-up. The original
HEAR 2021 code took 0.12 s (kwmlp) and 0.07 s (audiomae) for timestamp embeddings of 60 s on
the development machine (2 threads); compare on a quiet machine. Exactness against the
reference outputs: ``benchmarks/parity_table.py``.
"""

from __future__ import annotations

import harness
import numpy as np
import torch

from hear_mn.registry import create_model

MODELS = ("kwmlp", "audiomae")


def measure(name: str, audio: torch.Tensor, repeats: int) -> dict:
    """Median seconds of timestamp and scene embeddings of ``audio``, timed in alternation."""
    model = create_model(name, pretrained=False)
    timings = harness.interleave(
        {
            "timestamp": lambda: model.timestamp_embeddings(audio),
            "scene": lambda: model.scene_embeddings(audio),
        },
        repeats,
    )
    return {"model": name, **{f"{call}_s": t.median for call, t in timings.items()}}


def main() -> None:
    parser = harness.parser(__doc__, repeats=7)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, help="the former name of --repeats")
    args = harness.parse_args(parser)
    repeats = args.runs or args.repeats
    if args.smoke:
        args.seconds, repeats = 2.0, 1
    torch.set_num_threads(args.threads)
    samples = np.random.default_rng(0).uniform(-0.5, 0.5, (1, int(args.seconds * 16000)))
    audio = torch.from_numpy(samples).float()
    rows = [measure(name, audio, repeats) for name in MODELS]
    summary = "\n".join(
        f"{row['model']:9s} {args.seconds:g} s audio, {args.threads} threads: "
        f"timestamp {row['timestamp_s'] * 1000:.1f} ms, scene {row['scene_s'] * 1000:.1f} ms "
        f"(median of {repeats})"
        for row in rows
    )
    payload = {"audio_seconds": args.seconds, "rows": rows, "summary": summary}
    harness.report(args, payload, summary)


if __name__ == "__main__":
    main()
