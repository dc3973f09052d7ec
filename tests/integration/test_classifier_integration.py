"""The classifier end to end (slow): fit equals hear_mn.evaluate on the same split and grid,
with kwmlp and with a MobileNet checkpoint; the three commands of docs/classifier.md (the
README's); predict on Ray in a loopback-only namespace; the edge example's --classifier
variant on the exported file, without torch or hear_mn."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from support import ROOT
from support.classifier_data import (
    FAST_PARAMS,
    WORD_PARAMS,
    class_folders,
    split_csvs,
    spoken_words_task,
    tones_task,
)
from support.reference import MN04_WEIGHTS, require_shared

import hear_mn
from hear_mn.audio_io import load_audio
from hear_mn.cli import main

# The labelled data sets, each a HEAR scene task with train, valid and test splits: its
# factory (root, sample rate), its grid (the task's own) and the accuracy its valid and test
# splits must reach.
DATA_SETS = {
    "tones": (tones_task, FAST_PARAMS, 0.7),  # chance is 1/3
    "words": (spoken_words_task, WORD_PARAMS, 0.75),  # chance is 1/4
}


def _evaluate_and_fit(
    tmp_path: Path,
    model: str,
    weights: Path | None,
    rate: int,
    make_task: Callable,
    params: dict,
) -> tuple:
    task = make_task(tmp_path / "tasks", rate)
    labels = sorted({v[0] for split in task.labels.values() for v in split.values()})
    # the classifier's vocabulary is sorted; the task's, in the same order, draws the same weights
    (task.path / "labelvocabulary.csv").write_text(
        "idx,label\n" + "".join(f"{i},{label}\n" for i, label in enumerate(labels))
    )
    csvs = split_csvs(task.path, task.labels, rate)
    classifier = hear_mn.fit(
        csvs["train"],
        model,
        weights=weights,
        valid=csvs["valid"],
        test=csvs["test"],
        params=params,
        out=tmp_path / "clf",
    )
    report = hear_mn.evaluate(task.path, model, weights=weights, out=tmp_path / "eval")[task.name]
    (predictions,) = (tmp_path / "eval").glob("*/*/test.predictions.npz")
    return task, classifier, report, np.load(predictions)["prediction"]


@pytest.mark.parametrize("data_set", sorted(DATA_SETS))
@pytest.mark.parametrize("model", ["kwmlp", "mn04_all_b_mel_avgs"])
def test_fit_equals_the_hear_evaluator(model: str, data_set: str, tmp_path: Path) -> None:
    weights = require_shared(MN04_WEIGHTS) if model.startswith("mn04") else None
    rate = 16000 if model == "kwmlp" else 32000
    make_task, params, accuracy = DATA_SETS[data_set]
    task, classifier, report, evaluated = _evaluate_and_fit(
        tmp_path, model, weights, rate, make_task, params
    )
    card = classifier.card
    for split in ("valid", "test"):
        assert card["scores"][split]["scores"]["top1_acc"] == pytest.approx(
            report[split]["top1_acc"], abs=1e-6
        )
        assert card["scores"][split]["scores"]["top1_acc"] >= accuracy
    assert card["head"]["grid_point"] == report["grid_point"]
    ours = [(g["validation_score"], g["epoch"]) for g in card["training"]["grid_results"]]
    theirs = [(g["validation_score"], g["epoch"]) for g in report["grid"]]
    assert ours == theirs
    # the test predictions, row by row (rows found by their embeddings), through the saved head
    (folder,) = (tmp_path / "eval").glob("*/*/test")
    shape = json.loads((folder.parent / "test.embedding-dimensions.json").read_text())
    matrix = np.fromfile(folder.parent / "test.embeddings.npy", dtype=np.float32).reshape(shape)
    names = [p.name.removesuffix(".embedding.npy") for p in folder.glob("*.embedding.npy")]
    stored = np.stack([np.load(folder / f"{name}.embedding.npy") for name in names])
    order = [names[int(np.argmin(np.abs(stored - row).sum(axis=1)))] for row in matrix]
    audio = [load_audio(task.audio_path(rate, "test", name), rate) for name in order]
    ours = classifier.predict(np.stack(audio)).numpy()
    np.testing.assert_allclose(ours, evaluated, atol=1e-4)


def _readme_commands() -> list[str]:
    text = (ROOT / "docs" / "classifier.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    readme = (ROOT / "README.md").read_text()
    assert f"```bash\n{block}```" in readme, "README's classifier commands differ from the docs'"
    return [line for line in block.splitlines() if line.strip()]


def test_the_three_commands_of_the_docs(tmp_path: Path, monkeypatch, capsys) -> None:
    commands = _readme_commands()
    assert len(commands) == 3
    sounds = class_folders(tmp_path, 16000, per_class=6)
    new = tmp_path / "new_sounds"
    shutil.copytree(sounds / "low", new)
    monkeypatch.chdir(tmp_path)
    for command in commands:
        words = shlex.split(command)
        assert words[0] == "hear-mn"
        assert main(words[1:]) == 0, command
    printed = capsys.readouterr().out
    assert "valid: top1_acc" in printed and "wrote my_classifier.onnx" in printed
    assert printed.count("low") >= 6  # every new file's top class


@pytest.mark.parametrize("window", [None, 0.4], ids=["per-file", "per-window"])
def test_predict_on_ray_equals_local(window: float | None, tmp_path: Path) -> None:
    pytest.importorskip("ray.data")
    from support.namespaces import in_network_namespace

    sounds = class_folders(tmp_path, 16000, per_class=6)
    hear_mn.fit(sounds, "kwmlp", out=tmp_path / "clf", params=FAST_PARAMS, test_fraction=0.0)
    local = tmp_path / "local.json"
    base = [
        sys.executable,
        "-m",
        "hear_mn",
        "predict",
        str(sounds),
        "--classifier",
        str(tmp_path / "clf"),
        "--json",
        *(["--window", str(window)] if window else []),
    ]
    with open(local, "w") as handle:
        assert subprocess.run(base, stdout=handle, timeout=600).returncode == 0
    ray_temp = Path(tempfile.mkdtemp(prefix="hear-mn-ray-", dir="/tmp"))
    try:
        env_script = f"RAY_TMPDIR={ray_temp}"
        done = in_network_namespace(["env", env_script, *base, "--engine", "ray", "--actors", "1"])
    finally:
        shutil.rmtree(ray_temp, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]

    def segments(report: dict) -> dict:
        """file -> (bounds, probabilities) of its segments."""
        return {
            f["file"]: (
                [(s["start_s"], s["end_s"]) for s in f["segments"]],
                [[s["probabilities"][k] for k in report["labels"]] for s in f["segments"]],
            )
            for f in report["files"]
        }

    ours, theirs = segments(json.loads(local.read_text())), segments(json.loads(done.stdout))
    assert sorted(ours) == sorted(theirs) and len(ours) == 18
    for file, (bounds, rows) in ours.items():
        assert len(rows) == (3 if window else 1)  # 1 s files: 0.4 s windows, the last shorter
        assert theirs[file][0] == bounds
        np.testing.assert_allclose(theirs[file][1], rows, atol=1e-6)


def test_edge_example_classifies_the_stream_windows(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    weights = require_shared(MN04_WEIGHTS)
    sounds = class_folders(tmp_path, 32000, per_class=6)
    classifier = hear_mn.fit(
        sounds, "mn04_all_b_mel_avgs", weights=weights, out=tmp_path / "clf", params=FAST_PARAMS
    )
    assert (
        main(
            [
                "export",
                "--classifier",
                str(classifier.folder),
                "--out",
                str(tmp_path / "c.onnx"),
                "-q",
            ]
        )
        == 0
    )
    audio = np.concatenate([load_audio(f, 32000) for f in sorted(sounds.glob("*/*_all_1.wav"))])
    sf.write(tmp_path / "mix.wav", audio, 32000)
    blocked = "import sys, runpy; sys.modules['torch'] = None; sys.modules['hear_mn'] = None; "
    blocked += "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    script = ROOT / "examples" / "edge_stream.py"
    args = [str(script), str(tmp_path / "c.onnx"), str(tmp_path / "mix.wav"), "--classifier", "0.5"]
    done = subprocess.run(
        [sys.executable, "-c", blocked, *args, "--quiet", "--json", str(tmp_path / "out.json")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    edge = np.array(json.loads((tmp_path / "out.json").read_text())["embeddings"])
    stream = classifier.stream(0.5)
    expected = torch.cat([stream.push(audio)[0]]).numpy()  # full windows only, as the example
    assert edge.shape == expected.shape == (6, 3)
    np.testing.assert_allclose(edge, expected, atol=1e-5)
