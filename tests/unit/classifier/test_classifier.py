"""hear-mn fit / predict / load_classifier on rendered classes (kwmlp, its shipped weights):
the head and card written, predictions that agree everywhere (object, files, CLI, stream,
ONNX), the checks of the model, and the data errors, which come before any compute."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from support.classifier_data import FAST_PARAMS, class_folders

import hear_mn
from hear_mn.audio_io import load_audio
from hear_mn.classifier import (
    ClassifierDataError,
    ClassifierFileError,
    ClassifierMismatchError,
    load_classifier,
)
from hear_mn.classifier.data import read_labelled
from hear_mn.cli import main

RATE = 16000


@pytest.fixture(scope="module")
def sounds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return class_folders(tmp_path_factory.mktemp("classes"), RATE)


@pytest.fixture(scope="module")
def fitted(sounds: Path, tmp_path_factory: pytest.TempPathFactory) -> hear_mn.classifier.Classifier:
    out = tmp_path_factory.mktemp("fit") / "clf"
    return hear_mn.fit(
        sounds, "kwmlp", out=out, valid_fraction=0.25, test_fraction=0.25, params=FAST_PARAMS
    )


def test_fit_writes_a_weights_only_head_and_its_card(fitted) -> None:
    card = json.loads((fitted.folder / "classifier.json").read_text())
    state = torch.load(io.BytesIO((fitted.folder / "head.pt").read_bytes()), weights_only=True)
    assert all(isinstance(value, torch.Tensor) for value in state.values())
    assert card["labels"] == ["high", "low", "noise"] == fitted.labels
    assert card["embedding"]["model"] == "kwmlp" and len(card["embedding"]["weights_sha256"]) == 64
    assert card["data"]["examples"] == {"train": 12, "valid": 6, "test": 6}
    assert card["data"]["per_class"]["valid"] == {"high": 2, "low": 2, "noise": 2}
    assert card["scores"]["valid"]["per_class"]["low"]["examples"] == 2
    assert card["head"]["grid_point"]["hidden_dim"] == 128
    # chance is 1/3
    assert card["scores"]["valid"]["scores"]["top1_acc"] >= 0.8
    assert card["scores"]["test"]["scores"]["top1_acc"] >= 0.8


def test_object_files_and_cli_agree(fitted, sounds: Path, capsys) -> None:
    files = sorted(sounds.glob("*/*.wav"))[:4]
    loaded = hear_mn.load_classifier(fitted.folder)
    audio = np.stack([load_audio(f, RATE) for f in files])
    direct = loaded.predict(audio).numpy()
    assert direct.shape == (4, 3)
    np.testing.assert_allclose(direct.sum(axis=1), 1.0, atol=1e-6)
    per_file = np.concatenate([loaded.predict_file(f).probabilities for f in files])
    np.testing.assert_allclose(per_file, direct, atol=1e-6)
    assert main(["predict", *map(str, files), "--classifier", str(fitted.folder), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    cli = np.array(
        [
            [s["probabilities"][k] for k in report["labels"]]
            for f in report["files"]
            for s in f["segments"]
        ]
    )
    np.testing.assert_allclose(cli, direct, atol=1e-6)


def test_stream_equals_the_windows_of_the_whole_signal(fitted, sounds: Path) -> None:
    audio = np.concatenate([load_audio(f, RATE) for f in sorted(sounds.glob("*/*_all_0.wav"))])
    bounds, expected = fitted.predict_signal(audio, window=0.4)
    stream = fitted.stream(0.4)
    rows, spans = [], []
    for start in range(0, len(audio), 3001):
        probabilities, got_bounds = stream.push(audio[start : start + 3001])
        rows.append(probabilities)
        spans.append(got_bounds)
    probabilities, got_bounds = stream.close()
    rows.append(probabilities)
    spans.append(got_bounds)
    np.testing.assert_allclose(torch.cat(rows).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(torch.cat(spans).numpy(), bounds)
    assert len(expected) == 8  # 3 s in 0.4 s windows, the last one shorter


def test_onnx_file_gives_the_same_probabilities(fitted, sounds: Path, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    path = tmp_path / "clf.onnx"
    assert main(["export", "--classifier", str(fitted.folder), "--out", str(path), "-q"]) == 0
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    metadata = session.get_modelmeta().custom_metadata_map
    assert json.loads(metadata["labels"]) == fitted.labels
    audio = np.stack([load_audio(f, RATE) for f in sorted(sounds.glob("*/*.wav"))[::3]])
    (got,) = session.run(["probabilities"], {"audio": audio})
    np.testing.assert_allclose(got, fitted.predict(audio).numpy(), atol=1e-5)


def test_the_ray_window_worker_gives_the_local_windows(fitted, sounds: Path, tmp_path: Path):
    """``hear-mn predict --window --engine ray`` runs hear_mn.classifier.ray_windows' worker
    on each actor; called here without Ray, its rows are predict_files' (the local run) and a
    file it cannot read gets its error in its row."""
    pytest.importorskip("pyarrow", reason="pyarrow comes with ray[data] (hear-mn[ray])")
    from hear_mn.classifier.corpus import predict_files
    from hear_mn.classifier.ray_windows import WindowWorker

    files = [sorted(sounds.glob("*/*.wav"))[0], tmp_path / "broken.wav"]
    files[1].write_bytes(b"not audio")
    worker = WindowWorker(fitted, window=0.4, batch_size=4, threads=1, device="cpu")
    rows = worker({"path": np.array([str(f) for f in files])}).to_pylist()
    local = list(predict_files(fitted, files, window=0.4, batch_size=4))
    assert rows[0]["error"] == "" and rows[0]["seconds"] == local[0].duration
    np.testing.assert_array_equal(rows[0]["bounds"], local[0].bounds.reshape(-1))
    np.testing.assert_array_equal(rows[0]["probabilities"], local[0].probabilities.reshape(-1))
    assert rows[1]["error"] == local[1][1] and rows[1]["probabilities"] == []


def test_a_head_refuses_other_weights_and_other_models(fitted) -> None:
    with pytest.raises(ClassifierMismatchError, match="other weights"):
        load_classifier(fitted.folder, model=hear_mn.create_model("kwmlp", pretrained=False))
    other = hear_mn.create_model("mn04_all_b_mel_avgs", pretrained=False)
    with pytest.raises(ClassifierMismatchError, match="trained on embeddings of 'kwmlp'.*mn04"):
        load_classifier(fitted.folder, model=other)


def test_a_replaced_head_is_refused(fitted, tmp_path: Path) -> None:
    copy = tmp_path / "clf"
    shutil.copytree(fitted.folder, copy, ignore=shutil.ignore_patterns("embeddings"))
    (copy / "head.pt").write_bytes(b"not a head")
    with pytest.raises(ClassifierFileError, match="SHA-256 differs"):
        load_classifier(copy)


def test_unreadable_files_are_listed_and_the_rest_used(
    sounds: Path, tmp_path: Path, capsys
) -> None:
    data = tmp_path / "sounds"
    shutil.copytree(sounds, data)
    (data / "low" / "broken.wav").write_bytes(b"RIFF not audio")
    out = tmp_path / "clf"
    args = ["fit", str(data), "--model", "kwmlp", "--out", str(out), "-q"]
    args += ["--valid-fraction", "0.25", "--test-fraction", "0.25"]
    args += [f"--param={k}={v[0]}" for k, v in FAST_PARAMS.items()]
    assert main(args) == 1
    assert "broken.wav" in capsys.readouterr().err
    card = json.loads((out / "classifier.json").read_text())
    assert [e["example"] for e in card["data"]["left_out"]] == [str(data / "low" / "broken.wav")]
    assert sum(card["data"]["examples"].values()) == 24


def test_embeddings_resume_after_ctrl_c(sounds: Path, tmp_path: Path, monkeypatch) -> None:
    import hear_mn.classifier.features as features

    real, calls = features.embed_clips, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(features, "embed_clips", interrupted)
    options = dict(
        out=tmp_path / "clf", valid_fraction=0.25, test_fraction=0.25, params=FAST_PARAMS
    )
    with pytest.raises(KeyboardInterrupt):
        hear_mn.fit(sounds, "kwmlp", batch_size=8, **options)
    monkeypatch.setattr(features, "embed_clips", real)
    classifier = hear_mn.fit(sounds, "kwmlp", batch_size=8, **options)
    assert classifier.card["data"]["embeddings_reused"] == 8
    assert classifier.card["data"]["embeddings_computed"] == 16


def test_data_errors_say_what_to_do(tmp_path: Path, sounds: Path) -> None:
    data = tmp_path / "sounds"
    shutil.copytree(sounds, data)
    (data / "cat").mkdir()
    with pytest.raises(ClassifierDataError, match="no audio files.*cat"):
        read_labelled(data)
    (data / "cat").rmdir()
    for extra in sorted((data / "noise").glob("*.wav"))[2:]:
        extra.unlink()
    with pytest.raises(ClassifierDataError, match="'noise' has 2; each class needs at least 3"):
        hear_mn.fit(data, "kwmlp", out=tmp_path / "clf")
    listing = tmp_path / "labels.csv"
    listing.write_text("file,label\nsounds/low/low_all_0.wav,low\nsounds/dog.wav,dog\n")
    with pytest.raises(
        ClassifierDataError, match=r"1 file\(s\) that do not exist.*row 3: sounds/dog.wav"
    ):
        read_labelled(listing)
    single = tmp_path / "single.csv"
    single.write_text("sounds/low/low_all_0.wav,low\nsounds/low/low_all_1.wav,low\n")
    with pytest.raises(ClassifierDataError, match="one class only"):
        hear_mn.fit(single, "kwmlp", out=tmp_path / "clf")
    assert not (tmp_path / "clf").exists()  # refused before anything was written


def test_csv_segments_and_multilabel_rows(tmp_path: Path, sounds: Path) -> None:
    clips = [load_audio(f, RATE) for f in sorted(sounds.glob("*/*_all_0.wav"))]
    sf.write(tmp_path / "long.wav", np.concatenate(clips), RATE)
    segments = tmp_path / "segments.csv"
    segments.write_text("long.wav,high,0,1\nlong.wav,low,1,2\nlong.wav,noise,2,3\nlong.wav,x,2,3\n")
    data = read_labelled(segments)
    assert [(e.labels, e.start, e.end) for e in data.examples] == [
        (("high",), 0.0, 1.0),
        (("low",), 1.0, 2.0),
        (("noise", "x"), 2.0, 3.0),
    ]
    assert data.multilabel
    from hear_mn.classifier.features import embed_examples

    model = hear_mn.create_model("kwmlp")
    embedded = embed_examples(data.examples, model, tmp_path / "cache")
    expected = model.scene_embeddings(np.stack(clips)).numpy()
    got = np.stack([embedded.embeddings[e] for e in data.examples])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert embed_examples(data.examples, model, tmp_path / "cache").reused == 3


def test_predicting_files_runs_every_file_in_one_engine(fitted, sounds: Path) -> None:
    """predict_files is a batch job: a scene job due to move to ONNX Runtime at once does not
    move during it (hear_mn.model.EmbeddingModel.start_batch_job)."""
    pytest.importorskip("onnxruntime")
    from hear_mn.classifier.corpus import predict_files
    from hear_mn.engines.ort import OnnxRuntime
    from hear_mn.model import AutoEngine

    fitted.model.set_auto_engines({"scene": AutoEngine(OnnxRuntime(), after_seconds=0.0)})
    files = sorted(sounds.rglob("*.wav"))[:3]
    assert all(not isinstance(outcome, tuple) for outcome in predict_files(fitted, files))
    assert fitted.model.engines()["scene"] == "torch"
