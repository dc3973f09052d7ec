"""Batch throughput on a CUDA GPU: scene embeddings of 10 s clips in clips/s at fp32, fp16
and bf16, with each precision's drift from float32, for the day a GPU is at hand.

Per model (mn04, mn10, mn40, dymn10; random weights, ``create_model(name,
pretrained=False)``, BatchNorm statistics measured on the benchmark's noise with
:func:`bench_dymn.calibrate_batchnorm` so that activations keep a realistic range), a batch
of ``--batch`` clips of 10 s (32) already on the GPU goes through ``scene_embeddings``; the
precisions are timed in alternation (:func:`harness.interleave`, ``--warmup`` untimed calls
each first, ``torch.cuda.synchronize()`` closing every timed call):

* ``fp32``: as the library runs by default (torch's defaults, under which cuDNN may use
  TF32 for convolutions: the JSON records ``allow_tf32``);
* ``fp16``: the library's own option, ``create_model(..., autocast=True)`` (fp16 autocast
  on CUDA, as the EfficientAT reference ran), same weights;
* ``bf16``: ``torch.autocast(device, dtype=torch.bfloat16)`` around the call (the library
  has no bf16 option).

Drift: ``max |e - e_ref| / max |e_ref|`` over the batch's embeddings and the smallest cosine
similarity of a clip's embedding with its reference, where ``e_ref`` is the same batch in
strict float32 (TF32 off). The copy of the audio to the GPU is not timed. The library runs
scene clips of 10 s four per forward pass (tuned on 2 CPU cores), so a batch of 32 is eight
passes: the figures are the library's as it ships.

    python benchmarks/bench_gpu.py --json benchmarks/results/gpu.json
    python benchmarks/bench_gpu.py --smoke --json /tmp/gpu.json   # on the CPU: does it run?

Without CUDA the script says so and exits with status 1; ``--smoke`` runs the same code on
the CPU with tiny inputs, fp32 and bf16 only (the library's fp16 option is CUDA-only).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

import harness
import torch
from bench_dymn import calibrate_batchnorm

from hear_mn import create_model

MODELS = (
    "mn04_all_b_mel_avgs",
    "mn10_all_b_mel_avgs",
    "mn40_all_b_mel_avgs",
    "dymn10_all_b_mel_avgs",
)
PRECISIONS = ("fp32", "fp16", "bf16")
NO_CUDA = (
    "bench_gpu.py: no CUDA device (torch.cuda.is_available() is False); run it on a machine "
    "with an NVIDIA GPU and a CUDA build of torch, or with --smoke to check it on the CPU"
)


@contextmanager
def strict_float32() -> Iterator[None]:
    """TF32 off for convolutions and matrix products inside the block (the drift reference)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (nothing to wait for on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def drift(embeddings: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """Max difference relative to the reference's largest magnitude; smallest cosine per clip."""
    embeddings, reference = embeddings.double(), reference.double()
    cosine = torch.nn.functional.cosine_similarity(embeddings, reference, dim=1)
    return {
        "max_relative_error": float((embeddings - reference).abs().max() / reference.abs().max()),
        "min_cosine": float(cosine.min()),
    }


def precision_calls(
    name: str, device: torch.device, clips: torch.Tensor, precisions: tuple[str, ...]
) -> dict[str, Callable[[], torch.Tensor]]:
    """One call per precision, each the scene embeddings of ``clips`` with the same weights."""
    model = create_model(name, pretrained=False, device=device)
    calibrate_batchnorm(model, clips[:4])
    calls: dict[str, Callable[[], torch.Tensor]] = {}
    for precision in precisions:
        if precision == "fp16":
            half = create_model(name, pretrained=False, device=device, autocast=True)
            half.load_state_dict(model.state_dict())
            calls[precision] = lambda half=half: half.scene_embeddings(clips)
        else:
            dtype = torch.bfloat16 if precision == "bf16" else None

            def call(dtype: torch.dtype | None = dtype) -> torch.Tensor:
                numeric = nullcontext() if dtype is None else torch.autocast(device.type, dtype)
                with numeric:
                    return model.scene_embeddings(clips)

            calls[precision] = call
    return calls


def bench_model(
    name: str, device: torch.device, args: argparse.Namespace, precisions: tuple[str, ...]
) -> list[dict]:
    """Rows (one per precision) of model ``name``: clips/s and drift from strict float32."""
    generator = torch.Generator().manual_seed(0)
    clips = (0.1 * torch.randn(args.batch, round(args.seconds * 32000), generator=generator)).to(
        device
    )
    calls = precision_calls(name, device, clips, precisions)
    with strict_float32():
        reference = calls["fp32"]()
    outputs = {precision: call() for precision, call in calls.items()}

    def timed(call: Callable[[], torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            call()
            synchronize(device)

        return run

    synchronize(device)
    timings = harness.interleave(
        {precision: timed(call) for precision, call in calls.items()},
        args.repeats,
        warmup=args.warmup,
    )
    return [
        {
            "model": name,
            "precision": precision,
            "batch": args.batch,
            "clip_seconds": args.seconds,
            "seconds": timings[precision].median,
            "clips_per_s": args.batch / timings[precision].median,
            "timing": timings[precision].as_dict(),
            **drift(outputs[precision], reference),
        }
        for precision in precisions
    ]


def table(rows: list[dict], device_name: str) -> str:
    """The Markdown table of every row."""
    headers = ["model", "precision", "batch", "clips/s", "max rel. error vs fp32", "min cosine"]
    cells = [
        [
            row["model"],
            row["precision"],
            row["batch"],
            f"{row['clips_per_s']:.1f}",
            f"{row['max_relative_error']:.1e}",
            f"{row['min_cosine']:.6f}",
        ]
        for row in rows
    ]
    return f"Device: {device_name}.\n\n{harness.markdown_table(headers, cells)}"


def main() -> None:
    parser = harness.parser(__doc__, repeats=10)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated names")
    parser.add_argument("--batch", type=int, default=32, help="clips per call")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per clip")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls of each first")
    args = harness.parse_args(parser)
    if args.smoke:
        device, precisions = torch.device("cpu"), ("fp32", "bf16")
        args.models, args.batch, args.seconds, args.warmup = MODELS[0], 2, 1.0, 1
        device_name = "CPU (smoke run: measures nothing)"
    elif not torch.cuda.is_available():
        sys.exit(NO_CUDA)
    else:
        device, precisions = torch.device("cuda"), PRECISIONS
        device_name = torch.cuda.get_device_name(device)
    torch.set_num_threads(args.threads)
    rows = [
        row
        for name in args.models.split(",")
        for row in bench_model(name, device, args, precisions)
    ]
    payload = {
        "rows": rows,
        "environment": {
            "device": device_name,
            "cuda": torch.version.cuda,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        },
    }
    harness.report(args, payload, table(rows, device_name))


if __name__ == "__main__":
    main()
