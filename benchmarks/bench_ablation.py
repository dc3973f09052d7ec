"""What each speed-up buys: the same call with the inference rewrites switched on one by one.

Timestamp embeddings of 20 s and scene embeddings of 16 clips of 10 s, all variants timed
in alternation in one run (medians), each checked against the final output:

* ``plain``: batched windows through the network as trained (contiguous, BatchNorm),
  every window's STFT computed on its own;
* ``+ channels_last, BatchNorm folded``;
* ``+ in-place activations and gates`` (these two:
  :mod:`hear_mn.models.efficientat.inference_rewrites`);
* ``+ shared STFT frames``: hear-mn as shipped.

``--compile`` adds the folded backbone under ``torch.compile`` (inductor); its compile time
is reported separately.

    python benchmarks/bench_ablation.py --models mn04_e1_l,mn10_e1_l
    python benchmarks/bench_ablation.py --smoke --json /tmp/ablation.json   # does it run?
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import harness
import torch
from bench_speed import interleaved_medians
from torch import nn

from hear_mn.models.efficientat.block_table import BackbonePlan
from hear_mn.models.efficientat.efficientat_embedder import MobileNetEmbedder
from hear_mn.models.efficientat.inference_rewrites import fold_batchnorm, work_in_place
from hear_mn.models.efficientat.mobilenet_network import BackboneOutputs
from hear_mn.registry import create_model


class _Contiguous(nn.Module):
    """The plain network on input in the default (contiguous) layout."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, mels: torch.Tensor, plan: BackbonePlan) -> BackboneOutputs:
        return self.network(mels.contiguous(), plan)


def _with(
    model: MobileNetEmbedder, rewrite: Callable | None, shared_frames: bool
) -> Callable[[Callable[[], torch.Tensor]], Callable[[], torch.Tensor]]:
    """Wrap a call so that it runs with the backbone rewrite ``rewrite`` (None: as shipped)
    and frame sharing on/off."""
    frontend = model.frontend
    shipped_sliding = type(frontend).sliding_windows.__get__(frontend)
    shipped_rewrite = model.inference_rewrite

    def one_by_one(signal: torch.Tensor, count: int, size: int, hop: int) -> torch.Tensor:
        return frontend(signal.unfold(0, size, hop)[:count])

    def wrap(call: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            frontend.sliding_windows = shipped_sliding if shared_frames else one_by_one
            model.inference_rewrite = shipped_rewrite if rewrite is None else rewrite
            try:
                return call()
            finally:
                frontend.__dict__.pop("sliding_windows", None)
                model.inference_rewrite = shipped_rewrite

        return run

    return wrap


MODELS = ("mn04_e1_l", "mn10_e1_l")


def ablate(
    name: str, seconds: float, repeats: int, compile_backbone: bool, clips_count: int = 16
) -> dict:
    """Per call (timestamps of ``seconds`` s, scene of ``clips_count`` clips of 10 s): every
    variant's median time, speed-up over plain, and distance from hear-mn's output."""
    torch.manual_seed(0)
    model = create_model(name, pretrained=False)
    generator = torch.Generator().manual_seed(1)
    audio = 0.1 * torch.randn(1, int(seconds * model.sample_rate), generator=generator)
    clips = 0.1 * torch.randn(clips_count, 10 * model.sample_rate, generator=generator)
    network = copy.deepcopy(model.backbone).to(memory_format=torch.contiguous_format).eval()
    variants = {
        "plain": _with(model, lambda _: _Contiguous(network), shared_frames=False),
        "+ channels_last, BatchNorm folded": _with(model, fold_batchnorm, shared_frames=False),
        "+ in-place activations and gates": _with(model, None, shared_frames=False),
        "+ shared STFT frames (hear-mn)": _with(model, None, shared_frames=True),
    }
    result: dict = {"model": name, "audio_seconds": seconds}
    if compile_backbone:
        compiled = torch.compile(work_in_place(fold_batchnorm(model.backbone)), dynamic=False)
        start = time.perf_counter()
        with_compiled = _with(model, lambda _: compiled, shared_frames=True)
        with_compiled(lambda: model.timestamp_embeddings(audio))()
        with_compiled(lambda: model.scene_embeddings(clips))()
        result["compile_s"] = time.perf_counter() - start
        variants["in-place copy under torch.compile, shared frames"] = with_compiled

    for call_name, call in (
        ("timestamps", lambda: model.timestamp_embeddings(audio)[0]),
        ("scene", lambda: model.scene_embeddings(clips)),
    ):
        final = call()
        runs = {label: wrap(call) for label, wrap in variants.items()}
        seconds_by_label = interleaved_medians(runs, repeats)
        rows = []
        for label, run in runs.items():
            out = run()
            rows.append(
                {
                    "variant": label,
                    "seconds": seconds_by_label[label],
                    "speedup_vs_plain": seconds_by_label["plain"] / seconds_by_label[label],
                    "max_relative_difference": float((out - final).abs().max() / final.abs().max()),
                }
            )
        result[call_name] = rows
    return result


def table(results: list[dict], repeats: int) -> str:
    lines = [f"medians of {repeats}"]
    for result in results:
        if "compile_s" in result:
            lines.append(f"{result['model']}: torch.compile took {result['compile_s']:.1f} s")
        for call_name in ("timestamps", "scene"):
            what = (
                f"timestamps of {result['audio_seconds']:g} s"
                if call_name == "timestamps"
                else f"scene, {result['clips']} clips of 10 s"
            )
            lines += [
                f"\n{result['model']}, {what}",
                f"  {'variant':<50} {'s':>7} {'vs plain':>9} {'max rel diff':>13}",
            ]
            lines += [
                f"  {row['variant']:<50} {row['seconds']:7.3f} "
                f"{row['speedup_vs_plain']:8.2f}x {row['max_relative_difference']:13.1e}"
                for row in result[call_name]
            ]
    return "\n".join(lines)


def main() -> None:
    parser = harness.parser(__doc__, repeats=5)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clips", type=int, default=16, help="clips of 10 s in the scene batch")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = harness.parse_args(parser)
    if args.smoke:
        args.models, args.seconds, args.clips = MODELS[0], 1.0, 2
    torch.set_num_threads(args.threads)
    results = [
        {**ablate(name, args.seconds, args.repeats, args.compile, args.clips), "clips": args.clips}
        for name in args.models.split(",")
    ]
    payload = {"torch": torch.__version__, "threads": args.threads, "results": results}
    harness.report(args, payload, table(results, args.repeats))


if __name__ == "__main__":
    main()
