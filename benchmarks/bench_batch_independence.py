"""What embedding each clip in a forward pass of its own costs against batching equal-length
clips together (issue 21, item 6: an output must not depend on which files share its batch).

Both contenders run in the same process, alternating, on the same clips; the script prints
the median seconds of each and their ratio (per clip / batched).

    python benchmarks/bench_batch_independence.py [--models mn04_e1_l kwmlp] [--threads 1]
    python benchmarks/bench_batch_independence.py --smoke --json /tmp/batching.json
"""

from __future__ import annotations

import functools

import harness
import numpy as np
import torch

from hear_mn.batch import embed_arrays
from hear_mn.registry import create_model

MODELS = ("mn04_e1_l", "kwmlp")
SECONDS = (0.5, 10.0)


def _batched(model, clips: np.ndarray, batch: int, timestamps: bool) -> None:
    for start in range(0, len(clips), batch):
        embed_arrays(model, clips[start : start + batch], timestamps)


def _per_clip(model, clips: np.ndarray, batch: int, timestamps: bool) -> None:
    for clip in clips:
        embed_arrays(model, clip[None], timestamps)


def main() -> None:
    parser = harness.parser(__doc__, repeats=5, threads="1")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--seconds", nargs="+", type=float, default=list(SECONDS))
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    args = harness.parse_args(parser)
    if args.smoke:
        args.models, args.seconds, args.clips, args.batch_size = MODELS[:1], [0.5], 2, 2
    torch.set_num_threads(args.threads)
    generator = np.random.default_rng(0)
    lines = [
        f"threads={args.threads} batch_size={args.batch_size} clips={args.clips}",
        f"{'model':<12}{'mode':<7}{'seconds':>8}{'batched s':>11}{'per clip s':>12}{'ratio':>7}",
    ]
    rows = []
    for name in args.models:
        model = create_model(name, pretrained=False)
        rate = int(model.sample_rate)
        for seconds in args.seconds:
            shape = (args.clips, int(seconds * rate))
            clips = (0.1 * generator.standard_normal(shape)).astype(np.float32)
            for timestamps in (False, True):
                contenders = {
                    label: functools.partial(run, model, clips, args.batch_size, timestamps)
                    for label, run in (("batched", _batched), ("per clip", _per_clip))
                }
                timings = harness.interleave(contenders, args.repeats)
                row = {
                    "model": name,
                    "mode": "ts" if timestamps else "scene",
                    "seconds": seconds,
                    "batched_s": timings["batched"].median,
                    "per_clip_s": timings["per clip"].median,
                    "ratio": harness.ratios(timings, "batched")["per clip"],
                }
                rows.append(row)
                lines.append(
                    f"{name:<12}{row['mode']:<7}{seconds:>8.1f}{row['batched_s']:>11.3f}"
                    f"{row['per_clip_s']:>12.3f}{row['ratio']:>7.2f}"
                )
    payload = {"batch_size": args.batch_size, "clips": args.clips, "rows": rows}
    harness.report(args, payload, "\n".join(lines))


if __name__ == "__main__":
    main()
