"""The hear-mn command line end to end, and the audio file and label helpers behind it.

Runs in-process through ``hear_mn.cli.main`` (and once through ``python -m hear_mn``) on a
generated folder of audio files, with a randomly initialised mn04 checkpoint placed under
its release name in ``$HEAR_MN_WEIGHTS_DIR``, so nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from support import ROOT
from support.reference import REFERENCE, relative_error, require_shared
from support.runs import run_cli, save_random_checkpoint

from hear_mn import cli, complexity
from hear_mn.audio_io import AudioReadError, find_audio_files, load_audio, save_npz
from hear_mn.catalog import GROUP_TITLES, NAMED
from hear_mn.cli import common as cli_common
from hear_mn.cli import embed as cli_embed
from hear_mn.complexity import model_complexity
from hear_mn.labels import NUM_CLASSES, SHIPPED_LABELS, LabelsError, load_labels
from hear_mn.registry import NAMED_CONFIGS, create_model, get_config
from hear_mn.validation import FAIL, PASS, SKIP, validate_module

sf = pytest.importorskip("soundfile")

MODEL = "mn04_e1_l"
DIM = 911  # mn04 with features l + e1
# What the generated folder holds, and the .npz each readable file gives.
READABLE = {
    "stereo_44k.wav": "stereo_44k.wav.npz",
    "speech_16k.flac": "speech_16k.flac.npz",
    "tone_8k.ogg": "tone_8k.ogg.npz",
    "nested/deeper/tone_32k.wav": "nested/deeper/tone_32k.wav.npz",
}
BROKEN = ("corrupt.wav", "empty.flac")


# --------------------------------------------------------------------------- fixtures


def _tone(seconds: float, rate: int, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    left = 0.5 * np.sin(2 * np.pi * freq * t)
    if channels == 1:
        return left.astype(np.float32)
    right = 0.3 * np.sin(2 * np.pi * 2.5 * freq * t)
    return np.stack([left, right], axis=1).astype(np.float32)


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory) -> Path:
    """44.1 kHz stereo wav, 16 kHz flac, 8 kHz ogg, a nested 32 kHz wav, corrupt and empty files."""
    root = tmp_path_factory.mktemp("audio")
    (root / "nested" / "deeper").mkdir(parents=True)
    sf.write(root / "stereo_44k.wav", _tone(1.5, 44100, channels=2), 44100)
    sf.write(root / "speech_16k.flac", _tone(1.0, 16000, freq=300), 16000)
    sf.write(root / "tone_8k.ogg", _tone(1.0, 8000, freq=600), 8000, format="OGG")
    sf.write(root / "nested" / "deeper" / "tone_32k.wav", _tone(1.0, 32000, freq=900), 32000)
    (root / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(range(40)))
    (root / "empty.flac").write_bytes(b"")
    (root / "notes.txt").write_text("not audio, not picked up from a directory\n")
    (root / ".hidden.wav").write_bytes(b"hidden files are skipped")
    return root


def _outputs(out_dir: Path) -> set[str]:
    return {p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file()}


# --------------------------------------------------------------------------- audio_io


def test_load_audio_mixes_to_mono_and_resamples(audio_dir) -> None:
    audio = load_audio(audio_dir / "stereo_44k.wav", 32000)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert audio.shape == (48000,)
    # The mix of a 440 Hz and a 1100 Hz sine, resampled: compare with the analytic signal.
    t = np.arange(48000) / 32000
    expected = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 1100 * t)) / 2
    inner = slice(1000, -1000)  # away from the resampler's edges
    assert np.abs(audio[inner] - expected[inner]).max() < 2e-3
    assert load_audio(audio_dir / "speech_16k.flac", 16000).shape == (16000,)
    assert load_audio(audio_dir / "tone_8k.ogg", 32000).shape == (32000,)


def test_load_audio_reads_mp3_when_libsndfile_can(tmp_path) -> None:
    path = tmp_path / "tone.mp3"
    try:
        sf.write(path, _tone(1.0, 22050), 22050, format="MP3")
    except Exception as error:  # older libsndfile builds have no MP3
        pytest.skip(f"this libsndfile cannot write MP3: {error}")
    audio = load_audio(path, 32000)
    assert audio.dtype == np.float32 and abs(len(audio) - 32000) < 3000


@pytest.mark.parametrize(
    "name, reason",
    [("corrupt.wav", "not a readable audio file"), ("empty.flac", "empty file")],
)
def test_load_audio_rejects_bad_files(audio_dir, name, reason) -> None:
    with pytest.raises(AudioReadError, match=reason) as info:
        load_audio(audio_dir / name, 32000)
    assert isinstance(info.value, ValueError) and name in str(info.value)


def test_load_audio_rejects_missing_and_sample_free_files(tmp_path) -> None:
    with pytest.raises(AudioReadError, match="does not exist"):
        load_audio(tmp_path / "nope.wav", 32000)
    sf.write(tmp_path / "zero.wav", np.zeros((0, 1), np.float32), 16000)
    with pytest.raises(AudioReadError, match="no audio samples"):
        load_audio(tmp_path / "zero.wav", 16000)


def test_find_audio_files_recurses_sorted_and_keeps_relative_paths(audio_dir) -> None:
    found = find_audio_files([audio_dir])
    relative = [r.as_posix() for _, r in found]
    assert relative == sorted(set(READABLE) | set(BROKEN))
    assert all(path == audio_dir / rel for path, rel in found)
    # A file named directly keeps only its name, whatever its extension; duplicates go.
    direct = find_audio_files([audio_dir / "notes.txt", audio_dir, audio_dir / "corrupt.wav"])
    assert direct[0][1] == Path("notes.txt") and len(direct) == 1 + len(relative)
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        find_audio_files([audio_dir / "missing.wav"])


def test_save_npz_is_atomic(tmp_path, monkeypatch) -> None:
    target = tmp_path / "sub" / "x.npz"
    save_npz(target, a=np.arange(3))
    assert np.load(target)["a"].tolist() == [0, 1, 2]

    def broken_savez(handle, **arrays):
        handle.write(b"half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_npz(target, a=np.arange(5))
    assert np.load(target)["a"].tolist() == [0, 1, 2]  # the old file is untouched
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.npz"]  # no temp file left


# --------------------------------------------------------------------------- embed


def test_embed_folder_resume_and_overwrite(weights_env, audio_dir, tmp_path, capsys) -> None:
    out = tmp_path / "emb"
    code, stdout, stderr = run_cli(capsys, "embed", audio_dir, "--model", MODEL, "--out", out)
    assert code == 1, "unreadable files must make the exit code 1"
    assert _outputs(out) == set(READABLE.values())
    assert "embedded 4 file(s)" in stdout
    assert "failed for 2 file(s)" in stderr
    for name in BROKEN:
        assert str(audio_dir / name) in stderr
    assert "Traceback" not in stderr
    for output in READABLE.values():
        with np.load(out / output) as data:
            assert set(data.files) == {"embedding", "model", "features", "sample_rate", "settings"}
            settings = json.loads(str(data["settings"]))
            assert settings["model"] == MODEL and settings["timestamps"] is False
            assert len(settings["weights_sha256"]) == 64 and settings["features"] == ["l", "e1"]
            assert data["embedding"].shape == (DIM,) and data["embedding"].dtype == np.float32
            assert np.isfinite(data["embedding"]).all()
            assert str(data["model"]) == MODEL and int(data["sample_rate"]) == 32000
    first = {name: (out / name).stat().st_mtime_ns for name in READABLE.values()}
    reference = np.load(out / READABLE["stereo_44k.wav"])["embedding"]

    # Second run: everything readable is skipped, and it says so.
    code, stdout, stderr = run_cli(capsys, "embed", audio_dir, "--model", MODEL, "--out", out)
    assert code == 1
    assert "embedded 0 file(s)" in stdout and "skipped 4 file(s)" in stdout
    assert {name: (out / name).stat().st_mtime_ns for name in READABLE.values()} == first

    # --overwrite recomputes them, batch by batch or one by one alike.
    code, stdout, _ = run_cli(
        capsys,
        *("embed", audio_dir, "--model", MODEL, "--out", out, "--overwrite", "--batch-size", "1"),
    )
    assert code == 1 and "embedded 4 file(s)" in stdout and "skipped" not in stdout
    again = np.load(out / READABLE["stereo_44k.wav"])["embedding"]
    assert relative_error(again, reference) <= 1e-5
    assert not [p for p in out.rglob("*") if p.name.startswith(".")], "temporary files left"


def test_resume_only_outputs_written_with_the_same_settings(
    weights_env, audio_dir, tmp_path, capsys
) -> None:
    """An output folder holding another model's (or mode's, or weights') outputs is not
    taken as done: the run stops before computing anything and names --overwrite."""
    out = tmp_path / "emb"
    code, _, _ = run_cli(capsys, "embed", audio_dir, "--model", MODEL, "--out", out, "--timestamps")
    assert code == 1  # the two broken files
    written = {p: p.stat().st_mtime_ns for p in out.rglob("*.npz")}
    for other in (
        ["--model", "mn04_all_b_mel_avgs"],
        ["--model", MODEL],  # scene instead of timestamps
        ["--model", MODEL, "--timestamps", "--features", "e1"],
    ):
        code, stdout, stderr = run_cli(capsys, "embed", audio_dir, *other, "--out", out)
        assert code == 2, (other, stdout, stderr)
        assert "4 output(s)" in stderr and "other settings" in stderr and "--overwrite" in stderr
        assert {p: p.stat().st_mtime_ns for p in out.rglob("*.npz")} == written
    code, stdout, _ = run_cli(
        capsys, "embed", audio_dir, "--model", MODEL, "--out", out, "--timestamps"
    )
    assert "skipped 4 file(s)" in stdout  # the same settings resume
    code, stdout, _ = run_cli(
        capsys, "embed", audio_dir, "--model", "mn04_all_b_mel_avgs", "--out", out, "--overwrite"
    )
    assert "embedded 4 file(s)" in stdout
    with np.load(out / READABLE["stereo_44k.wav"]) as data:
        assert str(data["model"]) == "mn04_all_b_mel_avgs" and data["embedding"].shape == (320,)


def test_other_weights_are_other_settings(weights_env, audio_dir, tmp_path, capsys) -> None:
    out = tmp_path / "emb"
    source = audio_dir / "speech_16k.flac"
    other = tmp_path / "other.pt"
    save_random_checkpoint(other, MODEL, seed=1)
    assert run_cli(capsys, "embed", source, "--model", MODEL, "--out", out)[0] == 0
    code, _, stderr = run_cli(
        capsys, "embed", source, "--model", MODEL, "--weights", other, "--out", out
    )
    assert code == 2 and "other settings" in stderr


def test_outputs_without_settings_are_not_resumed_blindly(
    weights_env, audio_dir, tmp_path, capsys
) -> None:
    """An .npz this version did not write (an older hear-mn, another tool) cannot be trusted."""
    out = tmp_path / "emb"
    source = audio_dir / "speech_16k.flac"
    save_npz(out / "speech_16k.flac.npz", embedding=np.zeros(DIM, np.float32))
    code, _, stderr = run_cli(capsys, "embed", source, "--model", MODEL, "--out", out)
    assert code == 2 and "other settings" in stderr


def test_an_unwritable_output_folder_is_found_before_any_work(
    weights_env, audio_dir, tmp_path, capsys, monkeypatch
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(
        cli_embed,
        "load_model",
        lambda *a, **k: pytest.fail("loaded a model for a run that cannot write"),
    )
    code, _, stderr = run_cli(
        capsys, "embed", audio_dir, "--model", MODEL, "--out", blocker / "emb"
    )
    assert code == 2 and "cannot write" in stderr and str(blocker / "emb") in stderr


def test_a_float_wav_of_huge_samples_is_a_failure_not_an_npz_of_nan(
    weights_env, audio_dir, tmp_path, capsys
) -> None:
    folder = tmp_path / "loud"
    folder.mkdir()
    sf.write(folder / "huge.wav", _tone(1.0, 32000) * 1e30, 32000, subtype="FLOAT")
    (folder / "fine.flac").write_bytes((audio_dir / "speech_16k.flac").read_bytes())
    out = tmp_path / "o"
    code, stdout, stderr = run_cli(capsys, "embed", folder, "--model", MODEL, "--out", out)
    assert code == 1 and "embedded 1 file(s)" in stdout
    assert "huge.wav" in stderr and "not finite" in stderr and "peak at" in stderr
    assert [p.name for p in out.rglob("*.npz")] == ["fine.flac.npz"]


def test_ctrl_c_says_how_many_outputs_were_saved(
    weights_env, audio_dir, tmp_path, capsys, monkeypatch
) -> None:
    from hear_mn import batch

    out = tmp_path / "emb"
    saved = []

    def save_then_interrupt(path, **arrays):
        if len(saved) == 2:
            raise KeyboardInterrupt
        saved.append(save_npz(path, **arrays))

    monkeypatch.setattr(batch, "save_npz", save_then_interrupt)
    code, _, stderr = run_cli(
        capsys, "embed", audio_dir, "--model", MODEL, "--out", out, "--batch-size", "1"
    )
    assert code == 130
    assert f"interrupted; 2 output(s) were saved in {out}" in stderr and "resume" in stderr
    assert sorted(out.rglob("*.npz")) == sorted(saved)
    monkeypatch.setattr(batch, "save_npz", save_npz)
    code, stdout, _ = run_cli(capsys, "embed", audio_dir, "--model", MODEL, "--out", out)
    assert "embedded 2 file(s)" in stdout and "skipped 2 file(s)" in stdout


def test_embed_files_in_python_writes_what_the_cli_writes(
    weights_env, audio_dir, tmp_path, capsys
) -> None:
    import hear_mn

    cli_out, api_out = tmp_path / "cli", tmp_path / "api"
    run_cli(capsys, "embed", audio_dir, "--model", MODEL, "--out", cli_out, "--timestamps")
    model = hear_mn.create_model(MODEL)
    report = hear_mn.embed_files([audio_dir], model, api_out, timestamps=True)
    assert len(report.written) == 4 and len(report.failures) == 2 and not report.resumed
    for name in READABLE.values():
        with np.load(cli_out / name) as ours, np.load(api_out / name) as theirs:
            assert set(ours.files) == set(theirs.files)
            for key in ours.files:
                np.testing.assert_array_equal(ours[key], theirs[key])
    again = hear_mn.embed_files([audio_dir], model, api_out, timestamps=True)
    assert len(again.resumed) == 4 and not again.written


def test_embed_timestamps_of_a_single_file(weights_env, audio_dir, tmp_path, capsys) -> None:
    out = tmp_path / "emb"
    source = audio_dir / "nested" / "deeper" / "tone_32k.wav"
    code, stdout, stderr = run_cli(
        capsys, "embed", source, "--model", MODEL, "--out", out, "--timestamps"
    )
    assert code == 0, stderr
    assert _outputs(out) == {"tone_32k.wav.npz"}  # a file named directly: just its name
    with np.load(out / "tone_32k.wav.npz") as data:
        n_stamps = 32000 // 1600 + 1
        assert data["embedding"].shape == (n_stamps, DIM)
        np.testing.assert_array_equal(data["timestamps"], np.arange(n_stamps) * 50.0)
        model = create_model(MODEL, pretrained=False)
        model.load_checkpoint(torch.load(next(weights_env.iterdir())), source="test")
        expected, _ = model.timestamp_embeddings(torch.from_numpy(load_audio(source, 32000))[None])
        np.testing.assert_allclose(data["embedding"], expected[0].numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "size"), [("mn04_all_b_mel_avgs", 320), ("mn04_b4_5_6_7_avg_time_pool", 4 * 256)]
)
def test_embed_with_a_module_of_the_original_package(
    weights_env, audio_dir, tmp_path, capsys, name: str, size: int
) -> None:
    """Any named module, and any name of the grammar, on the same released mn04 weights."""
    out = tmp_path / "emb"
    source = audio_dir / "nested" / "deeper" / "tone_32k.wav"
    code, _, stderr = run_cli(capsys, "embed", source, "--model", name, "--out", out)
    assert code == 0, stderr
    with np.load(out / "tone_32k.wav.npz") as data:
        assert data["embedding"].shape == (size,) and str(data["model"]) == name
        model = create_model(name, weights=next(weights_env.iterdir()))
        expected = model.scene_embeddings(torch.from_numpy(load_audio(source, 32000))[None])
        np.testing.assert_allclose(data["embedding"], expected[0].numpy(), rtol=1e-5, atol=1e-6)


def test_embed_progress_bar_only_on_a_terminal(
    weights_env, audio_dir, tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.setattr(cli_embed, "is_tty", lambda stream: True)
    source = audio_dir / "speech_16k.flac"
    _, _, stderr = run_cli(capsys, "embed", source, "--model", MODEL, "--out", tmp_path / "a")
    # Progress by audio time, with the time left (tqdm's elapsed<remaining).
    assert "embed" in stderr and "1.0/1.0 s of audio" in stderr and "<" in stderr
    code, stdout, stderr = run_cli(
        capsys, "embed", source, "--model", MODEL, "--out", tmp_path / "b", "--quiet"
    )
    assert code == 0 and stdout == "" and stderr == ""


def test_files_no_decoder_reads_are_listed_not_skipped_silently(
    weights_env, audio_dir, tmp_path, capsys
) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "song.flac").write_bytes((audio_dir / "speech_16k.flac").read_bytes())
    (folder / "notes.txt").write_text("lyrics")
    (folder / "README").write_text("no extension")
    code, stdout, stderr = run_cli(
        capsys, "embed", folder, "--model", MODEL, "--out", tmp_path / "o"
    )
    assert code == 0 and "embedded 1 file(s)" in stdout
    assert "ignored 2 file(s)" in stderr
    assert f"{folder / 'notes.txt'}: not an audio or video file extension" in stderr
    assert f"{folder / 'README'}: no file extension" in stderr


def test_inputs_of_the_same_name_are_a_usage_error(
    weights_env, audio_dir, tmp_path, capsys
) -> None:
    for parent in ("a", "b"):
        (tmp_path / parent / "data").mkdir(parents=True)
        (tmp_path / parent / "data" / "x.flac").write_bytes(
            (audio_dir / "speech_16k.flac").read_bytes()
        )
    code, _, stderr = run_cli(
        capsys,
        "embed",
        tmp_path / "a" / "data",
        tmp_path / "b" / "data",
        "--model",
        MODEL,
        "--out",
        tmp_path / "o",
    )
    assert code == 2 and "have the same name 'data'" in stderr and "Traceback" not in stderr


def test_several_input_folders_get_their_own_output_folders(
    weights_env, audio_dir, tmp_path, capsys
) -> None:
    for split in ("train", "test"):
        (tmp_path / split).mkdir()
        (tmp_path / split / "a.flac").write_bytes((audio_dir / "speech_16k.flac").read_bytes())
    out = tmp_path / "o"
    code, stdout, _ = run_cli(
        capsys, "embed", tmp_path / "train", tmp_path / "test", "--model", MODEL, "--out", out
    )
    assert code == 0 and "embedded 2 file(s)" in stdout
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npz")) == [
        "test/a.flac.npz",
        "train/a.flac.npz",
    ]


def test_python_dash_m_runs_the_cli(weights_env, audio_dir, tmp_path) -> None:
    out = tmp_path / "emb"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hear_mn",
            "embed",
            str(audio_dir),
            "--model",
            MODEL,
            "--out",
            str(out),
            "--batch-size",
            "2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
    )
    assert result.returncode == 1, result.stderr
    assert _outputs(out) == set(READABLE.values())
    assert "Traceback" not in result.stderr and "corrupt.wav" in result.stderr


# --------------------------------------------------------------------------- errors and help


@pytest.mark.parametrize(
    "argv, message",
    [
        (["embed", "{audio}", "--model", "mn99_e1"], "unknown model 'mn99_e1'"),
        (["embed", "{audio}/missing.wav", "--model", MODEL], "does not exist"),
        (["embed", "{audio}", "--model", MODEL, "--batch-size", "0"], "--batch-size"),
        (["embed", "{audio}", "--model", MODEL, "--frobnicate"], "unrecognized arguments"),
        (["embed", "{audio}", "--model", "mn10_e1_l"], "HEAR_MN_WEIGHTS_DIR"),
        (["tag", "{audio}", "--model", "kwmlp"], "no AudioSet classifier"),
        (["tag", "{audio}", "--model", MODEL, "--window", "-1"], "--window"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
    ],
)
def test_errors_are_one_line_without_traceback(
    weights_env, audio_dir, tmp_path, capsys, monkeypatch, argv, message
) -> None:
    monkeypatch.chdir(tmp_path)  # the default --out is relative
    monkeypatch.setenv("HEAR_MN_OFFLINE", "1")  # the mn10 weights are not there
    code, stdout, stderr = run_cli(capsys, *(a.format(audio=audio_dir) for a in argv))
    assert code == 2
    assert message in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith("hear-mn") and "Traceback" not in stderr


@pytest.mark.parametrize("command", ["list", "embed", "tag", "validate"])
def test_every_subcommand_has_help_with_examples(capsys, command) -> None:
    code, stdout, _ = run_cli(capsys, command, "--help")
    assert code == 0
    assert "examples:" in stdout and f"hear-mn {command}" in stdout


# --------------------------------------------------------------------------- list


def test_list_json_counts_every_configuration(weights_env, capsys) -> None:
    code, stdout, _ = run_cli(capsys, "list", "--json")
    assert code == 0
    rows = {row["name"]: row for row in json.loads(stdout)}
    assert list(rows) == list(NAMED_CONFIGS)
    for name, row in rows.items():
        config = get_config(name)
        assert (row["scene_embedding_size"], row["timestamp_embedding_size"]) == (
            config.embedding_sizes
        )
        assert row["sample_rate"] == config.sample_rate
        assert row["weights_file"] == config.weights.file_name
        assert row["group"] == NAMED[name].group
        assert row["parameters"] > 0 and row["macs_10s"] > 0 or name == "mn10_mel_avgs"
    built = create_model(MODEL, pretrained=False)
    assert rows[MODEL]["parameters"] == sum(p.numel() for p in built.parameters())
    assert rows[MODEL]["weights_status"] == "offline"
    assert rows["mn10_e1_l"]["weights_status"] == "missing"
    macs = {name: rows[name]["macs_10s"] for name in ("mn04_e1_l", "mn10_e1_l", "mn40_e1_l")}
    assert macs["mn04_e1_l"] < macs["mn10_e1_l"] < macs["mn40_e1_l"]
    # 256 mel bands double the MobileNet's work; the feature taps add none.
    assert rows["mn10_mels_256_e1_l"]["macs_10s"] == pytest.approx(2 * macs["mn10_e1_l"], 0.01)
    assert rows["mn40_ext_e1_l_all_se"]["macs_10s"] == macs["mn40_e1_l"]
    # The newer modules: a hop of 5 ms doubles the frames; block features stop the network
    # early; mean mel bands alone run none of it; the fully convolutional head is smaller.
    mel_avgs = rows["mn10_all_b_mel_avgs"]["macs_10s"]
    assert rows["mn10_all_b_mel_avgs_hop5"]["macs_10s"] == pytest.approx(2 * mel_avgs, 0.01)
    assert rows["mn10_b1"]["macs_10s"] < rows["mn10_b4"]["macs_10s"] < mel_avgs < macs["mn10_e1_l"]
    assert rows["mn10_mel_avgs"]["macs_10s"] == 0
    fc = create_model("mn10_all_b_mel_avgs_fc", pretrained=False)
    assert rows["mn10_all_b_mel_avgs_fc"]["parameters"] == sum(p.numel() for p in fc.parameters())


@pytest.mark.parametrize("name", [MODEL, "mn10_b4", "mn10_all_b_mel_avgs_fc", "kwmlp"])
def test_mac_count_matches_hooks_on_a_real_pass(name: str) -> None:
    """An independent count: forward hooks on a real CPU pass over 10 s of audio."""
    model = create_model(name, pretrained=False)
    total = 0

    def hook(layer, _inputs, output) -> None:
        nonlocal total
        if isinstance(layer, torch.nn.Linear):
            total += output.numel() * layer.in_features
        else:
            total += output.numel() * layer.weight[0].numel()

    for layer in model.modules():
        if isinstance(layer, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear)):
            layer.register_forward_hook(hook)
    assert torch.is_grad_enabled()  # so the plain network with the hooks runs, not a copy
    model._scene_embeddings(torch.zeros(1, 10 * model.sample_rate))
    params, macs = model_complexity(get_config(name), 10.0)
    assert macs == total
    assert params == sum(p.numel() for p in model.parameters())


def test_list_table(weights_env, capsys, monkeypatch) -> None:
    monkeypatch.setattr(complexity, "known_complexity", lambda config: (1234567, 8_027_611_904))
    code, stdout, _ = run_cli(capsys, "list")
    assert code == 0
    lines = stdout.splitlines()
    assert lines[0].split()[:2] == ["model", "rate"]
    headings = [line for line in lines if line.startswith("# ")]
    assert [h.split(":")[0][2:] for h in headings] == list(GROUP_TITLES.values())
    assert "76 module(s)" in headings[1]
    rows = [line for line in lines[1:] if line and not line.startswith("# ")]
    assert [row.split()[0] for row in rows] == list(NAMED_CONFIGS)
    mn04 = next(line for line in lines if line.startswith("mn04_e1_l "))
    assert "1.23 M" in mn04 and "8.03 G" in mn04 and "mn04_as_mAP_432.pt" in mn04
    assert mn04.split()[-1] == "offline"
    code, stdout, _ = run_cli(capsys, "list", "--group", "efficientat_hear")
    rows = [line for line in stdout.splitlines()[1:] if line and not line.startswith("# ")]
    assert code == 0 and len(rows) == 76 and rows[0].startswith("mn01_all_b_avg_max_time_pool ")


# --------------------------------------------------------------------------- tag


def test_tag_json_with_shipped_labels_and_fixture_weights(audio_dir, capsys, monkeypatch) -> None:
    weights = require_shared(REFERENCE / "mn04_seed1.pt")
    monkeypatch.setenv("HEAR_MN_OFFLINE", "1")  # the class list ships with the package
    names = [label.name for label in load_labels()]
    assert len(names) == NUM_CLASSES and names[0] == "Speech"

    code, stdout, stderr = run_cli(
        capsys,
        *("tag", audio_dir, "--model", MODEL, "--weights", weights),
        *("--json", "--top-k", "3", "--window", "0.5"),
    )
    assert code == 1 and "corrupt.wav" in stderr  # the broken files are reported, not fatal
    report = json.loads(stdout)
    files = {
        Path(entry["file"]).relative_to(audio_dir).as_posix(): entry for entry in report["files"]
    }
    assert set(files) == set(READABLE)
    assert {Path(f["file"]).name for f in report["failures"]} == set(BROKEN)
    stereo = files["stereo_44k.wav"]
    assert [(s["start_s"], s["end_s"]) for s in stereo["segments"]] == [
        (0.0, 0.5),
        (0.5, 1.0),
        (1.0, 1.5),
    ]
    model = create_model(MODEL, weights=weights, features="l")
    audio = torch.from_numpy(load_audio(audio_dir / "stereo_44k.wav", 32000))
    probs = torch.sigmoid(model.scene_embeddings(audio[16000:32000][None]))[0].numpy()
    segment = stereo["segments"][1]
    assert len(segment["tags"]) == 3
    top = np.argsort(-probs)[:3]
    assert [tag["index"] for tag in segment["tags"]] == top.tolist()
    assert [tag["label"] for tag in segment["tags"]] == [names[i] for i in top]
    np.testing.assert_allclose([t["score"] for t in segment["tags"]], probs[top], atol=1e-4)

    # The readable table: a heading per file and one line per tag.
    code, stdout, _ = run_cli(
        capsys, "tag", audio_dir / "tone_8k.ogg", "--model", MODEL, "--weights", weights
    )
    assert code == 0
    lines = stdout.strip().splitlines()
    assert lines[0].startswith(str(audio_dir / "tone_8k.ogg")) and len(lines) == 1 + 5
    assert lines[1].split()[:2] == ["0.00-1.00", "s"]
    assert any(name in lines[1] for name in names)


def test_tag_refuses_a_reordered_labels_file(tmp_path, capsys, monkeypatch) -> None:
    weights = require_shared(REFERENCE / "mn04_seed1.pt")
    monkeypatch.setenv("HEAR_MN_OFFLINE", "1")
    rows = SHIPPED_LABELS.read_text(encoding="utf-8").splitlines()
    body = [row.split(",", 1)[1] for row in rows[1:]]
    body[0], body[1] = body[1], body[0]  # renumbered: well formed, wrong names at logits 0, 1
    reordered = tmp_path / "reordered.csv"
    reordered.write_text("\n".join([rows[0]] + [f"{i},{b}" for i, b in enumerate(body)]))
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(16000, dtype=np.float32), 16000)
    code, stdout, stderr = run_cli(
        capsys, "tag", wav, "--model", MODEL, "--weights", weights, "--labels", reordered
    )
    assert code == 2 and stdout == ""
    assert str(reordered) in stderr and "index 0" in stderr and "AudioSet's order" in stderr
    assert "Traceback" not in stderr
    with pytest.raises(LabelsError, match="reordered"):
        load_labels(reordered)


# --------------------------------------------------------------------------- validate


def test_validate_passes_on_our_module(weights_env, capsys) -> None:
    weights = weights_env / get_config(MODEL).weights.file_name
    code, stdout, _ = run_cli(capsys, "validate", f"hear_mn.{MODEL}", "-m", weights)
    assert code == 0, stdout
    assert "FAIL" not in stdout and "SKIP" not in stdout
    assert stdout.strip().splitlines()[-1].startswith("validate passed")
    assert "every 50.00 ms" in stdout


BROKEN_MODULE = '''
"""A HEAR module with two bugs: float64 scene embeddings and uneven timestamp spacing."""
import torch


class Model(torch.nn.Module):
    sample_rate = 16000
    scene_embedding_size = 8
    timestamp_embedding_size = 8


def load_model(model_file_path=""):
    return Model()


def get_timestamp_embeddings(audio, model):
    n = audio.shape[1] // 1600 + 1
    times = torch.arange(n, dtype=torch.float32) ** 1.5 * {scale}
    embeddings = audio[:, :1, None].expand(audio.shape[0], n, 8).contiguous() * 0 + 1
    return embeddings, times.expand(audio.shape[0], n)


def get_scene_embeddings(audio, model):
    return torch.ones(audio.shape[0], 8, dtype=torch.{dtype})
'''


def test_validate_fails_on_a_broken_module(tmp_path, capsys, monkeypatch) -> None:
    (tmp_path / "cli_broken_hear.py").write_text(BROKEN_MODULE.format(scale=1.0, dtype="float64"))
    monkeypatch.syspath_prepend(str(tmp_path))
    code, stdout, _ = run_cli(capsys, "validate", "cli_broken_hear")
    assert code == 1
    failed = [line for line in stdout.splitlines() if line.startswith("FAIL")]
    assert any("spacing is not constant" in line for line in failed), stdout
    assert any("dtype torch.float64" in line for line in failed), stdout
    assert stdout.strip().splitlines()[-1].startswith("validate FAILED")

    # The same module fixed validates, also when given as a file path.
    fixed = tmp_path / "fixed.py"
    fixed.write_text(
        BROKEN_MODULE.format(scale=1.0, dtype="float32").replace(" ** 1.5 * 1.0", " * 100.0")
    )
    code, stdout, _ = run_cli(capsys, "validate", fixed)
    assert code == 0, stdout


def test_validate_reports_a_missing_function_and_bad_attributes(tmp_path, capsys) -> None:
    module = tmp_path / "half.py"
    module.write_text(textwrap.dedent(BROKEN_MODULE.format(scale=1.0, dtype="float32")))
    text = module.read_text()
    module.write_text(text.replace("def get_scene_embeddings", "def scene_embeddings"))
    code, stdout, _ = run_cli(capsys, "validate", module)
    assert code == 1 and "missing callable(s): get_scene_embeddings" in stdout
    assert "SKIP" in stdout

    module.write_text(text.replace("sample_rate = 16000", "sample_rate = 12345.0"))
    code, stdout, _ = run_cli(capsys, "validate", module)
    assert code == 1 and "sample_rate must be an int" in stdout


def test_validate_module_gives_the_results_as_data(tmp_path, capsys) -> None:
    """The validator from Python: one CheckResult per check, each also handed over at once,
    and nothing printed; an exception of the module under test keeps its traceback."""
    module = tmp_path / "broken_data.py"
    text = BROKEN_MODULE.format(scale=1.0, dtype="float64")
    module.write_text(text)
    seen = []
    results = validate_module(str(module), on_result=seen.append)
    assert results == seen and len(results) == 9
    assert [r.status for r in results[:4]] == [PASS] * 4 and results[2].detail == "Model"
    failed = [r.detail for r in results if r.status == FAIL]
    assert len(failed) == 5 and any("dtype torch.float64" in reason for reason in failed)
    assert capsys.readouterr() == ("", "")

    module.write_text(text.replace("return Model()", "raise RuntimeError('no weights')"))
    results = validate_module(str(module), model_file="w.pt")
    assert [(r.name, r.status) for r in results] == [
        (f"import {module}", PASS),
        ("HEAR API functions", PASS),
        ("load_model('w.pt')", FAIL),
        ("model attributes", SKIP),
        ("embeddings", SKIP),
    ]
    assert results[2].detail == "raised RuntimeError: no weights"
    assert "Traceback" in results[2].traceback and "no weights" in results[2].traceback


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["--version"], ["embed", "--help"], ["list", "--help"], ["export", "--help"]],
)
def test_help_and_version_do_not_import_torch(argv: list[str]) -> None:
    """Startup stays fast: torch (about a second to import) is loaded only to do work."""
    code = (
        "import sys\n"
        "from hear_mn import cli\n"
        f"status = cli.main({argv!r})\n"
        "assert status == 0, status\n"
        "heavy = sorted(m for m in ('torch', 'soundfile', 'soxr') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_default_threads_are_the_cores_this_process_may_use(monkeypatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    assert cli.default_threads() == 3


def test_threads_option_sets_torch_threads(
    weights_env, audio_dir, tmp_path, capsys, monkeypatch
) -> None:
    chosen = []
    monkeypatch.setattr(torch, "set_num_threads", chosen.append)
    source = audio_dir / "speech_16k.flac"
    assert (
        run_cli(capsys, "embed", source, "--model", MODEL, "--out", tmp_path, "--threads", "3")[0]
        == 0
    )
    monkeypatch.setattr(cli_common, "default_threads", lambda: 5)
    assert run_cli(capsys, "embed", source, "--model", MODEL, "--out", tmp_path / "b")[0] == 0
    assert chosen == [3, 5]


def test_tag_never_moves_its_engine_mid_job(audio_dir, capsys, monkeypatch) -> None:
    """hear-mn tag is a batch job: under backend auto, scene calls that are due to move to
    ONNX Runtime at once still run every file in torch (no export mid-job)."""
    pytest.importorskip("onnxruntime")
    import hear_mn.export
    from hear_mn.engines import ort

    def refused(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("a batch job exported its model mid-job")

    monkeypatch.setattr(ort, "EXPORT_FIXED_SECONDS", 0.0)
    monkeypatch.setattr(ort, "EXPORT_SECONDS_PER_PARAMETER", 0.0)
    monkeypatch.setattr(hear_mn.export, "onnx_bytes", refused)
    weights = require_shared(REFERENCE / "mn04_seed1.pt")
    monkeypatch.setenv("HEAR_MN_OFFLINE", "1")
    code, stdout, stderr = run_cli(
        capsys, *("tag", audio_dir, "--model", MODEL, "--weights", weights, "--json")
    )
    assert "exported" not in stderr
    assert code == 1 and "corrupt.wav" in stderr  # only the broken files fail
    assert len(json.loads(stdout)["files"]) == len(READABLE)
