"""Draw the README's figures from measured data (re-runnable; the PNGs are committed).

    python images/make_figures.py        # needs matplotlib (pip install matplotlib)

- ``model_sizes.png``: embedding size and parameter count of the paper's configurations,
  Audio-MLP and the EfficientAT_HEAR package's headline ``mnXX_all_b_mel_avgs`` at every
  width, from the registry (tests check the counts against the built models).
- ``speed.png``: the benchmark suite's side-by-side measurements from
  ``benchmarks/results/results.json`` (run ``python benchmarks/run_all.py`` first): speed-up
  of batched timestamp embeddings over the per-window loop, and scene throughput against
  the plain network, each measured in the same run.
- ``backends.png``: whole HEAR calls with backend torch vs onnxruntime, from
  ``benchmarks/results/backends.json`` (``python benchmarks/bench_backends.py --json ...``).
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from hear_mn.catalog import AUDIOMLP, EFFICIENTAT_HEAR, PAPER  # noqa: E402
from hear_mn.registry import named_configs  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "benchmarks" / "results" / "results.json"
BACKENDS = HERE.parent / "benchmarks" / "results" / "backends.json"


def model_sizes() -> None:
    headline = [
        config
        for config in named_configs(EFFICIENTAT_HEAR)
        if config.name.endswith("_all_b_mel_avgs")
    ]
    configs = named_configs(PAPER) + headline + named_configs(AUDIOMLP)
    names = [config.name for config in configs]
    sizes = [config.embedding_sizes[0] for config in configs]
    params = [config.checkpoint.num_params / 1e6 for config in configs]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 7), sharey=True)
    positions = range(len(names))
    left.barh(positions, sizes, color="#4c72b0")
    left.set_xlabel("scene embedding size (dims)")
    left.set_yticks(list(positions), names, fontsize=8)
    left.invert_yaxis()
    right.barh(positions, params, color="#dd8452")
    right.set_xscale("log")
    right.set_xlabel("parameters (millions, log scale)")
    for axis in (left, right):
        axis.grid(axis="x", alpha=0.3)
    figure.suptitle("hear-mn configurations: embedding size and model size")
    figure.tight_layout()
    figure.savefig(HERE / "model_sizes.png", dpi=110)
    plt.close(figure)


def _short(name: str) -> str:
    """Two-line tick label for long module names."""
    return name.replace("_all_b", "\n_all_b")


def speed() -> None:
    results = json.loads(RESULTS.read_text())
    env = results["environment"]
    rows = [r for r in results["speed"]["results"] if "speedup" in r]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = [r["model"] for r in rows]
    left.bar(range(len(rows)), [r["speedup"] for r in rows], color="#55a868")
    left.set_xticks(range(len(rows)), [_short(name) for name in names], fontsize=8)
    left.set_ylabel("speed-up over per-window loop (x)")
    left.set_title(f"timestamp embeddings, {rows[0]['audio_seconds']:g} s of audio")
    for position, r in enumerate(rows):
        left.annotate(f"{r['speedup']:.1f}x", (position, r["speedup"]), ha="center", va="bottom")
    scene = [r for r in results["speed"]["results"] if "plain_scene_16_clips_per_s" in r]
    width = 0.38
    positions = range(len(scene))
    right.bar(
        [p - width / 2 for p in positions],
        [r["plain_scene_16_clips_per_s"] for r in scene],
        width,
        label="plain network",
        color="#8c8c8c",
    )
    right.bar(
        [p + width / 2 for p in positions],
        [r["scene_16_clips_per_s"] for r in scene],
        width,
        label="hear-mn",
        color="#4c72b0",
    )
    right.set_xticks(list(positions), [_short(r["model"]) for r in scene], fontsize=8)
    right.set_ylabel("clips of 10 s per second")
    right.set_title("scene embeddings, batches of 16 clips")
    right.legend()
    figure.suptitle(
        f"Measured side by side in one run: {env['cpus']} CPUs, {env['threads']} threads, "
        f"torch {env['torch']}"
    )
    figure.tight_layout()
    figure.savefig(HERE / "speed.png", dpi=110)
    plt.close(figure)


def backends() -> None:
    rows = json.loads(BACKENDS.read_text())["rows"]
    whole = sorted({row["call"] for row in rows if "backbone" not in row["call"]}, reverse=True)
    calls = whole + [f"{call}, backbone only" for call in whole]
    figure, axes = plt.subplots(2, len(whole), figsize=(11, 8), sharey=True, squeeze=False)
    for axis, call in zip(axes.flat, calls):
        selected = [row for row in rows if row["call"] == call]
        labels = [
            f"{row['model'].split('_')[0]}{'_ext' if '_ext' in row['model'] else ''}\n"
            f"{row['threads']} thr"
            for row in selected
        ]
        speedups = [row["speedup"] for row in selected]
        colors = ["#55a868" if value >= 1 else "#c44e52" for value in speedups]
        axis.bar(range(len(selected)), speedups, color=colors)
        axis.axhline(1.0, color="black", linewidth=0.8)
        axis.set_xticks(range(len(selected)), labels, fontsize=8)
        axis.set_title(call)
        axis.grid(axis="y", alpha=0.3)
    axes[0, 0].set_ylabel("speed-up of onnxruntime over torch: whole call")
    axes[1, 0].set_ylabel("speed-up: backbone + taps alone, same batches")
    figure.suptitle("ONNX Runtime as the backend: HEAR calls, same process, alternating")
    figure.tight_layout()
    figure.savefig(HERE / "backends.png", dpi=110)
    plt.close(figure)


def main() -> None:
    model_sizes()
    if RESULTS.exists():
        speed()
    if BACKENDS.exists():
        backends()


if __name__ == "__main__":
    main()
