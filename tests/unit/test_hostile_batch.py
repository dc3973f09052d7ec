"""Hostile cases for batch embedding (issue 21, items 2, 4, 6, 12, 13 and 15's Ray count).

Changed inputs, unreadable folders, damaged outputs, symbolic link loops, long names,
Ctrl-C inside a write, Ctrl-C on Ray, and what an output's numbers depend on. Runs the
command line in-process on a few short generated files with a random mn04 checkpoint in
``$HEAR_MN_WEIGHTS_DIR`` (nothing is downloaded).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from support.runs import run_cli

from hear_mn import audio_io
from hear_mn.atomic import atomic_write, remove_stale_temporaries
from hear_mn.batch import embed_files
from hear_mn.registry import create_model, get_config

sf = pytest.importorskip("soundfile")

MODEL = "mn04_e1_l"
RATE = 16000
# One file per forward pass: outputs that do not depend on other files, bit for bit.
ALONE = ("--batch-size", "1")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model(MODEL, pretrained=False)


def _noise(seed: int, seconds: float = 0.5) -> np.ndarray:
    return (0.2 * np.random.default_rng(seed).standard_normal(int(seconds * RATE))).astype(
        np.float32
    )


def _folder(root: Path, count: int = 3) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        sf.write(root / f"clip{index}.wav", _noise(index), RATE)
    return root


def _embedding(path: Path) -> np.ndarray:
    with np.load(path) as data:
        return data["embedding"]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*") if p.is_file())


# --------------------------------------------------------------------------- item 2


def test_a_replaced_input_is_recomputed_even_with_its_old_size_and_time(
    weights_env, tmp_path, capsys
) -> None:
    """Other audio of the same size under the old modification time is still another
    input: its output is recomputed (and the run says so); the unchanged file is reused."""
    inputs, out = _folder(tmp_path / "in", 2), tmp_path / "out"
    assert run_cli(capsys, "embed", inputs, "--model", MODEL, "--out", out)[0] == 0
    target = inputs / "clip0.wav"
    before = target.stat()
    old = _embedding(out / "clip0.wav.npz")
    sf.write(target, _noise(99), RATE)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert target.stat().st_size == before.st_size
    code, stdout, _ = run_cli(capsys, "embed", inputs, "--model", MODEL, "--out", out)
    assert code == 0
    assert "embedded 1 file(s)" in stdout and "skipped 1 file(s)" in stdout
    assert "changed since" in stdout
    new = _embedding(out / "clip0.wav.npz")
    assert not np.array_equal(new, old)
    fresh = tmp_path / "fresh"
    run_cli(capsys, "embed", target, "--model", MODEL, "--out", fresh)
    assert np.array_equal(new, _embedding(fresh / "clip0.wav.npz"))
    with np.load(out / "clip0.wav.npz") as data:
        record = json.loads(str(data["settings"]))["input"]
    assert record["size"] == before.st_size and len(record["sha256"]) == 64


def test_an_input_touched_but_not_changed_is_reused(model, tmp_path) -> None:
    inputs, out = _folder(tmp_path / "in", 1), tmp_path / "out"
    embed_files([inputs], model, out)
    os.utime(inputs / "clip0.wav", ns=(1, 1))
    again = embed_files([inputs], model, out)
    assert len(again.resumed) == 1 and not again.written


def test_outputs_that_record_no_input_are_recomputed_not_trusted(model, tmp_path) -> None:
    """An output of the previous version (same settings, no record of its input) cannot
    show that it belongs to today's file, so it is recomputed, not skipped nor refused."""
    inputs, out = _folder(tmp_path / "in", 2), tmp_path / "out"
    embed_files([inputs], model, out)
    output = out / "clip1.wav.npz"
    with np.load(output) as data:
        arrays = {key: data[key] for key in data.files}
    settings = json.loads(str(arrays["settings"]))
    del settings["input"]
    arrays["settings"] = np.array(json.dumps(settings, sort_keys=True))
    audio_io.save_npz(output, **arrays)
    report = embed_files([inputs], model, out)
    assert report.written == [output] and report.resumed == [out / "clip0.wav.npz"]
    assert [path for path, _ in report.recomputed] == [output]
    assert "records no fingerprint of its input" in report.recomputed[0][1]


# --------------------------------------------------------------------------- item 4


def _scan_as_nobody(folder: Path) -> dict:
    """scan_audio_inputs(folder) in a forked child that runs as the user nobody (root reads
    mode-000 folders, so the check needs another user)."""
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            scan = audio_io.scan_audio_inputs([folder])
            result = {
                "files": [str(p) for p, _ in scan.files],
                "unreadable": [[str(p), why] for p, why in scan.unreadable],
            }
        except BaseException as error:  # noqa: BLE001 (reported to the parent)
            result = {"error": f"{type(error).__name__}: {error}"}
        os.write(write, json.dumps(result).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    os.waitpid(child, 0)
    return json.loads(text)


@pytest.mark.skipif(not hasattr(os, "fork") or os.geteuid() != 0, reason="needs root to switch")
def test_an_unreadable_sub_folder_is_found_by_a_real_scan(tmp_path) -> None:
    base = Path(os.path.realpath("/tmp")) / f"hear-mn-perm-{os.getpid()}"
    try:
        folder = _folder(base / "in", 1)
        locked = folder / "locked"
        locked.mkdir()
        sf.write(locked / "hidden.wav", _noise(5), RATE)
        for path in (base, folder):
            path.chmod(0o755)
        (folder / "clip0.wav").chmod(0o644)
        locked.chmod(0)
        result = _scan_as_nobody(folder)
    finally:
        if locked.exists():
            locked.chmod(0o755)
        for path in sorted(base.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        base.rmdir()
    assert result.get("error") is None, result
    assert result["files"] == [str(folder / "clip0.wav")]
    assert len(result["unreadable"]) == 1
    assert result["unreadable"][0][0] == str(locked)
    assert "Permission denied" in result["unreadable"][0][1]


def test_an_unreadable_sub_folder_is_a_failed_input(
    weights_env, tmp_path, capsys, monkeypatch
) -> None:
    folder = _folder(tmp_path / "in", 2)
    locked = folder / "locked"
    locked.mkdir()
    real_scandir = os.scandir

    def scandir(path=".", *args):
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(locked))
        return real_scandir(path, *args)

    monkeypatch.setattr(os, "scandir", scandir)
    code, stdout, stderr = run_cli(
        capsys, "embed", folder, "--model", MODEL, "--out", tmp_path / "o"
    )
    assert code == 1 and "embedded 2 file(s)" in stdout
    assert f"{locked}: cannot read this folder" in stderr and "Permission denied" in stderr


def test_an_unreadable_input_folder_alone_says_why(
    weights_env, tmp_path, capsys, monkeypatch
) -> None:
    folder = _folder(tmp_path / "in", 1)
    real_scandir = os.scandir

    def scandir(path=".", *args):
        if os.fspath(path) == str(folder):
            raise PermissionError(13, "Permission denied", str(folder))
        return real_scandir(path, *args)

    monkeypatch.setattr(os, "scandir", scandir)
    code, _, stderr = run_cli(capsys, "embed", folder, "--model", MODEL, "--out", tmp_path / "o")
    assert code == 2 and f"{folder}: cannot read this folder (Permission denied)" in stderr


# --------------------------------------------------------------------------- item 12


def test_a_truncated_output_is_recomputed_with_a_note(weights_env, tmp_path, capsys) -> None:
    inputs, out = _folder(tmp_path / "in", 2), tmp_path / "out"
    assert run_cli(capsys, "embed", inputs, "--model", MODEL, "--out", out, *ALONE)[0] == 0
    damaged = out / "clip1.wav.npz"
    good = _embedding(damaged)
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    code, stdout, stderr = run_cli(capsys, "embed", inputs, "--model", MODEL, "--out", out, *ALONE)
    assert code == 0, stderr
    assert "embedded 1 file(s)" in stdout and "skipped 1 file(s)" in stdout
    assert f"{damaged}: cannot be read" in stdout and "Traceback" not in stderr
    assert np.array_equal(_embedding(damaged), good)


def test_a_symlink_loop_is_one_failure_and_the_rest_is_embedded(
    weights_env, tmp_path, capsys
) -> None:
    folder = _folder(tmp_path / "in", 2)
    (folder / "loop.wav").symlink_to("loop.wav")
    (folder / "ping.wav").symlink_to("pong.wav")
    (folder / "pong.wav").symlink_to("ping.wav")
    direct = tmp_path / "direct.wav"
    direct.symlink_to(direct.name)
    out = tmp_path / "o"
    code, stdout, stderr = run_cli(capsys, "embed", folder, direct, "--model", MODEL, "--out", out)
    assert code == 1, stderr
    assert "embedded 2 file(s)" in stdout and "failed for 4 file(s)" in stderr
    for name in ("loop.wav", "ping.wav", "pong.wav"):
        assert f"{folder / name}: " in stderr
    assert f"{direct}: " in stderr and "symbolic link" in stderr and "Traceback" not in stderr
    assert sorted(p.name for p in out.rglob("*.npz")) == ["clip0.wav.npz", "clip1.wav.npz"]


def test_a_long_legal_name_gets_its_output(weights_env, tmp_path, capsys) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    name = "n" * 229 + ".wav"  # 233 characters; its output name has 237
    sf.write(folder / name, _noise(1), RATE)
    out = tmp_path / "o"
    code, stdout, stderr = run_cli(capsys, "embed", folder, "--model", MODEL, "--out", out)
    assert code == 0, stderr
    assert (out / (name + ".npz")).is_file() and not _leftovers(out)


def test_temporary_names_stay_within_the_name_limit_and_are_cleaned_up(
    tmp_path, monkeypatch
) -> None:
    target = tmp_path / ("é" * 120 + ".npz")  # 244 bytes in UTF-8
    atomic_write(target, b"x")
    assert target.read_bytes() == b"x" and not _leftovers(tmp_path)
    temporaries = []

    def replace_interrupted(source, destination):
        temporaries.append(Path(source).name)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", replace_interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, b"y")
    monkeypatch.undo()
    assert len(os.fsencode(temporaries[0])) <= 255 and not _leftovers(tmp_path)
    (tmp_path / temporaries[0]).write_bytes(b"what a killed writer left")
    assert remove_stale_temporaries([target]) == 1 and not _leftovers(tmp_path)


# --------------------------------------------------------------------------- item 13


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


INTERRUPTIONS = {
    # inside a member of the zip archive, while numpy writes an array
    "array": ("numpy.lib.format.write_array", _interrupt),
    # while the zip member is being closed (its writing handle still open)
    "member close": ("zipfile._ZipWriteFile.close", _interrupt),
    # after the bytes went to the temporary file
    "fsync": ("os.fsync", _interrupt),
    # at the rename over the output
    "replace": ("os.replace", _interrupt),
}


@pytest.mark.parametrize("where", sorted(INTERRUPTIONS))
def test_ctrl_c_inside_an_output_write_exits_130_and_leaves_no_temporary(
    weights_env, tmp_path, capsys, monkeypatch, where
) -> None:
    """KeyboardInterrupt raised at several points of the second output's write."""
    folder, out = _folder(tmp_path / "in", 3), tmp_path / "out"
    target, replacement = INTERRUPTIONS[where]
    module_name, _, attribute = target.rpartition(".")
    owner = (
        zipfile._ZipWriteFile
        if "zipfile" in module_name
        else __import__(module_name, fromlist=["_"])
    )
    original = getattr(owner, attribute)
    fired = []

    def interrupted_once_one_output_exists(*args, **kwargs):
        if not fired and any(out.rglob("*.npz")):
            fired.append(True)
            return replacement(*args, **kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, attribute, interrupted_once_one_output_exists)
    code, _, stderr = run_cli(
        capsys, "embed", folder, "--model", MODEL, "--out", out, "--batch-size", "1"
    )
    assert fired and code == 130, stderr
    assert "Traceback" not in stderr and "ZIP" not in stderr
    saved = sorted(out.rglob("*.npz"))
    assert len(saved) == 1 and "interrupted; 1 output(s) were saved" in stderr
    assert not _leftovers(out)
    assert _embedding(saved[0]).shape == (911,)


@pytest.fixture
def python_handles_ctrl_c():
    """Python's own SIGINT handler for the test: a test run started with SIGINT ignored (a
    background job of a non-interactive shell is) would otherwise never see the signal."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_real_ctrl_c_inside_a_write_is_held_until_the_output_is_whole(
    weights_env, tmp_path, capsys, monkeypatch, python_handles_ctrl_c
) -> None:
    """SIGINT delivered while numpy writes an array: the output being written is finished
    and counted, then the run stops with 130."""
    folder, out = _folder(tmp_path / "in", 3), tmp_path / "out"
    original = np.lib.format.write_array
    calls = {"n": 0}

    def write_array(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            signal.raise_signal(signal.SIGINT)
        return original(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", write_array)
    code, _, stderr = run_cli(
        capsys, "embed", folder, "--model", MODEL, "--out", out, "--batch-size", "1"
    )
    assert code == 130, stderr
    saved = sorted(out.rglob("*.npz"))
    assert len(saved) == 1 and "interrupted; 1 output(s) were saved" in stderr
    assert not _leftovers(out) and _embedding(saved[0]).shape == (911,)


# --------------------------------------------------------------------------- item 15 (Ray)


def test_ctrl_c_on_ray_counts_the_outputs_the_actors_wrote(
    weights_env, tmp_path, capsys, monkeypatch
) -> None:
    """Actors write outputs before their rows reach the driver; an interrupted run counts
    what is on disk, not the rows it had received."""
    from hear_mn.engines import ray_data

    folder, out = _folder(tmp_path / "in", 5), tmp_path / "out"

    def run_plan(plan, model, options, **kwargs):
        for job in plan.jobs[:3]:  # written by actors, no row received yet
            audio_io.save_npz(job.output, embedding=np.zeros(3, np.float32))
        raise KeyboardInterrupt
        yield  # a generator, as the real one

    monkeypatch.setattr(ray_data, "run_plan", run_plan)
    code, _, stderr = run_cli(
        capsys, "embed", folder, "--model", MODEL, "--out", out, "--engine", "ray"
    )
    assert code == 130, stderr
    assert "interrupted; 3 output(s) were saved" in stderr


# --------------------------------------------------------------------------- item 6


def test_what_an_output_depends_on(model, tmp_path) -> None:
    """With --batch-size 1 an output depends on its own file only: bitwise the same alone
    or among other files. In a batch, its partners can change the last bits (the
    convolution kernels are chosen by the batch's shape), within 1e-6 of its largest
    value; the same partners give the same bits."""
    alone = _folder(tmp_path / "alone", 1)
    crowd = _folder(tmp_path / "crowd", 4)
    outputs = {}
    for label, folder, batch in (
        ("alone", alone, 1),
        ("crowd 1", crowd, 1),
        ("crowd 8", crowd, 8),
        ("crowd 8 again", crowd, 8),
    ):
        out = tmp_path / label.replace(" ", "_")
        embed_files([folder], model, out, batch_size=batch, timestamps=True)
        outputs[label] = _embedding(out / "clip0.wav.npz")
    assert np.array_equal(outputs["alone"], outputs["crowd 1"])
    assert np.array_equal(outputs["crowd 8"], outputs["crowd 8 again"])
    scale = float(np.abs(outputs["alone"]).max())
    assert float(np.abs(outputs["crowd 8"] - outputs["alone"]).max()) <= 1e-6 * scale


INTERRUPT_RAY_SCRIPT = """
import json, signal, subprocess, sys, time
from pathlib import Path

command, out = json.loads(sys.argv[1]), Path(sys.argv[2])
# Ctrl-C must reach the command even where this test run was started with SIGINT ignored
# (a background job of a non-interactive shell is), which a child would inherit.
job = subprocess.Popen(
    command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
)
deadline = time.monotonic() + 300
while time.monotonic() < deadline and job.poll() is None and len(list(out.rglob("*.npz"))) < 3:
    time.sleep(0.02)
job.send_signal(signal.SIGINT)
_, stderr = job.communicate(timeout=120)
saved = len(list(out.rglob("*.npz")))
left = [p.name for p in out.rglob(".*")]
print(json.dumps({"code": job.returncode, "stderr": stderr, "saved": saved, "left": left}))
"""


@pytest.mark.slow  # starts a Ray cluster
def test_ctrl_c_on_a_real_ray_run_counts_what_is_on_disk(random_weights, tmp_path) -> None:
    """Ray started by the command (in a loopback-only namespace, as in test_ray_engine.py),
    SIGINT once outputs appear: exit 130, and the count said is the count on disk."""
    from support.namespaces import in_network_namespace

    pytest.importorskip(
        "ray.data", reason="ray[data] is not installed (pip install 'hear-mn[ray]')"
    )
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for index in range(60):
        sf.write(corpus / f"clip{index:02d}.wav", _noise(index, seconds=4.0), RATE)
    out = tmp_path / "out"
    command = [
        *(sys.executable, "-m", "hear_mn", "embed", str(corpus), "--model", MODEL),
        *("--weights", str(random_weights / get_config(MODEL).weights.file_name)),
        *("--out", str(out), "--engine", "ray", "--actors", "1", "--batch-size", "1"),
    ]
    ray_temp = Path(tempfile.mkdtemp(prefix="hear-mn-ray-", dir="/tmp"))
    env = {**os.environ, "RAY_TMPDIR": str(ray_temp), "RAY_USAGE_STATS_ENABLED": "0"}
    try:
        run = in_network_namespace(
            [sys.executable, "-c", INTERRUPT_RAY_SCRIPT, json.dumps(command), str(out)], env=env
        )
    finally:
        shutil.rmtree(ray_temp, ignore_errors=True)
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["code"] == 130, result["stderr"][-4000:]
    assert 3 <= result["saved"] < 60
    assert f"interrupted; {result['saved']} output(s) were saved" in result["stderr"]
    assert result["left"] == []
