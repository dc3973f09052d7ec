"""A multi-label classifier end to end (kwmlp): fitted from ``file,label,label`` CSVs of
rendered tone mixtures, its card says multi-label, its probabilities are one sigmoid per
class (rows need not sum to 1) from the object and from ``hear-mn predict``, and its scores
are the HEAR evaluator's on the same split as a multi-label scene task (mAP)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from support.classifier_data import FAST_PARAMS

import hear_mn
from hear_mn.audio_io import load_audio
from hear_mn.cli import main
from hear_mn.evaluation.scores import make_score

RATE = 16000
# The label sets of the examples: single sounds and mixtures of two.
LABEL_SETS = (("low",), ("high",), ("low", "high"), ("noise",), ("high", "noise"))
SPLITS = {"train": 5, "valid": 3, "test": 3}  # examples of each label set


def _clip(labels: tuple[str, ...], seed: int) -> np.ndarray:
    """1 s: a low tone, a high tone and/or noise, each at its own pitch or draw."""
    rng = np.random.default_rng(seed)
    t = np.arange(RATE) / RATE
    parts = {
        "low": lambda: np.sin(2 * np.pi * rng.uniform(200, 500) * t),
        "high": lambda: np.sin(2 * np.pi * rng.uniform(2500, 4000) * t),
        "noise": lambda: rng.uniform(-1, 1, RATE),
    }
    return (0.3 * sum(parts[label]() for label in labels)).astype(np.float32)


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A multi-label HEAR scene task (mAP) whose folder also holds one CSV per split
    (``file,label,label`` rows, paths relative to the CSV)."""
    root = tmp_path_factory.mktemp("multilabel") / "hearmn_mixtures"
    vocabulary = sorted({label for labels in LABEL_SETS for label in labels})
    metadata = {
        "task_name": root.name,
        "version": "hear-mn-test-1",
        "embedding_type": "scene",
        "prediction_type": "multilabel",
        "split_mode": "trainvaltest",
        "sample_duration": 1.0,
        "evaluation": ["mAP"],
        "splits": list(SPLITS),
        "evaluation_params": {"task_specific_param_grid": FAST_PARAMS},
    }
    (root / str(RATE)).mkdir(parents=True)
    (root / "task_metadata.json").write_text(json.dumps(metadata))
    (root / "labelvocabulary.csv").write_text(
        "idx,label\n" + "".join(f"{i},{label}\n" for i, label in enumerate(vocabulary))
    )
    for split_index, (split, count) in enumerate(SPLITS.items()):
        files, rows = {}, ["file,label,label"]
        for set_index, labels in enumerate(LABEL_SETS):
            for k in range(count):
                name = f"{'+'.join(labels)}_{split}_{k}.wav"
                path = root / str(RATE) / split / name
                path.parent.mkdir(exist_ok=True)
                sf.write(str(path), _clip(labels, 1000 * split_index + 100 * set_index + k), RATE)
                files[name] = list(labels)
                rows.append(",".join([f"{RATE}/{split}/{name}", *labels]))
        (root / f"{split}.json").write_text(json.dumps(files))
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def fitted(task: Path) -> hear_mn.classifier.Classifier:
    return hear_mn.fit(
        task / "train.csv",
        "kwmlp",
        valid=task / "valid.csv",
        test=task / "test.csv",
        params=FAST_PARAMS,
        out=task.parent / "clf",
    )


def _test_files(task: Path) -> tuple[list[Path], np.ndarray]:
    """The test split's files and their 0/1 targets (columns: the classifier's labels)."""
    files = json.loads((task / "test.json").read_text())
    labels = sorted({label for labels in LABEL_SETS for label in labels})
    paths = [task / str(RATE) / "test" / name for name in sorted(files)]
    targets = np.array([[label in files[p.name] for label in labels] for p in paths], np.float32)
    return paths, targets


def test_the_card_says_multilabel_with_map_scores(fitted) -> None:
    card = fitted.card
    assert card["multilabel"] is True and fitted.multilabel
    assert card["output"] == "sigmoid per class"
    assert card["primary_score"] == "mAP"
    assert card["labels"] == ["high", "low", "noise"]
    assert card["data"]["per_class"]["train"] == {"high": 15, "low": 10, "noise": 10}
    for split in ("valid", "test"):
        assert set(card["scores"][split]["scores"]) == {"mAP", "aucroc"}
        assert card["scores"][split]["scores"]["mAP"] >= 0.9  # chance is about 0.47
        assert "confusion" not in card["scores"][split]
        assert set(card["scores"][split]["per_class"]["low"]) == {"examples", "average_precision"}


def test_probabilities_are_independent_sigmoids(fitted, task: Path) -> None:
    paths, targets = _test_files(task)
    audio = np.stack([load_audio(p, RATE) for p in paths])
    probabilities = fitted.predict(audio)
    embeddings = fitted.model.scene_embeddings(audio)
    with torch.inference_mode():
        expected = torch.sigmoid(fitted.head.logits(embeddings))
    torch.testing.assert_close(probabilities, expected, atol=1e-6, rtol=0)
    sums = probabilities.sum(dim=1).numpy()
    mixtures = targets.sum(axis=1) == 2
    assert sums[mixtures].mean() > 1.5  # two classes present: both high, no softmax
    # the card's test score is the evaluator's mAP of these probabilities
    score = make_score("mAP", fitted.labels)(probabilities.numpy(), targets)
    assert next(iter(score.values())) == pytest.approx(
        fitted.card["scores"]["test"]["scores"]["mAP"], abs=1e-5
    )


def test_predict_command_gives_the_sigmoids(fitted, task: Path, capsys) -> None:
    paths, _ = _test_files(task)
    assert main(["predict", *map(str, paths), "--classifier", str(fitted.folder), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["multilabel"] is True and report["labels"] == fitted.labels
    cli = np.array(
        [[f["segments"][0]["probabilities"][k] for k in report["labels"]] for f in report["files"]]
    )
    direct = fitted.predict(np.stack([load_audio(p, RATE) for p in paths])).numpy()
    np.testing.assert_allclose(cli, direct, atol=1e-6)


def test_scores_equal_the_evaluator_on_a_multilabel_scene_task(fitted, task: Path) -> None:
    report = hear_mn.evaluate(task, "kwmlp", out=task.parent / "eval")[task.name]
    card = fitted.card
    for split in ("valid", "test"):
        assert card["scores"][split]["scores"]["mAP"] == pytest.approx(
            report[split]["mAP"], abs=1e-6
        )
    assert card["head"]["grid_point"] == report["grid_point"]
    ours = [(g["validation_score"], g["epoch"]) for g in card["training"]["grid_results"]]
    assert ours == [(g["validation_score"], g["epoch"]) for g in report["grid"]]
