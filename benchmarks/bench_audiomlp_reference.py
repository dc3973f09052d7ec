"""Time Audio-MLP (kwmlp, audiomae) on 60 s of audio and check it against the reference outputs.

Usage: python benchmarks/bench_audiomlp_reference.py [--seconds 60] [--threads 2] [--runs 7]

Prints, per model, the median wall time of timestamp and scene embeddings (after warm-up)
and, when ../shared is present, the max relative error against the reference outputs.
For comparison, the original HEAR 2021 code took 0.12 s (kwmlp) and 0.07 s (audiomae) for
timestamp embeddings of 60 s on the development machine (2 threads).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from hear_mn.audiomlp import AUDIOMAE, KWMLP, AudioMLPModel

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "audiomlp"


def _median_seconds(fn, runs: int) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    audio = torch.from_numpy(
        np.random.default_rng(0).uniform(-0.5, 0.5, (1, int(args.seconds * 16000)))
    ).float()
    for arch in (KWMLP, AUDIOMAE):
        model = AudioMLPModel(arch)
        ckpt = FIXTURES / f"{arch.name}.pth"
        if ckpt.is_file():
            state = torch.load(ckpt, map_location="cpu", weights_only=True)["model_state_dict"]
            model.load_checkpoint(state, source=ckpt.name)
        t_ts = _median_seconds(lambda m=model: m.timestamp_embeddings(audio), args.runs)
        t_sc = _median_seconds(lambda m=model: m.scene_embeddings(audio), args.runs)
        print(
            f"{arch.name:9s} {args.seconds:g} s audio, {args.threads} threads: "
            f"timestamp {t_ts * 1000:.1f} ms, scene {t_sc * 1000:.1f} ms (median of {args.runs})"
        )
        if ckpt.is_file():
            inputs = np.load(FIXTURES / "audiomlp_inputs.npz")
            ref = np.load(FIXTURES / f"{arch.name}_ref.npz")
            for key in inputs.files:
                emb, times = model.timestamp_embeddings(inputs[key])
                scene = model.scene_embeddings(inputs[key])
                errs = []
                for label, ours in (("timestamp_embeddings", emb), ("scene", scene)):
                    r = ref[f"{key}/{label}"]
                    errs.append(f"{label} {np.abs(ours.numpy() - r).max() / np.abs(r).max():.2e}")
                exact = np.array_equal(times.numpy(), ref[f"{key}/timestamps"])
                print(f"  {key:7s} " + ", ".join(errs) + f", timestamps exact: {exact}")


if __name__ == "__main__":
    main()
