"""How close each family runs to the machine's limit: achieved GFLOP/s of a timestamp call and
a scene call as a fraction of the float32 GFLOP/s the same machine reaches in a dense matrix
product, measured in the same run.

Per model (MobileNets mn04/mn10/mn40, DyMN dymn04/dymn10/dymn20, Audio-MLP kwmlp/audiomae)
and thread count, timed in alternation (:func:`harness.interleave`, medians):

* ``timestamps``: ``timestamp_embeddings`` of one clip of 20 s (``--seconds``);
* ``scene``: ``scene_embeddings`` of one 10 s clip;
* ``matmul``: ``torch.mm`` of two float32 ``--size`` x ``--size`` matrices (2048), timed
  between the model calls so that load from other processes falls on both alike.

The machine's peak at a thread count is ``2 x size^3`` FLOP over the fastest matmul of that
count's whole pass (best of every model's samples); achieved GFLOP/s is ``2 x MACs`` over a
call's median seconds, and the fraction is achieved / peak.

MACs come from hear-mn's counter (``hear_mn.complexity``, which ``hear-mn list`` shows); the
frontend's FFT, bias, normalisation and activations are not counted, as usual:

* scene of one 10 s clip: ``known_complexity(config)``, the catalog's MACs per 10 s
  (``hear_mn/complexity_table.py``), which is exactly one scene pass over a 10 s clip;
* timestamps, where the model frames its own windows (MobileNets, DyMN: each window goes
  through frontend and network on its own): windows x the MACs of one window, counted by
  ``model_complexity(config, window / sample_rate)`` (one pass over a clip one window
  long; the catalog states 10 s clips only, and a window's share is not proportional to its
  length because of padding and strides). 20 s gives 401 windows of 160 ms every 50 ms.
  Hooking the layers during a real 20 s timestamp call of mn04 counted the same 893,389,504;
* timestamps of Audio-MLP, whose timestamp and scene calls run the same pass over 1 s
  chunks: ``model_complexity(config, seconds)`` (20 s: 21 chunks of the 11 that the
  catalog's 10 s figure counts).

Weights are random (``create_model(name, pretrained=False)``); for the MobileNets and DyMN
the BatchNorm statistics are measured on the benchmark's noise
(:func:`bench_dymn.calibrate_batchnorm`): with the defaults their activations vanish towards
denormal floats, which are slow and would misstate the speed. Shared machines are noisy:
the load average is recorded; compare fractions measured in the same run.

    python benchmarks/bench_fraction_of_peak.py --threads 2,1   # also benchmarks/results/fraction_of_peak.{json,md}
    python benchmarks/bench_fraction_of_peak.py --smoke --json /tmp/peak.json   # does it run?
"""

from __future__ import annotations

import os
from collections.abc import Callable

import harness
import torch
from bench_dymn import calibrate_batchnorm

from hear_mn import create_model
from hear_mn.complexity import known_complexity, model_complexity
from hear_mn.registry import get_config

MODELS = (
    "mn04_all_b_mel_avgs",
    "mn10_all_b_mel_avgs",
    "mn40_all_b_mel_avgs",
    "dymn04_all_b_mel_avgs",
    "dymn10_all_b_mel_avgs",
    "dymn20_all_b_mel_avgs",
    "kwmlp",
    "audiomae",
)
SCENE_SECONDS = 10
RESULTS_TABLE = harness.RESULTS / "fraction_of_peak.md"


def _model(name: str, calibration: torch.Tensor) -> torch.nn.Module:
    """``name`` with random weights; EfficientAT BatchNorm statistics measured on ``calibration``."""
    model = create_model(name, pretrained=False)
    if hasattr(model, "backbone") and hasattr(model, "frontend"):
        calibrate_batchnorm(model, calibration)
    return model.eval()


def timestamp_macs(name: str, model: torch.nn.Module, n_samples: int) -> int:
    """MACs of the timestamp call on ``n_samples`` (see the module docstring for how)."""
    config = get_config(name)
    try:
        windows = model.timestamp_windows()
    except ValueError:  # the family frames its timestamps itself (one pass over the clip)
        return model_complexity(config, n_samples / model.sample_rate)[1]
    per_window = model_complexity(config, windows.size / model.sample_rate)[1]
    return windows.count(n_samples) * per_window


def time_model(
    model: torch.nn.Module,
    audio: torch.Tensor,
    clip: torch.Tensor,
    matmul: Callable[[], object],
    repeats: int,
) -> dict[str, harness.Timing]:
    """Timings of ``model``'s timestamp and scene calls and of ``matmul``, in alternation."""
    return harness.interleave(
        {
            "timestamps": lambda: model.timestamp_embeddings(audio),
            "scene": lambda: model.scene_embeddings(clip),
            "matmul": matmul,
        },
        repeats,
    )


def bench_threads(
    names: list[str], seconds: float, size: int, repeats: int, threads: int
) -> tuple[list[dict], float]:
    """Rows of every model at ``threads`` and the machine's peak GFLOP/s measured among them."""
    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    left, right = (torch.randn(size, size, generator=generator) for _ in range(2))
    rows, matmul_seconds = [], []
    for name in names:
        rate = get_config(name).sample_rate
        audio = 0.1 * torch.randn(1, round(seconds * rate), generator=generator)
        clip = 0.1 * torch.randn(1, round(SCENE_SECONDS * rate), generator=generator)
        model = _model(name, clip)
        timings = time_model(model, audio, clip, lambda: torch.mm(left, right), repeats)
        matmul_seconds += timings["matmul"].samples
        macs = {
            "timestamps": timestamp_macs(name, model, audio.shape[1]),
            "scene": known_complexity(get_config(name))[1],
        }
        for job, work in macs.items():
            rows.append(
                {
                    "model": name,
                    "threads": threads,
                    "job": f"timestamps, {seconds:g} s" if job == "timestamps" else "scene, 10 s",
                    "seconds": timings[job].median,
                    "timing": timings[job].as_dict(),
                    "gmac": work / 1e9,
                    "achieved_gflops": 2 * work / timings[job].median / 1e9,
                    "matmul_median_s": timings["matmul"].median,
                }
            )
    peak = 2 * size**3 / min(matmul_seconds) / 1e9
    for row in rows:
        row["peak_gflops"] = peak
        row["fraction_of_peak"] = row["achieved_gflops"] / peak
    return rows, peak


def table(rows: list[dict], peaks: dict[int, float], size: int) -> str:
    """The Markdown table of every row, with each thread count's peak above it."""
    peak_line = (
        f"Peak: float32 `torch.mm` of {size} x {size}, best of the run: "
        + ", ".join(f"{peak:.1f} GFLOP/s at {threads} thread(s)" for threads, peak in peaks.items())
        + "."
    )
    headers = ["model", "threads", "job", "seconds", "GMAC", "achieved GFLOP/s", "fraction of peak"]
    cells = [
        [
            row["model"],
            row["threads"],
            row["job"],
            f"{row['seconds']:.4f}",
            f"{row['gmac']:.3f}",
            f"{row['achieved_gflops']:.1f}",
            f"{row['fraction_of_peak']:.1%}",
        ]
        for row in rows
    ]
    return f"{peak_line}\n\n{harness.markdown_table(headers, cells)}"


def main() -> None:
    parser = harness.parser(__doc__, repeats=5, threads="2", several_threads=True)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated names")
    parser.add_argument("--seconds", type=float, default=20.0, help="audio for timestamps")
    parser.add_argument("--size", type=int, default=2048, help="matmul matrices are size x size")
    args = harness.parse_args(parser, default_json=harness.RESULTS / "fraction_of_peak.json")
    names = args.models.split(",")
    if args.smoke:
        names, args.seconds, args.size = ["mn04_all_b_mel_avgs", "kwmlp"], 1.0, 256
        args.threads = args.threads[:1]
    load_at_start = [round(value, 2) for value in os.getloadavg()]
    rows, peaks = [], {}
    for threads in args.threads:
        measured, peaks[threads] = bench_threads(
            names, args.seconds, args.size, args.repeats, threads
        )
        rows += measured
    text = table(rows, peaks, args.size)
    payload = {
        "rows": rows,
        "peak_gflops": peaks,
        "matmul_size": args.size,
        "environment": {
            "load_average_at_start": load_at_start,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        },
    }
    record = harness.report(args, payload, text)
    if not args.quick:
        environment = record["environment"]
        temporary = RESULTS_TABLE.with_name(f".{RESULTS_TABLE.name}.{os.getpid()}.tmp")
        temporary.write_text(
            f"`{record['command']}`; {environment['cpu']}, torch {torch.__version__}, "
            f"{args.repeats} repeats, medians; OMP_WAIT_POLICY "
            f"{environment['omp_wait_policy'] or 'unset'}; load average (1, 5, 15 min) "
            f"{load_at_start} at the start, {environment['load_average']} at the end.\n\n"
            f"{text}\n"
        )
        os.replace(temporary, RESULTS_TABLE)
        print(f"wrote {RESULTS_TABLE}", flush=True)


if __name__ == "__main__":
    main()
