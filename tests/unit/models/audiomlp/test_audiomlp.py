"""Audio-MLP (kwmlp, audiomae): parity with the original outputs, edge lengths, batching, loading."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from support.reference import AUDIOMLP as FIXTURES
from support.reference import relative_error, require_shared

from hear_mn.models.audiomlp.architectures import AUDIOMAE, KWMLP, AudioMLPArch
from hear_mn.models.audiomlp.network import AudioMLPModel, n_timestamps, resample_time
from hear_mn.registry import get_config

ARCHS = {"kwmlp": KWMLP, "audiomae": AUDIOMAE}
INPUT_KEYS = ("len1", "len2.5", "len7.3")
RTOL = 1e-5  # max|ours - ref| <= RTOL * max|ref|


def _fixture(name: str) -> Path:
    return require_shared(FIXTURES / name)  # skips without ../shared, fails in CI


def _checkpoint(name: str) -> dict[str, torch.Tensor]:
    return torch.load(_fixture(f"{name}.pth"), map_location="cpu", weights_only=True)[
        "model_state_dict"
    ]


@pytest.fixture(scope="module")
def pretrained() -> dict[str, AudioMLPModel]:
    models = {}
    for name in ARCHS:
        model = AudioMLPModel(get_config(name))
        model.load_checkpoint(_checkpoint(name), source=f"{name}.pth")
        models[name] = model
    return models


@pytest.fixture(scope="module")
def random_models() -> dict[str, AudioMLPModel]:
    torch.manual_seed(0)
    return {name: AudioMLPModel(get_config(name)) for name in ARCHS}


@pytest.mark.parametrize("key", INPUT_KEYS)
@pytest.mark.parametrize("name", list(ARCHS))
def test_parity_with_original(pretrained: dict[str, AudioMLPModel], name: str, key: str) -> None:
    inputs = np.load(_fixture("audiomlp_inputs.npz"))
    ref = np.load(_fixture(f"{name}_ref.npz"))
    model = pretrained[name]
    audio = torch.from_numpy(inputs[key])
    emb, times = model.timestamp_embeddings(audio)
    scene = model.scene_embeddings(audio)

    ref_emb = ref[f"{key}/timestamp_embeddings"]
    ref_times = ref[f"{key}/timestamps"]
    ref_scene = ref[f"{key}/scene"]
    assert emb.shape == ref_emb.shape
    assert scene.shape == ref_scene.shape
    np.testing.assert_array_equal(times.numpy(), ref_times)
    assert relative_error(emb, ref_emb) <= RTOL
    assert relative_error(scene, ref_scene) <= RTOL


def _original_count(n_samples: int) -> int:
    """The original's timestamp count, computed the way it did (floats)."""
    t_ms = 1000 * (n_samples + 80 + 240) / 16000
    return int((t_ms - 30) / 10 + 1)


@pytest.mark.parametrize("n_samples", [1, 159, 160, 16000, 16001])
@pytest.mark.parametrize("name", list(ARCHS))
def test_edge_lengths(random_models: dict[str, AudioMLPModel], name: str, n_samples: int) -> None:
    model = random_models[name]
    arch = ARCHS[name]
    audio = torch.from_numpy(np.random.default_rng(n_samples).uniform(-0.5, 0.5, (2, n_samples)))
    emb, times = model.timestamp_embeddings(audio)
    scene = model.scene_embeddings(audio)

    n = emb.shape[1]
    assert n >= 1
    original = _original_count(n_samples)
    if original >= 1:
        assert n == original
    assert n == n_timestamps(n_samples)
    assert emb.shape == (2, n, arch.timestamp_dim)
    assert times.shape == (2, n)
    expected = np.arange(1, n + 1, dtype=np.float32) * 10
    np.testing.assert_array_equal(times.numpy(), np.broadcast_to(expected, (2, n)))
    assert scene.shape == (2, arch.scene_dim)
    for out in (emb, times, scene):
        assert out.dtype == torch.float32
        assert bool(torch.isfinite(out).all())


def test_single_sample_scene_is_finite_with_real_weights(
    pretrained: dict[str, AudioMLPModel],
) -> None:
    for name, model in pretrained.items():
        for audio in (torch.zeros(1, 1), torch.full((1, 1), 0.5)):
            scene = model.scene_embeddings(audio)
            emb, times = model.timestamp_embeddings(audio)
            assert scene.shape == (1, ARCHS[name].scene_dim)
            assert bool(torch.isfinite(scene).all()) and bool(torch.isfinite(emb).all())
            assert times.tolist() == [[10.0]]


@pytest.mark.parametrize("name", list(ARCHS))
def test_batch_invariance(random_models: dict[str, AudioMLPModel], name: str) -> None:
    model = random_models[name]
    rng = np.random.default_rng(1)
    clip = rng.uniform(-0.3, 0.3, (1, 27_000)).astype(np.float32)
    other = (rng.standard_normal((1, 27_000)) * 0.9).astype(np.float32)  # louder: other dB floor
    alone_emb, _ = model.timestamp_embeddings(clip)
    alone_scene = model.scene_embeddings(clip)
    batch = np.concatenate([other, clip, other * 0.01])
    batch_emb, _ = model.timestamp_embeddings(batch)
    batch_scene = model.scene_embeddings(batch)
    for alone, batched in ((alone_emb[0], batch_emb[1]), (alone_scene[0], batch_scene[1])):
        assert relative_error(batched, alone) <= 1e-6


@pytest.mark.parametrize("name", list(ARCHS))
def test_chunks_per_pass_does_not_change_results(
    random_models: dict[str, AudioMLPModel], name: str
) -> None:
    model = random_models[name]
    audio = torch.from_numpy(np.random.default_rng(2).uniform(-0.5, 0.5, (2, 50_000)))
    full = model.scene_embeddings(audio), model.timestamp_embeddings(audio)[0]
    saved = model.window_batch_size
    try:
        model.window_batch_size = 3  # 2 clips x 4 chunks -> passes of 3, 3, 2 chunks
        split = model.scene_embeddings(audio), model.timestamp_embeddings(audio)[0]
    finally:
        model.window_batch_size = saved
    for a, b in zip(full, split):
        assert relative_error(b, a) <= 1e-6


def test_short_clip_scene_is_zero_padded(random_models: dict[str, AudioMLPModel]) -> None:
    # Under 1 s after padding there are 98 frames: audiomae's 198 scene steps end in zeros.
    model = random_models["audiomae"]
    audio = torch.from_numpy(np.random.default_rng(3).uniform(-0.5, 0.5, (1, 8000)))
    scene = model.scene_embeddings(audio).reshape(AUDIOMAE.timestamp_dim, 198)
    frames = model.frame_embeddings(audio.float())[0]
    assert frames.shape[0] == 98
    torch.testing.assert_close(scene[:, :98], frames.T, rtol=0, atol=0)
    assert bool((scene[:, 98:] == 0).all())


def test_resample_time_halves_then_interpolates() -> None:
    ramp = torch.arange(798, dtype=torch.float32).reshape(1, 798, 1)
    out = resample_time(ramp, 198)  # 798 -> 399 -> 199 -> 198, all linear
    assert out.shape == (1, 198, 1)
    torch.testing.assert_close(out[0, :, 0], torch.linspace(0, 797, 198), rtol=0, atol=1e-3)
    exact = resample_time(torch.arange(64.0).reshape(1, 64, 1), 16)  # 64 -> 32 -> 16
    assert exact.shape == (1, 16, 1)
    torch.testing.assert_close(exact[0, :, 0], torch.linspace(0, 63, 16), rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    ("model_name", "ckpt_name"), [("kwmlp", "audiomae"), ("audiomae", "kwmlp")]
)
def test_refuses_the_other_models_checkpoint(model_name: str, ckpt_name: str) -> None:
    state_dict = _checkpoint(ckpt_name)
    model = AudioMLPModel(get_config(model_name))
    with pytest.raises(Exception, match=r"(?s)missing keys.*unexpected keys") as info:
        model.load_checkpoint(state_dict, source=f"{ckpt_name}.pth")
    message = str(info.value)
    assert f"{ckpt_name}.pth" in message
    assert ("bottleneck.0.weight" in message) and ("layers.6." in message)


def test_strict_loading_without_fixtures() -> None:
    kwmlp = AudioMLPModel(get_config("kwmlp"))
    state = dict(kwmlp.encoder.state_dict())
    # kwmlp's documented classifier keys are dropped ...
    state_with_head = dict(state)
    state_with_head["to_logits.0.weight"] = torch.ones(64)
    state_with_head["to_logits.0.bias"] = torch.zeros(64)
    state_with_head["to_logits.2.weight"] = torch.zeros(35, 64)
    state_with_head["to_logits.2.bias"] = torch.zeros(35)
    kwmlp.load_checkpoint(state_with_head, source="kwmlp-like")
    # ... but nothing else is.
    with pytest.raises(Exception, match="extra.weight"):
        kwmlp.load_checkpoint({**state, "extra.weight": torch.zeros(1)}, source="extra")
    with pytest.raises(Exception, match="to_logits.0.weight"):
        AudioMLPModel(get_config("audiomae")).load_checkpoint(
            {
                **AudioMLPModel(get_config("audiomae")).encoder.state_dict(),
                "to_logits.0.weight": torch.ones(64),
            },
            source="audiomae-with-head",
        )
    bad_shape = {**state, "to_patch_embed.1.weight": torch.zeros(64, 41)}
    with pytest.raises(Exception, match="to_patch_embed.1.weight"):
        kwmlp.load_checkpoint(bad_shape, source="bad-shape")


def test_arch_is_declarative() -> None:
    assert (KWMLP.depth, KWMLP.timestamp_dim, KWMLP.scene_dim, KWMLP.frontend) == (
        12,
        64,
        1024,
        "mfcc",
    )
    assert (AUDIOMAE.depth, AUDIOMAE.timestamp_dim, AUDIOMAE.scene_dim, AUDIOMAE.frontend) == (
        6,
        8,
        1584,
        "mel",
    )
    with pytest.raises(ValueError):
        AudioMLPArch("x", 2, "mel", "bottleneck", 8, 100, 16)
    model = AudioMLPModel(replace(get_config("audiomae"), name="custom"))
    assert model.name == "custom" and model.sample_rate == 16000
    assert model.scene_embedding_size == 1584 and model.timestamp_embedding_size == 8
