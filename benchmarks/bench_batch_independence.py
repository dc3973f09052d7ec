"""What embedding each clip in a forward pass of its own costs against batching equal-length
clips together (issue 21, item 6: an output must not depend on which files share its batch).

Both contenders run in the same process, alternating, on the same clips; the script prints
the median seconds of each and their ratio (per clip / batched).

    python benchmarks/bench_batch_independence.py [--models mn04_e1_l kwmlp] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from hear_mn.batch import embed_arrays
from hear_mn.registry import create_model


def _batched(model, clips: np.ndarray, batch: int, timestamps: bool) -> None:
    for start in range(0, len(clips), batch):
        embed_arrays(model, clips[start : start + batch], timestamps)


def _per_clip(model, clips: np.ndarray, batch: int, timestamps: bool) -> None:
    for clip in clips:
        embed_arrays(model, clip[None], timestamps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mn04_e1_l", "kwmlp"])
    parser.add_argument("--seconds", nargs="+", type=float, default=[0.5, 10.0])
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = np.random.default_rng(0)
    print(f"threads={args.threads} batch_size={args.batch_size} clips={args.clips}")
    print(f"{'model':<12}{'mode':<7}{'seconds':>8}{'batched s':>11}{'per clip s':>12}{'ratio':>7}")
    for name in args.models:
        model = create_model(name, pretrained=False)
        rate = int(model.sample_rate)
        for seconds in args.seconds:
            clips = (0.1 * generator.standard_normal((args.clips, int(seconds * rate)))).astype(
                np.float32
            )
            for timestamps in (False, True):
                times: dict[str, list[float]] = {"batched": [], "per clip": []}
                contenders = (("batched", _batched), ("per clip", _per_clip))
                _batched(model, clips, args.batch_size, timestamps)  # warm-up
                for repeat in range(args.repeats):
                    order = contenders if repeat % 2 == 0 else contenders[::-1]
                    for label, run in order:
                        start = time.perf_counter()
                        run(model, clips, args.batch_size, timestamps)
                        times[label].append(time.perf_counter() - start)
                batched = statistics.median(times["batched"])
                alone = statistics.median(times["per clip"])
                mode = "ts" if timestamps else "scene"
                print(
                    f"{name:<12}{mode:<7}{seconds:>8.1f}{batched:>11.3f}{alone:>12.3f}"
                    f"{alone / batched:>7.2f}"
                )


if __name__ == "__main__":
    main()
