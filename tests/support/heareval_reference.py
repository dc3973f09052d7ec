"""heareval 2021.1.3 as the reference our evaluator is compared with (tests and benchmarks).

Its runners are run as subprocesses, as a user runs them. Its predictions runner is started
through ``PREDICTIONS_SHIM``, which patches the one upstream bug that stops it on event
tasks with pytorch-lightning >= 1.6 (see ``hear_tasks.LIGHTNING_EPOCH_SHIM``) and lets the
seed vary (heareval always seeds 42; its own spread over seeds is the yardstick of parity).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from support import ROOT, hear_tasks

TIMEOUT = 1800  # seconds for one runner call

PREDICTIONS_SHIM = hear_tasks.LIGHTNING_EPOCH_SHIM.replace(
    "from heareval.predictions.runner import runner\n",
    "import os\n"
    "import pytorch_lightning as pl\n"
    "import heareval.predictions.task_predictions as task_predictions\n"
    "seed = int(os.environ.get('HEAREVAL_SEED', '42'))\n"
    "task_predictions.seed_everything = lambda _seed, workers=False: pl.seed_everything(seed, workers)\n"
    "from heareval.predictions.runner import runner\n",
)
TOOK = re.compile(r"DONE took ([0-9.]+) seconds")


def missing() -> str:
    """Why heareval cannot run here ('' when it can)."""
    if importlib.util.find_spec("heareval") is None:
        return (
            "heareval is not installed; install the HEAR tools with scripts/install_hear_tools.sh"
        )
    return ""


def tool_env(work: Path, *python_path: Path) -> dict[str, str]:
    """Environment for a runner: CPU only, offline, this checkout and ``python_path`` importable."""
    env = dict(os.environ)
    env["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"  # heareval reloads its Lightning checkpoints
    env["CUDA_VISIBLE_DEVICES"] = ""
    env["HEAR_MN_OFFLINE"] = "1"
    env["HEAR_MN_QUIET"] = "1"
    env["HEAR_MN_HOME"] = str(work / "hear_mn_home")
    env.pop("HEAR_MN_WEIGHTS_DIR", None)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    paths = [str(p) for p in (ROOT, *python_path)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + "\n" + result.stderr).splitlines()[-30:])
        raise RuntimeError(f"{' '.join(args[:4])} ... exited with {result.returncode}:\n{tail}")
    return result


def embed(
    module: str,
    tasks_dir: Path,
    embeddings_dir: Path,
    env: dict[str, str],
    weights: Path | None = None,
    task: str | None = None,
) -> Path:
    """heareval's embeddings runner for ``module``; returns the module's output folder."""
    args = [sys.executable, "-m", "heareval.embeddings.runner", module]
    args += ["--model", str(weights)] if weights is not None else []
    args += ["--task", task] if task else []
    args += ["--tasks-dir", str(tasks_dir), "--embeddings-dir", str(embeddings_dir)]
    _run(args, embeddings_dir.parent, env)
    return embeddings_dir / module


@dataclass(frozen=True)
class Prediction:
    """heareval's test.predicted-scores.json and the time it reports for task_predictions
    (its "DONE took N seconds", start-up excluded)."""

    scores: dict
    seconds: float

    def test(self, score: str) -> float:
        """The task's test score: for k folds the mean over folds."""
        if "aggregated_scores" in self.scores:
            return float(self.scores["aggregated_scores"][f"test_{score}_mean"])
        return float(self.scores["test"][f"test_{score}"])


def predict(
    task_dir: Path,
    work: Path,
    env: dict[str, str],
    seed: int = 42,
    grid: str = "default",
    points: int = 8,
    gpu: bool = False,
) -> Prediction:
    """heareval's predictions runner on a fresh copy of ``task_dir`` (its outputs would make
    later runs skip the task); ``gpu``: on the first CUDA device (``--gpus [0]``)."""
    copy = work / f"{task_dir.parent.name}@{task_dir.name}@{seed}@{grid}@{points}"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(
        task_dir,
        copy,
        ignore=shutil.ignore_patterns("*.predictions.*", "*predicted*", "hear-mn.scores.json"),
    )
    args = [sys.executable, "-c", PREDICTIONS_SHIM, str(copy), "--grid", grid]
    args += ["--grid-points", str(points)] + (["--gpus", "[0]"] if gpu else [])
    env = {**env, "HEAREVAL_SEED": str(seed)}
    if gpu:
        env.pop("CUDA_VISIBLE_DEVICES", None)
    result = _run(args, work, env)
    took = TOOK.findall(result.stdout + result.stderr)
    scores = json.loads((copy / "test.predicted-scores.json").read_text())
    return Prediction(scores, float(took[-1]) if took else float("nan"))
