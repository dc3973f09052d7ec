"""Time Audio-MLP (kwmlp, audiomae) on 60 s of audio, the length the original was timed on.

    python benchmarks/bench_audiomlp_reference.py [--seconds 60] [--threads 2] [--runs 7]

Prints the median wall time of timestamp and scene embeddings after warm-up. The original
HEAR 2021 code took 0.12 s (kwmlp) and 0.07 s (audiomae) for timestamp embeddings of 60 s on
the development machine (2 threads); compare on a quiet machine. Exactness against the
reference outputs: ``benchmarks/parity_table.py``.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from bench_speed import median_seconds

from hear_mn.registry import create_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    samples = np.random.default_rng(0).uniform(-0.5, 0.5, (1, int(args.seconds * 16000)))
    audio = torch.from_numpy(samples).float()
    for name in ("kwmlp", "audiomae"):
        model = create_model(name, pretrained=False)
        timestamp = median_seconds(lambda m=model: m.timestamp_embeddings(audio), args.runs)
        scene = median_seconds(lambda m=model: m.scene_embeddings(audio), args.runs)
        print(
            f"{name:9s} {args.seconds:g} s audio, {args.threads} threads: "
            f"timestamp {timestamp * 1000:.1f} ms, scene {scene * 1000:.1f} ms "
            f"(median of {args.runs})"
        )


if __name__ == "__main__":
    main()
