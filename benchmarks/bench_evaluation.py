"""Our downstream stage against heareval's, on the same embeddings, in the same run.

Renders four HEAR tasks without a task grid, so heareval's default grid applies (8 of its
16 points, up to 500 epochs, validation every 3, patience 20): a multiclass scene task
(42/21/21 clips of 1 s), a multilabel event task (12/6/6 clips of 2 s, 1-2 events each), a
3-fold multiclass task (48 clips of 1 s) and a dense multilabel event task (12/6/6 clips of
4 s, 20 notes of 12 pitches each). heareval's embeddings runner embeds them once with the
module; then, per task and round, heareval's predictions runner (its "DONE took N seconds":
task_predictions alone, start-up excluded) and our :func:`~hear_mn.evaluation.downstream.score_task`
(in-process, after a warm-up) run in alternation on those embeddings with the same seed. The
ratio is heareval's time over ours; both test scores are printed beside it. heareval runs
through the patch of its one Lightning bug on event tasks (tests/support/heareval_reference.py).

The floor: from the epochs our trainer ran (every grid point, every fold), the matrix
products they need (forward, backward, validation) at the machine's dense float32 rate and
the optimiser's memory traffic (Adam reads parameter, gradient and two moments and writes
three, per step) at its copy bandwidth, both measured in the same run. heareval's time over
the floor is the most any implementation of the protocol could gain over heareval on this
machine with the same grid and the same number of epochs.

End to end, the same tasks through ``hear-mn evaluate`` (a subprocess: start-up, embedding,
downstream) and through heareval's two runners (subprocesses) are timed once each.

    python benchmarks/bench_evaluation.py          # writes benchmarks/results/evaluation.json
    python benchmarks/bench_evaluation.py --device cuda --no-end-to-end   # on a GPU
    python benchmarks/bench_evaluation.py --model hear_mn.mn04_all_b_mel_avgs --weights mn04.pt
    python benchmarks/bench_evaluation.py --smoke --json /tmp/evaluation.json   # does it run?

``--repeats`` is the number of alternated rounds per task; ``--quick`` keeps the scene and
the 3-fold task; ``--smoke`` renders one small scene task with a one-point grid.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import harness  # noqa: E402
from support import hear_tasks, heareval_reference  # noqa: E402

from hear_mn.evaluation.downstream import score_task  # noqa: E402
from hear_mn.evaluation.tasks import read_task  # noqa: E402


def render(root: Path, sample_rate: int, quick: bool = False, smoke: bool = False) -> list[str]:
    """The benchmark's tasks (heareval's default grid) at ``sample_rate``: all four, the
    scene and k-fold tasks (``quick``), or one small scene task with a one-point grid."""
    rates = (sample_rate,)
    if smoke:
        hear_tasks.make_scene_task(
            root, rates, {"train": 4, "valid": 2, "test": 2}, name="bench_scene"
        )
        return ["bench_scene"]
    if quick:
        hear_tasks.make_scene_task(
            root, rates, {"train": 14, "valid": 7, "test": 7}, grid=None, name="bench_scene"
        )
        hear_tasks.make_kfold_task(root, rates, per_fold=4, grid=None, name="bench_kfold")
        return ["bench_scene", "bench_kfold"]
    hear_tasks.make_scene_task(
        root, rates, {"train": 14, "valid": 7, "test": 7}, grid=None, name="bench_scene"
    )
    hear_tasks.make_event_task(
        root, rates, {"train": 12, "valid": 6, "test": 6}, grid=None, name="bench_events"
    )
    hear_tasks.make_kfold_task(root, rates, per_fold=4, grid=None, name="bench_kfold")
    hear_tasks.make_notes_task(root, rates, grid=None, name="bench_notes")
    return ["bench_scene", "bench_events", "bench_kfold", "bench_notes"]


def machine_peaks(repeats: int = 10) -> tuple[float, float]:
    """(GFLOP/s of a dense 1024 x 1024 float32 matrix product, GB/s of a 64 MiB copy), the
    best of ``repeats``, at torch's current thread count."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    src, dst = torch.randn(16 << 20), torch.empty(16 << 20)
    best_mm = best_copy = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best_mm = min(best_mm, time.perf_counter() - start)
        start = time.perf_counter()
        dst.copy_(src)
        best_copy = min(best_copy, time.perf_counter() - start)
    return 2 * 1024**3 / best_mm / 1e9, 2 * src.numel() * 4 / best_copy / 1e9


def floor_seconds(result, task_dir: Path, gflops: float, bandwidth: float) -> float:
    """Seconds the machine needs at least for the work our trainer did on ``result``: the
    matrix products of its training and validation and Adam's memory traffic."""
    from hear_mn.evaluation.layout import read_split

    event = result.task.embedding_type == "event"
    rows = {name: len(read_split(task_dir, name, event).embeddings) for name in result.task.splits}
    width = read_split(task_dir, next(iter(rows)), event).embeddings.shape[1]
    runs = [(model, result.folds[0].split) for model in result.grid]
    runs += [(fold.model, fold.split) for fold in result.folds[1:]]
    flops = traffic = 0.0
    for model, split in runs:
        conf = model.conf
        dims = [width] + [conf.hidden_dim] * conf.hidden_layers + [len(result.task.labels)]
        products = sum(a * b for a, b in zip(dims, dims[1:]))
        parameters = products + sum(dims[1:]) + 2 * conf.hidden_dim * conf.hidden_layers
        train = sum(rows[name] for name in split["train"])
        valid = sum(rows[name] for name in split["valid"])
        epochs = model.epochs_trained
        # forward, weight gradients, input gradients (none for the embeddings)
        flops += epochs * 2 * train * (3 * products - dims[0] * dims[1])
        flops += (epochs // conf.check_val_every_n_epoch) * 2 * valid * products
        traffic += epochs * math.ceil(train / conf.batch_size) * parameters * 4 * 7
    return flops / (gflops * 1e9) + traffic / (bandwidth * 1e9)


def ours(task_dir: Path, seed: int, device: str) -> tuple[float, float, object]:
    """(seconds, primary test score, result) of our downstream stage."""
    if device != "cpu":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = score_task(task_dir, seed=seed, device=device)
    if device != "cpu":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    primary = result.task.scores[0]
    return seconds, statistics.fmean(fold.test[primary] for fold in result.folds), result


def end_to_end(args: argparse.Namespace, tasks: Path, work: Path, env: dict) -> dict:
    """Wall seconds of ``hear-mn evaluate`` and of heareval's two runners, start-ups included."""
    weights = ["--weights", str(args.weights)] if args.weights else []
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "hear_mn",
            "evaluate",
            str(tasks),
            "--model",
            args.model,
            *weights,
            "--out",
            str(work / "e2e_ours"),
            "--device",
            "cpu",
            "-q",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    ours_seconds = time.perf_counter() - start
    start = time.perf_counter()
    folder = heareval_reference.embed(args.model, tasks, work / "e2e_heareval", env, args.weights)
    for task in sorted(p for p in folder.iterdir() if p.is_dir()):
        heareval_reference.predict(task, work / "e2e_pred", env, seed=args.seed)
    heareval_seconds = time.perf_counter() - start
    return {
        "hear_mn_evaluate_s": ours_seconds,
        "heareval_runners_s": heareval_seconds,
        "ratio": heareval_seconds / ours_seconds,
    }


def main() -> None:
    parser = harness.parser(__doc__, repeats=2, threads=str(torch.get_num_threads()))
    parser.add_argument(
        "--model", default="hear_mn.kwmlp", help="a HEAR module (default hear_mn.kwmlp)"
    )
    parser.add_argument("--weights", type=Path, help="its weights file (default: shipped/released)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--device",
        default="cpu",
        help="cpu (default) or cuda: both downstream stages on the GPU (heareval: --gpus [0])",
    )
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--no-end-to-end", action="store_true", help="skip the end-to-end timing")
    parser.add_argument(
        "--tasks", nargs="+", help="time only these of the rendered tasks (e.g. bench_events)"
    )
    args = harness.parse_args(parser, default_json=harness.RESULTS / "evaluation.json")
    if args.quick:
        args.no_end_to_end = True
    if heareval_reference.missing():
        sys.exit(heareval_reference.missing())
    torch.set_num_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_evaluation_"))
    env = heareval_reference.tool_env(work)
    env["OMP_NUM_THREADS"] = str(args.threads)
    tasks = work / "tasks"
    shutil.rmtree(tasks, ignore_errors=True)
    from hear_mn.evaluation.embedders import make_embedder

    rate = make_embedder(args.model, weights=args.weights, device="cpu").sample_rate
    rendered = render(tasks, rate, args.quick, args.smoke)
    unknown = sorted(set(args.tasks or ()) - set(rendered))
    if unknown:
        sys.exit(f"unknown task(s) {', '.join(unknown)}; rendered: {', '.join(rendered)}")
    names = [name for name in rendered if not args.tasks or name in args.tasks]
    folder = heareval_reference.embed(args.model, tasks, work / "embeddings", env, args.weights)
    ours(folder / rendered[0], args.seed, args.device)  # warm-up: first calls into torch and numpy
    gflops, bandwidth = machine_peaks()
    print(f"machine: {gflops:.0f} GFLOP/s (float32 matrix product), {bandwidth:.1f} GB/s (copy)")
    rows = []
    for name in names:
        task_dir = folder / name
        primary = read_task(task_dir).scores[0]
        heareval_times, our_times = [], []
        for _ in range(args.repeats):
            reference = heareval_reference.predict(
                task_dir, work / "predictions", env, seed=args.seed, gpu=args.device != "cpu"
            )
            heareval_times.append(reference.seconds)
            seconds, score, result = ours(task_dir, args.seed, args.device)
            our_times.append(seconds)
        floor = floor_seconds(result, task_dir, gflops, bandwidth)
        row = {
            "task": name,
            "score": primary,
            "heareval_s": statistics.median(heareval_times),
            "hear_mn_s": statistics.median(our_times),
            "heareval_test": reference.test(primary),
            "hear_mn_test": score,
            "floor_s": floor,
        }
        row["ratio"] = row["heareval_s"] / row["hear_mn_s"]
        row["heareval_over_floor"] = row["heareval_s"] / floor
        row["hear_mn_over_floor"] = row["hear_mn_s"] / floor
        rows.append(row)
        print(_line(row), flush=True)
    payload = {
        "benchmark": "bench_evaluation",
        "model": args.model,
        "device": args.device,
        "tasks": rows,
        "environment": {"gflops_float32_matmul": gflops, "copy_gb_per_s": bandwidth},
    }
    lines = [_line(row) for row in rows]
    if not args.no_end_to_end:
        payload["end_to_end"] = e2e = end_to_end(args, tasks, work, env)
        lines.append(
            f"end to end: hear-mn evaluate {e2e['hear_mn_evaluate_s']:.1f} s, heareval's runners "
            f"{e2e['heareval_runners_s']:.1f} s ({e2e['ratio']:.1f}x)"
        )
    harness.report(args, payload, "\n".join(lines))


def _line(row: dict) -> str:
    """One task's times, ratio, floor and test scores."""
    return (
        f"{row['task']:14s} {row['score']:22s} heareval {row['heareval_s']:8.2f} s  hear-mn "
        f"{row['hear_mn_s']:6.3f} s  {row['ratio']:6.1f}x  floor {row['floor_s']:6.2f} s "
        f"(heareval {row['heareval_over_floor']:.1f}x it, hear-mn "
        f"{row['hear_mn_over_floor']:.1f}x)   test: heareval {row['heareval_test']:.4f}, "
        f"hear-mn {row['hear_mn_test']:.4f}"
    )


if __name__ == "__main__":
    main()
