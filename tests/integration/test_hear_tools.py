"""Our HEAR modules under the official HEAR 2021 tools: hear-validator and heareval's runners.

The tools run as subprocesses, exactly as a user runs them. They are installed by
``scripts/install_hear_tools.sh`` (CI: ``.ci/run``); without them every test here skips with
a reason. The tasks heareval reads are synthesized in a temporary directory by
``hear_tasks.py`` (tones and noise at 16, 32 and 48 kHz), so no data set is needed.
Weights come from ``../shared`` (random EfficientAT checkpoints, the real Audio-MLP ones);
tests that need them skip when it is absent, and fail in CI (conftest.require_shared).
Tests marked ``upstream_bug`` assert that an upstream tool is still broken; they are
deselected by default (tests/conftest.py) and run with ``python -m pytest -m upstream_bug``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import pickle
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from support import hear_tasks, heareval_reference
from support.reference import AUDIOMLP as MLP_WEIGHTS
from support.reference import REFERENCE as MN_WEIGHTS
from support.reference import SEED_SYSTEM as SEED_WEIGHTS
from support.reference import SHARED, relative_error, require_shared

TIMEOUT = 900  # seconds for one tool run; each takes 10-30 s on 2 CPU cores


def _hear_validator() -> str | None:
    """The hear-validator script of this interpreter's environment (or on PATH)."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which("hear-validator", path=search)


def _missing_tools() -> str:
    missing = []
    if _hear_validator() is None:
        missing.append("hear-validator")
    if importlib.util.find_spec("heareval") is None:
        missing.append("heareval")
    if importlib.util.find_spec("soundfile") is None:
        missing.append("soundfile")
    if not missing:
        return ""
    return (
        f"the official HEAR tools are not installed ({', '.join(missing)} missing); "
        "install them with scripts/install_hear_tools.sh"
    )


MISSING_TOOLS = _missing_tools()
pytestmark = pytest.mark.skipif(bool(MISSING_TOOLS), reason=MISSING_TOOLS or "tools present")


def _weights(path: Path) -> Path:
    return require_shared(path)  # skips without ../shared, fails in CI


def _tool_env(tmp: Path, *python_path: Path) -> dict[str, str]:
    """Environment for a tool run: CPU only, offline, our checkout and ``python_path`` importable."""
    return heareval_reference.tool_env(tmp, *python_path)


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def _tail(result: subprocess.CompletedProcess, lines: int = 40) -> str:
    text = (result.stdout or "") + "\n" + (result.stderr or "")
    return "\n".join(text.splitlines()[-lines:])


def _assert_ok(result: subprocess.CompletedProcess, what: str) -> None:
    assert result.returncode == 0, f"{what} exited with {result.returncode}:\n{_tail(result)}"


# ---------------------------------------------------------------------------------------
# hear-validator
# ---------------------------------------------------------------------------------------

VALIDATED = {
    "mn04_e1_l": (MN_WEIGHTS / "mn04_seed1.pt", 911, 911),
    "mn10_e1_l": (MN_WEIGHTS / "mn10_seed1.pt", 1487, 1487),
    "kwmlp": (MLP_WEIGHTS / "kwmlp.pth", 1024, 64),
    "audiomae": (MLP_WEIGHTS / "audiomae.pth", 1584, 8),
    # Modules of the original EfficientAT_HEAR package (hear_mn.catalog.EFFICIENTAT_HEAR).
    "mn10_all_b_mel_avgs": (MN_WEIGHTS / "mn10_seed1.pt", 600, 600),
    "mn10_all_b_mel_avgs_hop5": (MN_WEIGHTS / "mn10_seed1.pt", 600, 600),
    "mn10_all_b_mel_avgs_fc": (SEED_WEIGHTS / "mn10_fc_seed1.pt", 600, 600),
    "mn10_b4_5_6_7": (MN_WEIGHTS / "mn10_seed1.pt", 200, 200),
    "mn01_all_b_avg_time_pool": (SEED_WEIGHTS / "mn01_seed1.pt", 384, 384),
    # EfficientAT's dynamic MobileNets (hear_mn.models.efficientat.dymn_family).
    "dymn04_all_b_mel_avgs": (SHARED / "fixtures" / "dymn" / "dymn04_seed1.pt", 320, 320),
}


def _validate(module: str, weights: Path, tmp: Path, *python_path: Path) -> str:
    result = _run(
        [_hear_validator(), module, "-m", str(weights), "-d", "cpu"],
        cwd=tmp,
        env=_tool_env(tmp, *python_path),
    )
    _assert_ok(result, f"hear-validator {module}")
    assert "Looks good!" in result.stdout, _tail(result)
    return result.stdout


@pytest.mark.parametrize("name", sorted(VALIDATED))
def test_hear_validator_passes(name: str, tmp_path: Path) -> None:
    weights, scene_size, timestamp_size = VALIDATED[name]
    out = _validate(f"hear_mn.{name}", _weights(weights), tmp_path)
    assert f"scene_embedding_size: {scene_size}" in out
    assert f"timestamp_embedding_size: {timestamp_size}" in out


# hear-validator has no option for load_model's keyword arguments (heareval's runner has
# --model-options), so other options are validated through a two-line wrapper module.
WRAPPER = '''\
"""mn04 with {options}, as heareval's --model-options loads it."""
from hear_mn.mn04_e1_l import get_scene_embeddings, get_timestamp_embeddings  # noqa: F401
from hear_mn.mn04_e1_l import load_model as _load_model


def load_model(model_file_path=""):
    return _load_model(model_file_path, **{options})
'''


@pytest.mark.parametrize(
    ("options", "size"),
    [
        ({"features": "e1_l_all_se"}, 1335),  # 384 (e1) + 527 (l) + 424 (all_se)
        ({"backend": "onnxruntime"}, 911),  # the network in ONNX Runtime
    ],
)
def test_hear_validator_passes_with_other_options(options: dict, size: int, tmp_path: Path) -> None:
    if options.get("backend") == "onnxruntime":
        pytest.importorskip("onnxruntime", reason="needs onnxruntime (pip install -e '.[test]')")
    weights = _weights(MN_WEIGHTS / "mn04_seed1.pt")
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "mn04_wrapper.py").write_text(WRAPPER.format(options=repr(options)))
    out = _validate("mn04_wrapper", weights, tmp_path, modules)
    assert f"scene_embedding_size: {size}" in out
    assert f"timestamp_embedding_size: {size}" in out


# ---------------------------------------------------------------------------------------
# heareval embeddings runner on the synthesized tasks
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """One embeddings-runner configuration: module, weights, --model-options, sizes.

    ``output`` is the directory heareval writes under --embeddings-dir: the module name,
    followed by the slugified options when there are any.
    """

    module: str
    weights: Path | None
    options: dict
    scene_size: int
    timestamp_size: int
    output: str


MN04 = MN_WEIGHTS / "mn04_seed1.pt"
CONFIGS = {
    "mn04": Config("hear_mn.mn04_e1_l", MN04, {}, 911, 911, "hear_mn.mn04_e1_l"),
    "mn04_all_se": Config(
        "hear_mn.mn04_e1_l",
        MN04,
        {"features": "e1_l_all_se"},
        1335,
        1335,
        "hear_mn.mn04_e1_l-features=e1-l-all-se",
    ),
    # The original EfficientAT_HEAR's keyword, as its users pass it: 40 (b5) + 128 (mel_avgs).
    "mn10_mode": Config(
        "hear_mn.mn10_all_b_mel_avgs",
        MN_WEIGHTS / "mn10_seed1.pt",
        {"mode": ["b5", "mel_avgs"]},
        168,
        168,
        "hear_mn.mn10_all_b_mel_avgs-mode=b5-mel-avgs",
    ),
    "kwmlp": Config("hear_mn.kwmlp", MLP_WEIGHTS / "kwmlp.pth", {}, 1024, 64, "hear_mn.kwmlp"),
    "random": Config(
        hear_tasks.RANDOM_MODULE_NAME, None, {}, 32, 32, hear_tasks.RANDOM_MODULE_NAME
    ),
}


class HearWorkdir:
    """tasks/ (both synthesized tasks), modules/ (the random module) and embeddings/.

    :meth:`embeddings` runs heareval's embeddings runner for a configuration on both tasks
    the first time it is asked for, and returns the configuration's output directory.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tasks = path / "tasks"
        self.modules = path / "modules"
        hear_tasks.make_tasks(self.tasks)
        self.modules.mkdir()
        (self.modules / f"{hear_tasks.RANDOM_MODULE_NAME}.py").write_text(
            hear_tasks.RANDOM_MODULE_SOURCE
        )
        self._done: dict[str, Path] = {}

    def env(self) -> dict[str, str]:
        return _tool_env(self.path, self.modules)

    def embeddings(self, key: str) -> Path:
        config = CONFIGS[key]
        if key not in self._done:
            args = [sys.executable, "-m", "heareval.embeddings.runner", config.module]
            if config.weights is not None:
                args += ["--model", str(_weights(config.weights))]
            if config.options:
                args += ["--model-options", json.dumps(config.options)]
            args += ["--tasks-dir", str(self.tasks), "--embeddings-dir", str(self.path / "emb")]
            result = _run(args, cwd=self.path, env=self.env())
            _assert_ok(result, f"heareval embeddings runner ({key})")
            self._done[key] = self.path / "emb" / config.output
            assert self._done[key].is_dir(), sorted(p.name for p in (self.path / "emb").iterdir())
        return self._done[key]


@pytest.fixture(scope="module")
def hear_workdir(tmp_path_factory) -> HearWorkdir:
    return HearWorkdir(tmp_path_factory.mktemp("hear"))


def _load_ours(config: Config):
    module = importlib.import_module(config.module)
    model = module.load_model(str(config.weights), **config.options)
    return module, model


def _split_audio(task_dir: Path, sample_rate: int, split: str, files: list[str]) -> torch.Tensor:
    """The split's clips as heareval reads them (soundfile, float32), as one batch."""
    import soundfile as sf

    clips = []
    for name in files:
        audio, rate = sf.read(str(task_dir / str(sample_rate) / split / name), dtype=np.float32)
        assert rate == sample_rate
        clips.append(audio)
    return torch.from_numpy(np.stack(clips))


def _memmap(task_out: Path, split: str) -> np.ndarray:
    """heareval's `<split>.embeddings.npy`: a raw float32 memmap, shape in the dimensions json."""
    dims = json.loads((task_out / f"{split}.embedding-dimensions.json").read_text())
    data = np.memmap(task_out / f"{split}.embeddings.npy", dtype=np.float32, mode="r")
    assert data.size == dims[0] * dims[1], "embeddings file size disagrees with its dimensions"
    return np.asarray(data).reshape(dims)


def _rows_match_files(matrix: np.ndarray, per_file: list[np.ndarray]) -> None:
    """The stacked matrix holds exactly the per-file embeddings (heareval shuffles files)."""
    stacked = np.concatenate([np.atleast_2d(e) for e in per_file])
    assert matrix.shape == stacked.shape
    assert sorted(map(bytes, matrix)) == sorted(map(bytes, stacked))


@pytest.mark.parametrize("key", ["mn04", "mn04_all_se", "mn10_mode", "kwmlp"])
def test_embeddings_runner_scene_task(key: str, hear_workdir: HearWorkdir) -> None:
    config = CONFIGS[key]
    out = hear_workdir.embeddings(key) / hear_tasks.SCENE_TASK
    task_dir = hear_workdir.tasks / hear_tasks.SCENE_TASK
    labels = {s: json.loads((task_dir / f"{s}.json").read_text()) for s in hear_tasks.SCENE_SPLITS}
    assert (out / ".done.embeddings").exists()
    module, model = _load_ours(config)
    for split, split_labels in labels.items():
        files = sorted(split_labels)
        dims = json.loads((out / f"{split}.embedding-dimensions.json").read_text())
        assert dims == [len(files), config.scene_size]
        per_file = []
        for name in files:
            embedding = np.load(out / split / f"{name}.embedding.npy")
            assert embedding.shape == (config.scene_size,) and embedding.dtype == np.float32
            assert np.isfinite(embedding).all()
            stored_labels = json.loads((out / split / f"{name}.target-labels.json").read_text())
            assert stored_labels == split_labels[name]
            per_file.append(embedding)
        _rows_match_files(_memmap(out, split), per_file)
        with open(out / f"{split}.target-labels.pkl", "rb") as handle:
            assert sorted(map(tuple, pickle.load(handle))) == sorted(
                tuple(v) for v in split_labels.values()
            )
        # Our own scene embeddings of the same files agree with what heareval stored.
        audio = _split_audio(task_dir, model.sample_rate, split, files)
        ours = module.get_scene_embeddings(audio, model).cpu().numpy()
        assert relative_error(np.stack(per_file), ours) <= 1e-4


@pytest.mark.parametrize("key", ["mn04", "mn04_all_se", "mn10_mode", "kwmlp"])
def test_embeddings_runner_event_task(key: str, hear_workdir: HearWorkdir) -> None:
    config = CONFIGS[key]
    out = hear_workdir.embeddings(key) / hear_tasks.EVENT_TASK
    task_dir = hear_workdir.tasks / hear_tasks.EVENT_TASK
    assert (out / ".done.embeddings").exists()
    module, model = _load_ours(config)
    labelled = 0
    for split in hear_tasks.EVENT_SPLITS:
        events = json.loads((task_dir / f"{split}.json").read_text())
        files = sorted(events)
        audio = _split_audio(task_dir, model.sample_rate, split, files)
        our_embeddings, our_timestamps = module.get_timestamp_embeddings(audio, model)
        our_embeddings = our_embeddings.cpu().numpy()
        our_timestamps = our_timestamps.cpu().numpy()
        # heareval batches a split's clips; a clip alone gives the same embeddings.
        alone, alone_timestamps = module.get_timestamp_embeddings(audio[-1:], model)
        assert relative_error(our_embeddings[-1], alone[0]) <= 1e-4
        assert alone_timestamps[0].tolist() == our_timestamps[-1].tolist()
        n_times = our_timestamps.shape[1]
        dims = json.loads((out / f"{split}.embedding-dimensions.json").read_text())
        assert dims == [len(files) * n_times, config.timestamp_size]
        per_file = []
        for i, name in enumerate(files):
            embedding = np.load(out / split / f"{name}.embedding.npy")
            assert embedding.shape == (n_times, config.timestamp_size)
            assert embedding.dtype == np.float32 and np.isfinite(embedding).all()
            timestamps = json.loads((out / split / f"{name}.timestamps.json").read_text())
            assert timestamps == our_timestamps[i].tolist()  # exactly our timestamps, in ms
            assert relative_error(embedding, our_embeddings[i]) <= 1e-4
            per_file.append(embedding)
            # heareval labels each timestamp with the events around it: that only works
            # when timestamps are milliseconds.
            frame_labels = json.loads((out / split / f"{name}.target-labels.json").read_text())
            assert len(frame_labels) == n_times
            for t, present in zip(timestamps, frame_labels):
                expected = {e["label"] for e in events[name] if e["start"] <= t <= e["end"]}
                assert set(present) == expected, (name, t)
                labelled += bool(present)
        _rows_match_files(_memmap(out, split), per_file)
        stamps = json.loads((out / f"{split}.filename-timestamps.json").read_text())
        assert len(stamps) == dims[0]
    assert labelled > 0


# ---------------------------------------------------------------------------------------
# heareval predictions runner
# ---------------------------------------------------------------------------------------

# One grid point of heareval's smallest grid ("faster": at most 10 epochs, tiny MLPs).
PREDICTION_ARGS = ["--grid", "faster", "--grid-points", "1"]


def _predict(
    task_out: Path, work: HearWorkdir, *, weights_only_off: bool = True, shim: bool = False
) -> subprocess.CompletedProcess:
    env = work.env()
    if not weights_only_off:
        env.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    if shim:
        runner = ["-c", hear_tasks.LIGHTNING_EPOCH_SHIM]
    else:
        runner = ["-m", "heareval.predictions.runner"]
    return _run([sys.executable, *runner, str(task_out), *PREDICTION_ARGS], cwd=work.path, env=env)


def _fresh_copy(task_out: Path, name: str) -> Path:
    """A copy of heareval's task output, so that each predictions run starts clean."""
    copy = task_out.parent.parent / f"{task_out.parent.name}@{name}" / task_out.name
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(task_out, copy)
    return copy


def _test_scores(task_out: Path) -> dict:
    path = task_out / "test.predicted-scores.json"
    assert path.exists(), f"{path} was not written"
    return json.loads(path.read_text())["test"]


@pytest.mark.parametrize("key", ["mn04", "kwmlp"])
def test_predictions_runner_scores_the_scene_task(key: str, hear_workdir: HearWorkdir) -> None:
    task_out = _fresh_copy(hear_workdir.embeddings(key) / hear_tasks.SCENE_TASK, "scene")
    result = _predict(task_out, hear_workdir)
    _assert_ok(result, f"heareval predictions runner ({key}, scene task)")
    scores = _test_scores(task_out)
    top1 = scores["test_top1_acc"]
    assert math.isfinite(top1) and 0.0 <= top1 <= 1.0, scores
    assert scores["test_score"] == top1
    assert math.isfinite(scores["test_loss"])
    assert (task_out / "prediction-done.json").exists()
    assert (task_out / "test.predictions.pkl").exists()
    if key == "kwmlp":
        # Real pretrained weights: low tone, high tone and noise are easy to tell apart
        # (the random mn04 checkpoint stays near chance, 1/3).
        assert top1 >= 5 / 6, scores


@pytest.mark.upstream_bug
def test_predictions_runner_needs_torch_weights_only_off(hear_workdir: HearWorkdir) -> None:
    """Why TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1: without it torch >= 2.6 refuses heareval's checkpoints."""
    task_out = _fresh_copy(hear_workdir.embeddings("mn04") / hear_tasks.SCENE_TASK, "noenv")
    result = _predict(task_out, hear_workdir, weights_only_off=False)
    assert result.returncode != 0, "heareval now loads its checkpoints without the variable"
    assert "weights_only" in result.stderr, _tail(result)


# Known upstream bug (heareval 2021.1.3 with pytorch-lightning >= 1.6): the predictions
# runner cannot score any event task; see hear_tasks.LIGHTNING_EPOCH_SHIM for the cause.
# Asserted as a known failure, for our module and for a module that has nothing to do with
# hear_mn, so that this test fails (and the README must be updated) once it is fixed. Marked
# upstream_bug: it watches heareval and never decides our CI (python -m pytest -m upstream_bug).
@pytest.mark.upstream_bug
@pytest.mark.parametrize("key", ["mn04", "random"])
def test_known_upstream_bug_event_predictions_keyerror(key: str, hear_workdir: HearWorkdir) -> None:
    task_out = _fresh_copy(hear_workdir.embeddings(key) / hear_tasks.EVENT_TASK, "event")
    result = _predict(task_out, hear_workdir)
    assert result.returncode != 0, "the upstream event-task bug is gone: update README and tests"
    assert "KeyError" in result.stderr, _tail(result)
    assert "epoch_best_postprocessing_or_default" in result.stderr, _tail(result)
    assert not (task_out / "test.predicted-scores.json").exists()


def test_event_predictions_run_with_the_lightning_shim(hear_workdir: HearWorkdir) -> None:
    """With FitLoop.current_epoch settable again, heareval scores the event task unchanged."""
    task_out = _fresh_copy(hear_workdir.embeddings("kwmlp") / hear_tasks.EVENT_TASK, "shim")
    result = _predict(task_out, hear_workdir, shim=True)
    _assert_ok(result, "heareval predictions runner with the Lightning shim (event task)")
    scores = _test_scores(task_out)
    fms = scores["test_event_onset_200ms_fms"]
    assert math.isfinite(fms) and 0.0 <= fms <= 1.0, scores
    assert math.isfinite(scores["test_segment_1s_er"]), scores
    # kwmlp's real embeddings (one every 10 ms) find the beeps and buzzes.
    assert fms >= 0.5, scores
