"""The Ray Data engine (``hear-mn embed --engine ray``, ``hear_mn.embed_dataset``).

Ray binds its servers to every interface, so every test that starts Ray runs it in a
loopback-only network namespace (``unshare -n``, then ``ip link set lo up``; needs root)
with its temporary folder under the test's folder, and checks that the namespace has no
interface but ``lo``. Skipped where ``ray`` is not installed (``pip install
'hear-mn[ray]'``; CI installs it) or no such namespace can be made.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from support import ROOT
from support.namespaces import in_network_namespace
from support.runs import save_random_checkpoint

from hear_mn import cli
from hear_mn.batch import MAX_PENDING_SAMPLES, length_groups, plan_embedding
from hear_mn.registry import create_model

sf = pytest.importorskip("soundfile")

MODEL = "mn04_e1_l"
RATE = 32000


def _ray_installed() -> bool:
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        return False
    return True


needs_ray = pytest.mark.skipif(
    not _ray_installed(), reason="ray[data] is not installed (pip install 'hear-mn[ray]')"
)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def ray_temp() -> Path:
    """Ray's temporary folder for one test: short (Ray's socket paths there must fit in 107
    bytes, which pytest's tmp_path does not leave room for), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="hear-mn-ray-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A random mn04 checkpoint."""
    path = tmp_path_factory.mktemp("weights") / "mn04_random.pt"
    return save_random_checkpoint(path, MODEL)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """20 audio files of a few lengths and rates (so that batching by length matters), in
    two folders, plus one corrupt file."""
    root = tmp_path_factory.mktemp("corpus")
    generator = np.random.default_rng(3)
    for index in range(20):
        folder = root / ("speech" if index % 2 else "music")
        folder.mkdir(exist_ok=True)
        rate = (32000, 16000, 44100)[index % 3]
        seconds = (6.0, 6.0, 5.5, 7.25)[index % 4]
        audio = 0.2 * generator.standard_normal(int(seconds * rate)).astype(np.float32)
        sf.write(folder / f"clip{index:02d}.wav", audio, rate)
    (root / "music" / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(40))
    return root


def _local_embed(
    corpus: Path, weights: Path, out: Path, *extra: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "hear_mn",
            "embed",
            str(corpus),
            "--model",
            MODEL,
            "--weights",
            str(weights),
            "--out",
            str(out),
            "--threads",
            "1",
            "--batch-size",
            "4",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )


def _same_outputs(left: Path, right: Path) -> list[str]:
    """Relative names of the .npz files in ``left``, after checking that ``right`` holds the
    same files with bitwise equal arrays."""
    names = sorted(p.relative_to(left).as_posix() for p in left.rglob("*.npz"))
    assert names == sorted(p.relative_to(right).as_posix() for p in right.rglob("*.npz"))
    for name in names:
        with np.load(left / name) as a, np.load(right / name) as b:
            assert sorted(a.files) == sorted(b.files), name
            for key in a.files:
                assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, (name, key)
                assert np.array_equal(a[key], b[key]), f"{name}: {key} differs"
    return names


def _failure_lines(stderr: str) -> list[str]:
    return sorted(line for line in stderr.splitlines() if "corrupt.wav" in line)


# --------------------------------------------------------------------------- without Ray


def test_length_groups_is_the_local_rule() -> None:
    """Full groups go at once, the rest by length at the end, and too many waiting samples
    flush every group (shortest first)."""
    lengths = [5, 7, 5, 5, 7, 9]
    groups = list(length_groups(range(6), lambda i: lengths[i], 2))
    assert groups == [[0, 2], [1, 4], [3], [5]]
    big = MAX_PENDING_SAMPLES // 2 + 1
    sizes = [big, 3, big]
    assert list(length_groups(range(3), lambda i: sizes[i], 8)) == [[1], [0, 2]]


def test_a_run_removes_what_a_killed_write_left(corpus, weights, tmp_path) -> None:
    """A process killed mid-write leaves its temporary file beside the output; the next
    run's plan removes those of its own outputs, and nothing else."""
    out = tmp_path / "out"
    stale = out / "music" / ".clip00.wav.npz.0123456789abcdef.tmp"
    unrelated = out / "music" / ".notes.txt.0123456789abcdef.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half an npz")
    unrelated.write_bytes(b"someone else's")
    model = create_model(MODEL, weights=weights)
    plan = plan_embedding([corpus], model, out)
    assert not stale.exists() and unrelated.exists()
    assert out / "music" / "clip00.wav.npz" in [job.output for job in plan.jobs]


def test_ray_is_not_imported_by_the_package_or_the_help() -> None:
    code = textwrap.dedent(
        """
        import sys, hear_mn, hear_mn.batch
        from hear_mn import cli
        try:
            cli.main(["embed", "--help"])
        except SystemExit:
            pass
        print("ray" in sys.modules)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_ray_options_need_the_ray_engine(corpus, tmp_path, capsys) -> None:
    code = cli.main(["embed", str(corpus), "--out", str(tmp_path / "o"), "--actors", "2"])
    assert code == 2
    assert "--actors work(s) with --engine ray only" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_ray_engine_without_ray_says_how_to_install(corpus, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    code = cli.main(["embed", str(corpus), "--out", str(tmp_path / "o"), "--engine", "ray"])
    assert code == 2
    error = capsys.readouterr().err
    assert "pip install 'hear-mn[ray]'" in error and "Traceback" not in error


# --------------------------------------------------------------------------- with Ray


@needs_ray
def test_cluster_by_address_matches_local_survives_a_killed_actor_and_resumes(
    corpus, weights, tmp_path, ray_temp
) -> None:
    """A cluster from ``ray start --head`` in a loopback-only namespace; the driver joins it
    by address. Scene and timestamp outputs equal the local engine's bit for bit (same
    batch size, one torch thread each), the corrupt file is a failure in both, the actor
    killed by PID mid-run is replaced and every output is written, and a rerun skips all."""
    local_scene, local_ts = tmp_path / "local_scene", tmp_path / "local_ts"
    for out, extra in ((local_scene, ()), (local_ts, ("--timestamps",))):
        result = _local_embed(corpus, weights, out, *extra)
        assert result.returncode == 1, result.stderr  # the corrupt file
    ray_scene, ray_ts = tmp_path / "ray_scene", tmp_path / "ray_ts"
    embed = [
        str(corpus),
        "--model",
        MODEL,
        "--weights",
        str(weights),
        "--threads",
        "1",
        "--batch-size",
        "4",
        "--actors",
        "1",
        "--threads-per-actor",
        "1",
    ]
    jobs = {
        "timestamps": ["--out", str(ray_ts), "--timestamps"],
        "scene": ["--out", str(ray_scene), "--parquet", str(tmp_path / "rows")],
        "rerun": ["--out", str(ray_scene)],
    }
    arguments = {"embed": embed, "jobs": jobs, "kill": "timestamps", "temp_dir": str(ray_temp)}
    work = tmp_path / "cluster"
    work.mkdir()
    run = in_network_namespace(
        [
            sys.executable,
            str(ROOT / "tests" / "support" / "ray_cluster_job.py"),
            str(work),
            json.dumps(arguments),
        ],
        cwd=ROOT,
    )
    assert (work / "result.json").exists(), run.stdout + run.stderr
    result = json.loads((work / "result.json").read_text())
    assert result["start"]["code"] == 0, result["start"]["output"]
    # Nothing can be reached from outside: the namespace has no interface but loopback.
    assert result["interfaces"] == ["lo"]
    assert result["listening_with_cluster"], "the cluster should be listening on loopback"
    for address in result["listening_with_cluster"]:
        host = address.rsplit(":", 1)[0]
        # 127.x, IPv4-mapped 127.x, ::1, or every interface (0.0.0.0, ::: loopback alone here).
        loopback = host.startswith(("127.", "::ffff:127.")) or host == "::1"
        assert loopback or host in ("0.0.0.0", "::"), address
    for name, job in result["jobs"].items():
        assert job["code"] == 1, f"{name}: {job['stderr']}"  # the corrupt file, as locally
    timestamps = result["jobs"]["timestamps"]
    assert timestamps["killed"], "the actor was not killed mid-run (the job ended first?)"
    assert timestamps["killed"][0]["outputs_then"] < 20
    assert "embedded 20 file(s)" in timestamps["stdout"]
    assert len(_same_outputs(local_ts, ray_ts)) == 20
    assert len(_same_outputs(local_scene, ray_scene)) == 20
    assert not [p for p in ray_ts.rglob("*") if p.name.startswith(".")], "temporary files left"
    local_failures = _failure_lines(_local_embed(corpus, weights, local_scene).stderr)
    assert _failure_lines(result["jobs"]["scene"]["stderr"]) == local_failures
    assert local_failures and "not a readable audio file" in local_failures[0]
    rerun = result["jobs"]["rerun"]
    assert "embedded 0 file(s)" in rerun["stdout"]
    assert "skipped 20 file(s)" in rerun["stdout"]
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "rows")
    assert table.num_rows == 21 and set(table.column_names) >= {"path", "embedding", "error"}
    errors = [e for e in table.column("error").to_pylist() if e]
    assert len(errors) == 1 and "corrupt.wav" in errors[0]


EMBED_DATASET_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np, ray, torch
    import hear_mn
    from hear_mn.registry import create_model

    corpus, weights, temp, out = sys.argv[1:5]
    ray.init(_temp_dir=temp, include_dashboard=False, num_cpus=2)
    model = create_model("mn04_e1_l", weights=weights)
    results = {}
    for label, inputs in (
        ("directory", corpus),
        ("glob", corpus + "/**/clip*.wav"),
        ("files", ray.data.read_binary_files(corpus, include_paths=True)),
    ):
        ds = hear_mn.embed_dataset(inputs, model, batch_size=4, actors=1, timestamps=label == "glob")
        rows = ds.take_all()
        results[label] = {
            r["path"]: {"error": r["error"], "shape": list(np.asarray(r["embedding"]).shape)}
            for r in rows
        }
        if label == "directory":
            for r in rows:
                if not r["error"]:
                    np.save(out + "/" + r["path"].replace("/", "_") + ".npy", r["embedding"])
            ds.write_parquet(out + "/parquet")
    print(json.dumps(results))
    """
)


@needs_ray
def test_embed_dataset_local_ray(corpus, weights, tmp_path, ray_temp) -> None:
    """``hear_mn.embed_dataset`` with Ray started in the process: a directory, a glob and a
    Dataset of file contents give a row per file (an error row for the corrupt one), and the
    directory's scene embeddings equal the local engine's bit for bit."""
    out = tmp_path / "rows"
    out.mkdir()
    temp = ray_temp
    env = {**os.environ, "HOME": str(tmp_path), "RAY_USAGE_STATS_ENABLED": "0"}
    run = in_network_namespace(
        [
            sys.executable,
            "-c",
            EMBED_DATASET_SCRIPT,
            str(corpus),
            str(weights),
            str(temp),
            str(out),
        ],
        env=env,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    results = json.loads(run.stdout.strip().splitlines()[-1])
    audio = sorted(str(p) for p in corpus.rglob("*.wav"))
    for label in ("directory", "files"):
        assert sorted(results[label]) == audio, label
        errors = {path for path, row in results[label].items() if row["error"]}
        assert errors == {str(corpus / "music" / "corrupt.wav")}, label
        assert all(row["shape"] == [911] for p, row in results[label].items() if p not in errors)
    assert len(results["glob"]) == 20
    assert all(
        len(row["shape"]) == 2 and row["shape"][1] == 911 for row in results["glob"].values()
    )
    local = tmp_path / "local"
    _local_embed(corpus, weights, local)
    for npz in local.rglob("*.npz"):
        source = corpus / npz.relative_to(local).as_posix()[: -len(".npz")]
        ours = np.load(out / (str(source).replace("/", "_") + ".npy"))
        with np.load(npz) as reference:
            assert np.array_equal(ours, reference["embedding"]), npz.name


EVALUATE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import ray, torch
    import hear_mn
    from hear_mn.engines.ray_data import RayOptions

    tasks, temp, out = sys.argv[1:4]
    torch.set_num_threads(1)
    ray.init(_temp_dir=temp, include_dashboard=False, num_cpus=2)
    options = RayOptions(actors=1, threads_per_actor=1, quiet=True)
    results = hear_mn.evaluate(
        tasks, "kwmlp", out=out, ray_options=options, grid="faster", grid_points=1, progress=False
    )
    print(json.dumps({task: report["test"] for task, report in results.items()}))
    """
)


@needs_ray
def test_evaluate_embeds_on_ray(tmp_path, ray_temp) -> None:
    """``hear_mn.evaluate`` with the Ray engine writes the local engine's embeddings, bit for
    bit (same batches, one thread), and so gives the same scores."""
    from support import hear_tasks

    tasks = tmp_path / "tasks"
    hear_tasks.make_scene_task(tasks, (16000,))
    hear_tasks.make_event_task(tasks, (16000,))
    env = {**os.environ, "HOME": str(tmp_path), "RAY_USAGE_STATS_ENABLED": "0"}
    out = tmp_path / "ray"
    run = in_network_namespace(
        [sys.executable, "-c", EVALUATE_SCRIPT, str(tasks), str(ray_temp), str(out)], env=env
    )
    assert run.returncode == 0, run.stderr[-4000:]
    on_ray = json.loads(run.stdout.strip().splitlines()[-1])
    torch.set_num_threads(1)
    import hear_mn

    local = hear_mn.evaluate(
        tasks, "kwmlp", out=tmp_path / "local", grid="faster", grid_points=1, progress=False
    )
    assert on_ray == {task: report["test"] for task, report in local.items()}
    ours = sorted(p.relative_to(out) for p in out.rglob("*.embedding.npy"))
    assert len(ours) == 36
    assert ours == sorted(
        p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.embedding.npy")
    )
    for name in ours:
        assert np.array_equal(np.load(out / name), np.load(tmp_path / "local" / name)), name


@needs_ray
def test_a_ray_run_says_nothing_but_its_summary(weights, tmp_path, ray_temp) -> None:
    """A successful ``--engine ray`` run prints its summary and nothing from Ray: no
    error-level core line about constructor arguments in the object store (Ray Data passes
    its own state to every actor that way; a false alarm for a pool whose references Ray
    Data holds), no warning that the local IP could not be found through a public DNS
    address (there is no network here), no log-level notice. Ray's own lines are shown
    with -v instead."""
    clips = tmp_path / "clips"
    clips.mkdir()
    for index in range(3):
        sf.write(clips / f"c{index}.wav", np.full(RATE, 0.01 * index, np.float32), RATE)
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "RAY_TMPDIR": str(ray_temp),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("RAY_BACKEND_LOG_LEVEL", None)
    command = [sys.executable, "-m", "hear_mn", "embed", str(clips), "--model", MODEL]
    command += ["--weights", str(weights), "--engine", "ray", "--actors", "1"]
    run = in_network_namespace([*command, "--out", str(tmp_path / "out")], env=env, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "embedded 3 file(s)" in run.stdout
    assert run.stderr == "", run.stderr
    verbose = [*command[:3], "-v", *command[3:], "--out", str(tmp_path / "again")]
    shown = in_network_namespace(verbose, env=env, cwd=ROOT)
    assert shown.returncode == 0, shown.stderr[-4000:]
    assert "hear-mn: INFO: ray: " in shown.stderr  # Ray's start-up lines, for whoever asks
    assert "core_worker" not in shown.stderr  # the false alarm is not raised at all
