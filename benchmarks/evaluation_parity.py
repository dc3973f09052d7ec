"""Our evaluator's test scores beside heareval's, over seeds, on the test suite's rendered tasks.

The comparison tests/integration/test_evaluation_heareval.py asserts (our mean over seeds 42-44 within
heareval's range widened by that range), printed as a table: for kwmlp (released weights) and
mn04_all_b_mel_avgs (a random checkpoint from ../shared), on the scene, event and 3-fold
tasks, heareval's embeddings runner and predictions runner (seeded through
tests/support/heareval_reference.py) against ``hear_mn.evaluate``.

    python benchmarks/evaluation_parity.py [--seeds 42 43 44]   # writes results/evaluation_parity.json
    python benchmarks/evaluation_parity.py --smoke --json /tmp/parity.json   # does it run?

``--quick`` compares kwmlp only, on the scene task; ``--smoke`` does that with one seed.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import harness  # noqa: E402
from support import hear_tasks, heareval_reference  # noqa: E402

import hear_mn  # noqa: E402
from hear_mn.evaluation.downstream import score_task  # noqa: E402

SHARED = ROOT.parent / "shared" / "fixtures"
MODELS = {
    "kwmlp": ("hear_mn.kwmlp", SHARED / "audiomlp" / "kwmlp.pth"),
    "mn04_all_b_mel_avgs": ("hear_mn.mn04_all_b_mel_avgs", SHARED / "reference" / "mn04_seed1.pt"),
}


def our_score(results: dict, folder: Path, task: str, seed: int, first_seed: int) -> float:
    primary = results[task]["scores"][0]
    if seed == first_seed:
        return results[task]["test"][primary]
    return statistics.fmean(
        fold.test[primary] for fold in score_task(folder / task, seed=seed).folds
    )


def main() -> None:
    parser = harness.parser(__doc__, repeats=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    args = harness.parse_args(parser, default_json=harness.RESULTS / "evaluation_parity.json")
    if heareval_reference.missing():
        sys.exit(heareval_reference.missing())
    if args.smoke:
        args.seeds = args.seeds[:1]
    work = Path(tempfile.mkdtemp(prefix="evaluation_parity_"))
    tasks = work / "tasks"
    if args.quick:
        hear_tasks.make_scene_task(tasks)
    else:
        hear_tasks.make_tasks(tasks, kfold=True)
    env = heareval_reference.tool_env(work)
    models = {"kwmlp": MODELS["kwmlp"]} if args.quick else MODELS
    rows = []
    lines = ["| model | task | score | heareval | hear-mn | within |", "|---|---|---|---|---|---|"]
    for key, (module, weights) in models.items():
        folder = heareval_reference.embed(module, tasks, work / "heareval", env, weights)
        results = hear_mn.evaluate(
            tasks, module, weights=weights, out=work / "ours", seed=args.seeds[0], progress=False
        )
        for task in sorted(results):
            primary = results[task]["scores"][0]
            theirs = [
                heareval_reference.predict(
                    folder / task, work / "predictions", env, seed=seed
                ).test(primary)
                for seed in args.seeds
            ]
            ours = [
                our_score(results, work / "ours" / module, task, s, args.seeds[0])
                for s in args.seeds
            ]
            spread = max(theirs) - min(theirs)
            within = min(theirs) - spread <= statistics.fmean(ours) <= max(theirs) + spread
            rows.append(
                {
                    "model": key,
                    "task": task,
                    "score": primary,
                    "heareval": theirs,
                    "hear_mn": ours,
                    "within": within,
                }
            )
            lines.append(
                f"| {key} | {task} | {primary} | {', '.join(f'{v:.3f}' for v in theirs)} | "
                f"{', '.join(f'{v:.3f}' for v in ours)} | {within} |"
            )
            print(lines[-1], flush=True)
    harness.report(args, {"seeds": args.seeds, "rows": rows}, "\n".join(lines))


if __name__ == "__main__":
    main()
