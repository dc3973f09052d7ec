"""Speed of hear-mn against a per-window loop of the same model, measured in the same run.

The EfficientAT HEAR reference computes timestamp embeddings with one forward pass per
160 ms window position. This script times that loop and our batched path on the same
model, checks both give the same numbers, and prints the ratio, plus scene-embedding
throughput. Contenders are timed in alternation (medians); machines here are noisy:
compare ratios, not absolute seconds.

    python benchmarks/bench_speed.py                      # mn04, mn10, mn10_all_b_mel_avgs(_hop5)
    python benchmarks/bench_speed.py --models mn04_e1_l --json bench_out/speed.json
    python benchmarks/bench_speed.py --smoke --json /tmp/speed.json   # does it run?
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import harness
import torch

from hear_mn.models.efficientat.efficientat_embedder import MobileNetEmbedder
from hear_mn.models.efficientat.mobilenet_network import concatenate_taps
from hear_mn.registry import create_model

# Timed against the per-window loop: the paper's mn04/mn10 and the EfficientAT_HEAR
# package's headline module, at the standard and the 5 ms STFT hop.
LOOP_MODELS = ("mn04_e1_l", "mn10_e1_l", "mn10_all_b_mel_avgs", "mn10_all_b_mel_avgs_hop5")
SMOKE_MODELS, SMOKE_NO_LOOP = ("mn04_e1_l",), ("kwmlp",)


def interleaved_medians(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each run, timed in alternation after one warm-up call each."""
    return harness.medians(harness.interleave(runs, repeats))


def standard_calls(
    sample_rate: int, seconds_of_audio: float = 20, clips: int = 16
) -> dict[str, Callable[[object], torch.Tensor]]:
    """The two calls every speed comparison makes, by name: timestamp embeddings of
    ``seconds_of_audio`` s and scene embeddings of ``clips`` clips of 10 s (fixed noise)."""
    generator = torch.Generator().manual_seed(1)
    audio = 0.1 * torch.randn(1, int(seconds_of_audio * sample_rate), generator=generator)
    scene_clips = 0.1 * torch.randn(clips, 10 * sample_rate, generator=generator)
    return {
        f"timestamps, {seconds_of_audio:g} s": lambda model: model.timestamp_embeddings(audio)[0],
        f"scene, {clips} clips of 10 s": lambda model: model.scene_embeddings(scene_clips),
    }


def paired_calls(
    models: dict[str, object], repeats: int, seconds_of_audio: float = 20, clips: int = 16
) -> list[dict]:
    """Contenders (``models``: label -> model, the first the baseline) on the same
    :func:`standard_calls`, alternating. Per call: its name, median seconds per label, and how
    far each other contender's output is from the baseline's (max relative, by label)."""
    rate = next(iter(models.values())).sample_rate
    rows = []
    for call, run in standard_calls(rate, seconds_of_audio, clips).items():
        outputs = {label: run(model) for label, model in models.items()}
        first = next(iter(outputs.values()))
        differences = {
            label: relative_difference(output, first) for label, output in list(outputs.items())[1:]
        }
        seconds = interleaved_medians(
            {label: (lambda model=model, run=run: run(model)) for label, model in models.items()},
            repeats,
        )
        rows.append({"call": call, "seconds": seconds, "max_relative_difference": differences})
    return rows


def per_window_loop(model: MobileNetEmbedder, audio: torch.Tensor) -> torch.Tensor:
    """The reference's way: pad, then one frontend + backbone pass per window position."""
    size, hop, pad = model.windows.size, model.windows.hop, model.windows.pad
    padded = torch.nn.functional.pad(audio[:, None], (pad, pad), mode="reflect")[:, 0]
    with torch.inference_mode():
        rows = [
            model.embed_audio(padded[:, i * hop : i * hop + size])
            for i in range(model.windows.count(audio.shape[1]))
        ]
    return torch.stack(rows, dim=1)


def plain_backbone_scene(model: MobileNetEmbedder, clips: torch.Tensor) -> torch.Tensor:
    """Scene embeddings through an eager copy of the backbone as the reference ran it:
    contiguous memory format, BatchNorm not folded."""
    backbone = copy.deepcopy(model.backbone).to(memory_format=torch.contiguous_format)
    with torch.inference_mode():
        mels = model.frontend(clips)
        return concatenate_taps(model.features, backbone(mels[:, None], model.plan), mels)


def relative_difference(ours: torch.Tensor, reference: torch.Tensor) -> float:
    """max|ours - reference| / max|reference|."""
    return float((ours - reference).abs().max() / reference.abs().max())


def bench_model(name: str, seconds: float, repeats: int, clips: int, loop: bool) -> dict:
    """One model's row: timestamps (batched, and the per-window loop where ``loop``), scene
    embeddings of one clip and of ``clips`` (ours, and the plain backbone where ``loop``)."""
    torch.manual_seed(0)
    model = create_model(name, pretrained=False)
    generator = torch.Generator().manual_seed(1)
    rate = model.sample_rate
    audio = 0.1 * torch.randn(1, int(seconds * rate), generator=generator)
    scene_clips = 0.1 * torch.randn(clips, 10 * rate, generator=generator)
    result: dict = {"model": name, "audio_seconds": seconds}
    with_loop = loop and isinstance(model, MobileNetEmbedder)
    timestamp_runs = {"batched_s": lambda: model.timestamp_embeddings(audio)}
    if with_loop:
        ours, _ = model.timestamp_embeddings(audio)
        result["max_relative_difference"] = relative_difference(ours, per_window_loop(model, audio))
        timestamp_runs["per_window_loop_s"] = lambda: per_window_loop(model, audio)
    result.update(interleaved_medians(timestamp_runs, repeats))
    if with_loop:
        result["speedup"] = result["per_window_loop_s"] / result["batched_s"]
    result["scene_one_10s_clip_s"] = harness.median_seconds(
        lambda: model.scene_embeddings(scene_clips[:1]), repeats
    )
    scene_runs = {"ours": lambda: model.scene_embeddings(scene_clips)}
    if with_loop:
        scene_runs["plain"] = lambda: plain_backbone_scene(model, scene_clips)
    scene_s = interleaved_medians(scene_runs, repeats)
    result[f"scene_{clips}_clips_per_s"] = clips / scene_s["ours"]
    if with_loop:
        result[f"plain_scene_{clips}_clips_per_s"] = clips / scene_s["plain"]
        result["scene_speedup"] = scene_s["plain"] / scene_s["ours"]
        result["scene_max_relative_difference"] = relative_difference(
            model.scene_embeddings(scene_clips), plain_backbone_scene(model, scene_clips)
        )
    return result


def table(results: list[dict], clips: int, seconds: float, repeats: int) -> str:
    """The printed table, one row per model."""
    lines = [
        f"timestamp embeddings of {seconds:g} s audio, scene embeddings of 10 s clips; "
        f"median of {repeats} after warm-up",
        f"{'model':<24} {'loop s':>8} {'ours s':>8} {'speedup':>8} {'max rel diff':>13} "
        f"{'scene 1 clip s':>15} {'clips/s':>8} {'plain clips/s':>14} {'scene x':>8}",
    ]
    for r in results:

        def cell(key: str, fmt: str, r: dict = r) -> str:
            return format(r[key], fmt) if key in r else "-"

        lines.append(
            f"{r['model']:<24} {cell('per_window_loop_s', '8.3f'):>8} {r['batched_s']:8.3f} "
            f"{cell('speedup', '7.1f'):>8} {cell('max_relative_difference', '13.1e'):>13} "
            f"{r['scene_one_10s_clip_s']:15.3f} {r[f'scene_{clips}_clips_per_s']:8.1f} "
            f"{cell(f'plain_scene_{clips}_clips_per_s', '14.1f'):>14} "
            f"{cell('scene_speedup', '7.2f'):>8}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = harness.parser(__doc__, repeats=3)
    parser.add_argument("--models", default=",".join(LOOP_MODELS))
    parser.add_argument(
        "--no-loop-models", default="", help="models to time without the per-window loop baseline"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="audio length for timestamps")
    parser.add_argument("--clips", type=int, default=16, help="clips in the scene batch")
    args = harness.parse_args(parser)
    if args.smoke:
        args.models, args.no_loop_models = ",".join(SMOKE_MODELS), ",".join(SMOKE_NO_LOOP)
        args.seconds, args.clips = 1.0, 2
    torch.set_num_threads(args.threads)
    no_loop = [name for name in args.no_loop_models.split(",") if name]
    results = [
        bench_model(name, args.seconds, args.repeats, args.clips, loop=name not in no_loop)
        for name in args.models.split(",") + no_loop
        if name
    ]
    payload = {"torch": torch.__version__, "threads": args.threads, "results": results}
    harness.report(args, payload, table(results, args.clips, args.seconds, args.repeats))


if __name__ == "__main__":
    main()
