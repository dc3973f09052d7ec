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
through the patch of its one Lightning bug on event tasks (tests/heareval_reference.py).

End to end, the same tasks through ``hear-mn evaluate`` (a subprocess: start-up, embedding,
downstream) and through heareval's two runners (subprocesses) are timed once each.

    python benchmarks/bench_evaluation.py --json benchmarks/results/evaluation.json
    python benchmarks/bench_evaluation.py --device cuda --no-end-to-end   # on a GPU
    python benchmarks/bench_evaluation.py --model hear_mn.mn04_all_b_mel_avgs --weights mn04.pt
"""

from __future__ import annotations

import argparse
import json
import platform
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

import hear_tasks  # noqa: E402
import heareval_reference  # noqa: E402

from hear_mn.evaluation.downstream import score_task  # noqa: E402
from hear_mn.evaluation.tasks import read_task  # noqa: E402


def render(root: Path, sample_rate: int) -> list[str]:
    """The benchmark's tasks (heareval's default grid) at ``sample_rate``."""
    rates = (sample_rate,)
    hear_tasks.make_scene_task(
        root, rates, {"train": 14, "valid": 7, "test": 7}, grid=None, name="bench_scene"
    )
    hear_tasks.make_event_task(
        root, rates, {"train": 12, "valid": 6, "test": 6}, grid=None, name="bench_events"
    )
    hear_tasks.make_kfold_task(root, rates, per_fold=4, grid=None, name="bench_kfold")
    hear_tasks.make_notes_task(root, rates, grid=None, name="bench_notes")
    return ["bench_scene", "bench_events", "bench_kfold", "bench_notes"]


def ours(task_dir: Path, seed: int, device: str) -> tuple[float, float]:
    """(seconds, primary test score) of our downstream stage."""
    if device != "cpu":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = score_task(task_dir, seed=seed, device=device)
    if device != "cpu":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    primary = result.task.scores[0]
    return seconds, statistics.fmean(fold.test[primary] for fold in result.folds)


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="hear_mn.kwmlp", help="a HEAR module (default hear_mn.kwmlp)"
    )
    parser.add_argument("--weights", type=Path, help="its weights file (default: shipped/released)")
    parser.add_argument(
        "--rounds", type=int, default=2, help="alternated rounds per task (default 2)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--device",
        default="cpu",
        help="cpu (default) or cuda: both downstream stages on the GPU (heareval: --gpus [0])",
    )
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--no-end-to-end", action="store_true", help="skip the end-to-end timing")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
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
    names = render(tasks, rate)
    folder = heareval_reference.embed(args.model, tasks, work / "embeddings", env, args.weights)
    ours(folder / names[0], args.seed, args.device)  # warm-up: first calls into torch and numpy
    rows = []
    for name in names:
        task_dir = folder / name
        primary = read_task(task_dir).scores[0]
        heareval_times, our_times = [], []
        for _ in range(args.rounds):
            reference = heareval_reference.predict(
                task_dir, work / "predictions", env, seed=args.seed, gpu=args.device != "cpu"
            )
            heareval_times.append(reference.seconds)
            seconds, score = ours(task_dir, args.seed, args.device)
            our_times.append(seconds)
        row = {
            "task": name,
            "score": primary,
            "heareval_s": statistics.median(heareval_times),
            "hear_mn_s": statistics.median(our_times),
            "heareval_test": reference.test(primary),
            "hear_mn_test": score,
        }
        row["ratio"] = row["heareval_s"] / row["hear_mn_s"]
        rows.append(row)
        print(
            f"{name:14s} {primary:22s} heareval {row['heareval_s']:8.2f} s  hear-mn "
            f"{row['hear_mn_s']:6.3f} s  {row['ratio']:6.1f}x   test: heareval "
            f"{row['heareval_test']:.4f}, hear-mn {row['hear_mn_test']:.4f}",
            flush=True,
        )
    result = {
        "benchmark": "bench_evaluation",
        "model": args.model,
        "threads": args.threads,
        "device": args.device,
        "rounds": args.rounds,
        "tasks": rows,
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "cpus": torch.get_num_threads(),
        },
    }
    if not args.no_end_to_end:
        result["end_to_end"] = end_to_end(args, tasks, work, env)
        e2e = result["end_to_end"]
        print(
            f"end to end: hear-mn evaluate {e2e['hear_mn_evaluate_s']:.1f} s, heareval's runners "
            f"{e2e['heareval_runners_s']:.1f} s ({e2e['ratio']:.1f}x)"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
