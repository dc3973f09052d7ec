"""backend="onnxruntime": the MobileNets' backbone and taps in ONNX Runtime, the rest as with
torch; the same numbers (the reference fixtures' rule), batching, streaming and weight
changes."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from support.reference import (
    DATA,
    MN04_WEIGHTS,
    REFERENCE,
    assert_reference_fixture,
    assert_seed_system_fixture,
    randomize_batchnorm,
    reference_manifest,
    relative_error,
    require_shared,
)

import hear_mn
import hear_mn.kwmlp
import hear_mn.mn04_e1_l as hear_module

pytest.importorskip(
    "onnxruntime", reason="backend tests need onnxruntime (pip install -e '.[test]')"
)
from hear_mn.engines.ort import OnnxRuntime, set_backend  # noqa: E402

REFERENCE_CASES = ("mn04_e1_l", "mn04_e1_l_se_block", "mn04_clf_all_se_mels")
SEED_SYSTEM_SUBSET = reference_manifest(DATA / "seed_system")


def _audio(n: int, samples: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn(n, samples, generator=generator)


def _pair(name: str = "mn04_e1_l", **options: object) -> tuple[object, object]:
    """The same random-weight model with backend torch and onnxruntime."""
    torch.manual_seed(0)
    torch_model = randomize_batchnorm(
        hear_mn.create_model(name, pretrained=False, backend="torch", **options)
    )
    ort_model = hear_mn.create_model(name, pretrained=False, **options)
    ort_model.load_state_dict(torch_model.state_dict())
    return torch_model, set_backend(ort_model, "onnxruntime")


@pytest.mark.slow  # a backbone export per case; the subset's stay fast
@pytest.mark.parametrize("key", REFERENCE_CASES)
def test_reference_fixtures_through_onnxruntime(key: str) -> None:
    entry = reference_manifest(require_shared())[key]
    assert_reference_fixture(REFERENCE, key, entry, backend="onnxruntime")


@pytest.mark.parametrize("name", sorted(SEED_SYSTEM_SUBSET))
def test_seed_system_fixtures_through_onnxruntime(name: str) -> None:
    entry = SEED_SYSTEM_SUBSET[name]
    assert_seed_system_fixture(DATA / "seed_system", name, entry, backend="onnxruntime")


@pytest.mark.slow  # a backbone export per case
@pytest.mark.parametrize(
    ("name", "features"),
    [("mn04_e1_l", "e1_l_all_se_mels"), ("mn04_all_b", "b4_b11_mel_avgs"), ("mn01_e1_l", "clf_l")],
)
def test_same_embeddings_as_torch(name: str, features: str) -> None:
    torch_model, ort_model = _pair(name, features=features)
    clips = _audio(3, 40000, seed=1)
    assert (
        relative_error(
            ort_model.get_scene_embeddings(clips), torch_model.get_scene_embeddings(clips)
        )
        <= 1e-5
    )
    ours, ours_times = ort_model.get_timestamp_embeddings(clips)
    theirs, times = torch_model.get_timestamp_embeddings(clips)
    assert relative_error(ours, theirs) <= 1e-5
    assert torch.equal(ours_times, times)
    assert ort_model.runtime is not None and ort_model.output_settings()["backend"] == "onnxruntime"
    assert "backend" not in torch_model.output_settings()


def test_streaming_and_small_batches_through_onnxruntime() -> None:
    _, ort_model = _pair(window_batch_size=7)
    signal = _audio(1, 23000, seed=2)
    offline, _ = ort_model.get_timestamp_embeddings(signal)
    stream = hear_mn.stream(ort_model)
    parts = [stream.push(chunk)[0] for chunk in signal[0].split(3001)]
    parts.append(stream.close()[0])
    assert relative_error(torch.cat(parts), offline[0]) <= 1e-6


def test_the_graph_follows_weight_changes() -> None:
    torch_model, ort_model = _pair()
    clips = _audio(1, 9000, seed=3)
    before = ort_model.get_scene_embeddings(clips)
    torch.manual_seed(5)
    other = randomize_batchnorm(hear_mn.create_model("mn04_e1_l", pretrained=False))
    ort_model.load_state_dict(other.state_dict())
    after = ort_model.get_scene_embeddings(clips)
    assert not torch.allclose(before, after)
    assert relative_error(after, other.get_scene_embeddings(clips)) <= 1e-5


def test_a_pickled_model_keeps_its_backend() -> None:
    torch_model, ort_model = _pair()
    clips = _audio(2, 8000, seed=4)
    expected = ort_model.get_scene_embeddings(clips)  # compiles the session
    restored = pickle.loads(pickle.dumps(ort_model))  # sessions do not pickle: made again
    assert isinstance(restored.runtime, OnnxRuntime)
    assert relative_error(restored.get_scene_embeddings(clips), expected) <= 1e-6


def test_training_and_autograd_use_torch() -> None:
    torch_model, ort_model = _pair()
    clips = _audio(1, 6000, seed=6)
    with torch.enable_grad():
        embeddings = ort_model(clips)
    assert embeddings.requires_grad  # the torch modules ran, not the ONNX graph
    assert relative_error(embeddings.detach(), torch_model.get_scene_embeddings(clips)) <= 1e-5


def test_bad_backends_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'; choose one of auto, torch"):
        hear_module.load_model(pretrained=False, backend="tensorrt")
    with pytest.raises(
        ValueError, match="backend .onnxruntime. does not run kwmlp; it runs with backend=.torch."
    ):
        hear_mn.kwmlp.load_model(backend="onnxruntime")
    model = hear_module.load_model(pretrained=False, backend="onnxruntime")
    assert isinstance(model.runtime, OnnxRuntime)
    assert set_backend(model, "torch").runtime is None


def test_session_config_entries_are_merged_and_checked() -> None:
    """Entries override the shipped ones (threads do not spin); a model whose threads spin
    gives the same embeddings; values must be strings, as ONNX Runtime takes them."""
    spinning = OnnxRuntime(session_config={"session.intra_op.allow_spinning": "1"})
    assert spinning.session_config == {"session.intra_op.allow_spinning": "1"}
    assert OnnxRuntime().session_config == {"session.intra_op.allow_spinning": "0"}
    with pytest.raises(TypeError, match="maps ONNX Runtime config keys to strings"):
        OnnxRuntime(session_config={"session.intra_op.allow_spinning": 1})
    torch_model, ort_model = _pair()
    ort_model.runtime = spinning
    clips = _audio(2, 7000, seed=3)
    reference = torch_model.get_scene_embeddings(clips)
    assert relative_error(ort_model.get_scene_embeddings(clips), reference) <= 1e-5


def test_numpy_audio_and_threads() -> None:
    _, ort_model = _pair()
    clips = _audio(2, 7000, seed=7)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ort_model.get_scene_embeddings(clips.numpy())
    finally:
        torch.set_num_threads(previous)
    assert np.isfinite(one.numpy()).all()
    assert relative_error(one, ort_model.get_scene_embeddings(clips)) <= 1e-6


def test_the_command_line_takes_a_backend(tmp_path, capsys) -> None:
    import soundfile

    from hear_mn.cli import main

    audio = _audio(1, 40000, seed=8)[0].numpy()
    soundfile.write(tmp_path / "a.wav", audio, 32000)
    weights = str(require_shared(MN04_WEIGHTS))
    outputs = {}
    for backend in ("torch", "onnxruntime"):
        out = tmp_path / backend
        argv = ["embed", str(tmp_path / "a.wav"), "--model", "mn04_e1_l", "--weights", weights]
        assert main([*argv, "--backend", backend, "--out", str(out), "-q"]) == 0
        outputs[backend] = np.load(out / "a.wav.npz")["embedding"]
    assert relative_error(outputs["onnxruntime"], outputs["torch"]) <= 1e-5
    argv = ["embed", str(tmp_path / "a.wav"), "--model", "kwmlp", "--out", str(tmp_path / "k")]
    assert main([*argv, "--backend", "onnxruntime"]) == 2
    assert "does not run kwmlp; it runs with --backend torch" in capsys.readouterr().err


def test_the_default_live_stream_runs_in_onnxruntime_and_batches_in_torch() -> None:
    """backend "auto" (the default): hear_mn.stream's single windows go to ONNX Runtime, the
    batch calls stay torch (bit for bit), and each says which engine ran."""
    torch_model, _ = _pair()
    model = hear_mn.create_model("mn04_e1_l", pretrained=False)
    model.load_state_dict(torch_model.state_dict())
    assert model.backend == "auto" and hear_module.load_model(pretrained=False).backend == "auto"
    signal = _audio(1, 23000, seed=9)
    offline, _ = model.get_timestamp_embeddings(signal)
    assert torch.equal(offline, torch_model.get_timestamp_embeddings(signal)[0])
    assert "backend" not in model.output_settings()  # batch jobs: torch, as before
    stream = hear_mn.stream(model)
    parts = [stream.push(chunk)[0] for chunk in signal[0].split(1600)]
    parts.append(stream.close()[0])
    assert relative_error(torch.cat(parts), offline[0]) <= 1e-5
    assert stream.output_settings() == {**model.output_settings(), "backend": "onnxruntime"}
    assert hear_mn.stream(set_backend(model, "torch")).output_settings()["backend"] == "torch"
    explicit = hear_mn.stream(set_backend(model, "onnxruntime"))
    assert explicit.output_settings()["backend"] == "onnxruntime"
    assert hear_mn.stream(hear_mn.kwmlp.load_model()).output_settings()["backend"] == "torch"
    assert set_backend(hear_mn.kwmlp.load_model(), "auto").backend == "auto"


def _auto_pair(monkeypatch, fixed_seconds: float) -> tuple[object, object]:
    """A torch model and the same weights under backend "auto", whose scene jobs move to
    ONNX Runtime after ``fixed_seconds`` in torch (the export estimate, made small)."""
    from hear_mn.engines import ort

    monkeypatch.setattr(ort, "EXPORT_FIXED_SECONDS", fixed_seconds)
    monkeypatch.setattr(ort, "EXPORT_SECONDS_PER_PARAMETER", 0.0)
    torch_model, _ = _pair()
    model = hear_mn.create_model("mn04_e1_l", pretrained=False)
    model.load_state_dict(torch_model.state_dict())
    return torch_model, model


def test_auto_moves_scene_jobs_to_onnxruntime_once_they_paid_for_it(monkeypatch) -> None:
    """backend "auto": scene jobs start in torch (a short job never pays for an export) and
    move to ONNX Runtime once their time in torch reaches the estimated export; timestamps
    stay in torch, bit for bit; engines() says which runs what."""
    from hear_mn.engines import ort

    torch_model, model = _auto_pair(monkeypatch, fixed_seconds=3600.0)
    clips, signal = _audio(2, 32000, seed=11), _audio(1, 23000, seed=12)
    first = model.get_scene_embeddings(clips)
    assert torch.equal(first, torch_model.get_scene_embeddings(clips))
    assert model.engines() == {"timestamps": "torch", "scene": "torch", "live": "onnxruntime"}
    assert not model.__dict__.get("_compiled")  # nothing exported yet
    monkeypatch.setattr(ort, "EXPORT_FIXED_SECONDS", 0.05)  # an export estimate of 50 ms
    set_backend(model, "auto")
    for _ in range(200):
        if model.engines()["scene"] == "onnxruntime":
            break
        model.get_scene_embeddings(clips)
    assert model.engines()["scene"] == "onnxruntime"
    moved = model.get_scene_embeddings(clips)
    assert isinstance(model.runtime_for("scene"), OnnxRuntime)
    assert relative_error(moved, first) <= 1e-5
    offline, _ = model.get_timestamp_embeddings(signal)
    assert torch.equal(offline, torch_model.get_timestamp_embeddings(signal)[0])
    assert "backend" not in model.output_settings()  # outputs of either engine are reused
    restored = pickle.loads(pickle.dumps(model))
    assert restored.engines()["scene"] == "onnxruntime"
    assert relative_error(restored.get_scene_embeddings(clips), moved) <= 1e-6


def test_a_short_auto_job_stays_in_torch_and_chosen_backends_never_move(monkeypatch) -> None:
    torch_model, model = _auto_pair(monkeypatch, fixed_seconds=3600.0)
    clips = _audio(3, 16000, seed=13)
    for _ in range(3):
        assert torch.equal(
            model.get_scene_embeddings(clips), torch_model.get_scene_embeddings(clips)
        )
    assert model.engines()["scene"] == "torch"
    model.settle_engines()  # every job "auto" would move, moved now
    assert model.engines()["scene"] == "onnxruntime"
    for chosen, engine in (("torch", "torch"), ("onnxruntime", "onnxruntime")):
        set_backend(model, chosen)
        model.settle_engines()
        assert set(model.engines().values()) == {engine}


@pytest.mark.parametrize("moved_before", [False, True])
def test_a_batch_job_under_auto_runs_every_file_where_its_jobs_ran_at_its_start(
    monkeypatch, tmp_path, moved_before: bool
) -> None:
    """embed_files (also the CLI, Ray's driver, the evaluator and classifier features) fixes
    the engines at its start: its scene jobs never move during it, however long it runs (an
    export mid-job would cost a fresh process about 1 s, and a file's numbers must not depend
    on where in the job it came); a job already moved stays in its engine."""
    import soundfile

    from hear_mn.batch import embed_files

    torch_model, model = _auto_pair(monkeypatch, fixed_seconds=0.0)  # due at once
    if moved_before:
        model.get_scene_embeddings(_audio(1, 8000, seed=17))  # a call moves the due job
    audio = _audio(2, 16000, seed=14).numpy()
    for index, clip in enumerate(audio):
        soundfile.write(tmp_path / f"{index}.wav", clip, 32000, subtype="FLOAT")
    embed_files(sorted(tmp_path.glob("*.wav")), model, tmp_path / "out")
    engine = "onnxruntime" if moved_before else "torch"
    assert model.engines()["scene"] == engine
    assert model.engines()["live"] == "onnxruntime"  # a later live stream is not a batch job
    written = torch.from_numpy(
        np.stack([np.load(tmp_path / "out" / f"{i}.wav.npz")["embedding"] for i in (0, 1)])
    )
    expected = torch_model.get_scene_embeddings(torch.from_numpy(audio))
    if moved_before:
        assert relative_error(written, expected) <= 1e-5
    else:  # the job's time in torch was due for a move at once, yet it did not move
        assert torch.equal(written, expected)


def test_onnxruntime_sessions_follow_the_thread_count_of_each_call(monkeypatch) -> None:
    """Unless threads are given, each call's session has torch's thread count of that call
    (which hear_mn lowers on a busy machine): one export, one session per count."""
    made: list[int] = []
    original = OnnxRuntime._session

    def spy(self, ort, graph, threads):
        made.append(threads)
        return original(self, ort, graph, threads)

    monkeypatch.setattr(OnnxRuntime, "_session", spy)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user's count: hear_mn does not lower it
    torch_model, ort_model = _pair()
    clips = _audio(1, 16000, seed=15)
    expected = torch_model.get_scene_embeddings(clips)
    previous = torch.get_num_threads()
    try:
        for threads in (1, 2, 1, 2):
            torch.set_num_threads(threads)
            assert relative_error(ort_model.get_scene_embeddings(clips), expected) <= 1e-5
    finally:
        torch.set_num_threads(previous)
    assert made == [1, 2]
    pinned = OnnxRuntime(threads=1)
    ort_model.runtime = pinned
    ort_model.get_scene_embeddings(clips)
    assert made == [1, 2, 1]


def test_auto_moves_no_job_of_a_model_its_engine_cannot_run(monkeypatch) -> None:
    """A float64 model (benchmarks/precision_margin.py runs one) stays in torch under
    "auto", however long its jobs ran; back in float32 on the CPU the due job moves."""
    _, model = _auto_pair(monkeypatch, fixed_seconds=0.0)
    model.double()
    assert model.runtime_for("scene") is None
    assert model.engines() == {"timestamps": "torch", "scene": "torch", "live": "torch"}
    model.float()
    assert isinstance(model.runtime_for("scene"), OnnxRuntime)
    model.double()  # a job already moved runs in torch again while the engine cannot run it
    clips = _audio(1, 8000, seed=16).double()
    assert model.engines()["scene"] == "torch"
    model.float()
    assert model.engines()["scene"] == "onnxruntime"
    assert relative_error(model.get_scene_embeddings(clips.float()), model(clips.float())) <= 1e-5
