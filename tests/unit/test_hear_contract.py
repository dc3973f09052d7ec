"""The HEAR contract of the MobileNet modules: shapes, dtypes, timestamps, devices, bad input."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from support.reference import randomize_batchnorm, relative_error

import hear_mn.mn04_e1_l as hear_module
from hear_mn.hear import get_scene_embeddings, get_timestamp_embeddings
from hear_mn.models.efficientat.efficientat_embedder import MobileNetEmbedder


@pytest.fixture(scope="module")
def model() -> MobileNetEmbedder:
    torch.manual_seed(0)
    built = hear_module.load_model(pretrained=False)
    return randomize_batchnorm(built)


def _audio(n_sounds: int, n_samples: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(n_sounds, n_samples, generator=generator)


def test_attributes(model: MobileNetEmbedder) -> None:
    assert model.sample_rate == 32000
    assert model.scene_embedding_size == model.timestamp_embedding_size == 911


@pytest.mark.parametrize("n_samples", [1, 2, 159, 1599, 1600, 2560, 2561, 5120, 32000, 33601])
def test_timestamps_for_any_length(model: MobileNetEmbedder, n_samples: int) -> None:
    embeddings, timestamps = get_timestamp_embeddings(_audio(2, n_samples), model)
    n_timestamps = n_samples // 1600 + 1
    assert embeddings.shape == (2, n_timestamps, 911)
    assert timestamps.shape == (2, n_timestamps)
    assert embeddings.dtype == timestamps.dtype == torch.float32
    assert torch.isfinite(embeddings).all()
    expected = torch.arange(n_timestamps, dtype=torch.float32) * 50.0
    assert torch.equal(timestamps[0], expected) and torch.equal(timestamps[1], expected)


@pytest.mark.parametrize("n_samples", [1, 2, 100, 513, 514, 2560, 320000, 320001, 410000])
def test_scene_for_any_length(model: MobileNetEmbedder, n_samples: int) -> None:
    scene = get_scene_embeddings(_audio(1, n_samples), model)
    assert scene.shape == (1, 911)
    assert scene.dtype == torch.float32
    assert torch.isfinite(scene).all()


def test_clip_does_not_depend_on_batch_mates(model: MobileNetEmbedder) -> None:
    clips = _audio(3, 40000, seed=1)
    alone_scene = get_scene_embeddings(clips[1:2], model)
    batch_scene = get_scene_embeddings(clips, model)[1:2]
    alone_ts, _ = get_timestamp_embeddings(clips[1:2], model)
    batch_ts, _ = get_timestamp_embeddings(clips, model)
    scale = alone_scene.abs().max()
    assert (alone_scene - batch_scene).abs().max() <= 1e-6 * scale
    assert (alone_ts - batch_ts[1:2]).abs().max() <= 1e-6 * alone_ts.abs().max()


def test_window_chunking_does_not_change_results(model: MobileNetEmbedder) -> None:
    clips = _audio(2, 50000, seed=2)
    reference, _ = get_timestamp_embeddings(clips, model)
    small = hear_module.load_model(pretrained=False, window_batch_size=7)
    small.load_state_dict(model.state_dict())
    chunked, _ = get_timestamp_embeddings(clips, small)
    assert relative_error(chunked, reference) <= 1e-6


def test_windows_are_processed_in_bounded_chunks(model: MobileNetEmbedder, monkeypatch) -> None:
    bounded = hear_module.load_model(pretrained=False, window_batch_size=16)
    seen: list[int] = []
    original = bounded.embed_mels

    def spy(batch: torch.Tensor, job: str) -> torch.Tensor:
        seen.append(batch.shape[0])
        return original(batch, job)

    monkeypatch.setattr(bounded, "embed_mels", spy)
    spans: list[tuple[int, int]] = []
    sliding = bounded.frontend.sliding_windows

    def span_spy(signal: torch.Tensor, count: int, size: int, hop: int) -> torch.Tensor:
        spans.append((signal.shape[0], count))
        return sliding(signal, count, size, hop)

    monkeypatch.setattr(bounded.frontend, "sliding_windows", span_spy)
    embeddings, _ = get_timestamp_embeddings(_audio(3, 32000 * 3), bounded)
    assert embeddings.shape[1] == 61
    assert max(seen) <= 16
    assert sum(seen) == 3 * 61
    # Each batch reads only the samples its windows cover, wherever it lies in the clip.
    assert spans and all(length == (count - 1) * 1600 + 5120 for length, count in spans)


def test_cpu_results_are_deterministic(model: MobileNetEmbedder) -> None:
    clips = _audio(2, 20000, seed=3)
    first, _ = get_timestamp_embeddings(clips, model)
    second, _ = get_timestamp_embeddings(clips, model)
    assert torch.equal(first, second)


def test_numpy_float_input_is_accepted(model: MobileNetEmbedder) -> None:
    clips = _audio(1, 8000, seed=4)
    from_numpy = get_scene_embeddings(clips.numpy().astype(np.float64), model)
    from_tensor = get_scene_embeddings(clips, model)
    assert torch.allclose(from_numpy, from_tensor)


def test_float64_and_float16_tensors_are_accepted(model: MobileNetEmbedder) -> None:
    clips = _audio(1, 8000, seed=5)
    for dtype in (torch.float64, torch.float16):
        assert get_scene_embeddings(clips.to(dtype), model).dtype == torch.float32


@pytest.mark.parametrize(
    ("audio", "error", "message"),
    [
        (torch.zeros(16000), ValueError, r"shape \(n_sounds, n_samples\).*audio\[None\]"),
        (torch.zeros(1, 1, 16000), ValueError, "3-D"),
        (torch.zeros(1, 16000, dtype=torch.int16), TypeError, "floating point"),
        (np.zeros((1, 16000), dtype=np.int16), TypeError, "floating point"),
        (torch.full((1, 16000), float("nan")), ValueError, "NaN or Inf"),
        (torch.tensor([[0.0, float("inf")]]), ValueError, "NaN or Inf"),
        (torch.zeros(1, 0), ValueError, "zero samples"),
        (torch.zeros(0, 16000), ValueError, "zero sounds"),
        ([[0.0, 0.1]], TypeError, "torch.Tensor"),
        ("audio.wav", TypeError, "torch.Tensor"),
    ],
)
def test_bad_input_is_explained(model: MobileNetEmbedder, audio, error, message) -> None:
    with pytest.raises(error, match=message):
        get_scene_embeddings(audio, model)
    with pytest.raises(error, match=message):
        get_timestamp_embeddings(audio, model)


def test_model_must_come_from_load_model() -> None:
    with pytest.raises(TypeError, match="load_model"):
        get_scene_embeddings(torch.zeros(1, 100), torch.nn.Linear(1, 1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_model_and_audio_on_any_device(model: MobileNetEmbedder) -> None:
    clips = _audio(1, 4000, seed=6)
    on_gpu = hear_module.load_model(pretrained=False, device="cuda")
    on_gpu.load_state_dict(model.state_dict())
    gpu_scene = get_scene_embeddings(clips, on_gpu)  # CPU audio, CUDA model
    assert gpu_scene.dtype == torch.float32 and gpu_scene.device.type == "cuda"
    cpu_scene = get_scene_embeddings(clips.cuda(), model)  # CUDA audio, CPU model
    assert relative_error(gpu_scene.cpu(), cpu_scene) <= 1e-4
    half = hear_module.load_model(pretrained=False, device="cuda", autocast=True)
    half.load_state_dict(model.state_dict())
    embeddings, timestamps = get_timestamp_embeddings(clips, half)
    assert embeddings.dtype == timestamps.dtype == torch.float32
    assert (
        get_scene_embeddings(clips, half).cpu() - cpu_scene
    ).abs().max() <= 1e-2 * cpu_scene.abs().max()


def test_folded_inference_backbone_follows_weight_changes() -> None:
    clips = _audio(1, 6000, seed=7)
    torch.manual_seed(1)
    first = hear_module.load_model(pretrained=False)
    torch.manual_seed(2)
    second = hear_module.load_model(pretrained=False)
    before = get_scene_embeddings(clips, first)
    first.load_state_dict(second.state_dict())  # in place, after the folded copy was built
    after = get_scene_embeddings(clips, first)
    expected = get_scene_embeddings(clips, second)
    assert not torch.allclose(before, after)
    assert relative_error(after, expected) <= 1e-6


def test_folded_backbone_matches_the_plain_one(model: MobileNetEmbedder) -> None:
    clips = _audio(2, 9000, seed=8)
    folded = get_scene_embeddings(clips, model)
    assert torch.is_grad_enabled()  # so the plain BatchNorm backbone runs here
    plain = model.embed_audio(clips).detach()
    assert relative_error(folded, plain) <= 1e-5


def test_the_inference_copy_is_made_again_after_every_weight_change() -> None:
    """The folded copy is dropped by every event that changes the weights through the
    module (load_state_dict, load_checkpoint, .to, .train/.eval, a new rewrite), and by
    refresh_inference() after an in-place edit; without that call it is kept (explicit state)."""
    clips = _audio(1, 6000, seed=9)
    torch.manual_seed(3)
    model = hear_module.load_model(pretrained=False)

    def copy() -> torch.nn.Module:
        with torch.no_grad():  # with autograd on, the plain backbone runs
            return model.inference_network()

    first = copy()
    assert first is not model.backbone and copy() is first  # kept while nothing changes
    for change in (
        lambda: model.load_state_dict(model.state_dict()),
        lambda: model.load_checkpoint(model.backbone.state_dict(), source="test"),
        lambda: model.to(torch.float32),
        lambda: model.eval(),
    ):
        change()
        assert copy() is not first, change
        first = copy()
    before = get_scene_embeddings(clips, model)
    with torch.no_grad():
        model.backbone.features[0][0].weight.mul_(2.0)
    assert torch.equal(get_scene_embeddings(clips, model), before)  # the copy was kept
    model.refresh_inference()
    after = get_scene_embeddings(clips, model)
    with torch.enable_grad():
        plain = model(clips).detach()  # autograd on: the modules as built
    assert not torch.allclose(after, before)
    assert relative_error(after, plain) <= 1e-5


def test_the_inference_rewrite_is_a_setting() -> None:
    clips = _audio(1, 6000, seed=10)
    model = hear_module.load_model(pretrained=False)
    rewritten = get_scene_embeddings(clips, model)
    restored = pickle.loads(pickle.dumps(model))  # pickled without the rewritten copy
    assert "_rewritten" in model.__dict__ and "_rewritten" not in restored.__dict__
    assert torch.equal(get_scene_embeddings(clips, restored), rewritten)
    model.inference_rewrite = None
    with torch.no_grad():
        assert model.inference_network() is model.backbone
    assert relative_error(get_scene_embeddings(clips, model), rewritten) <= 1e-5
