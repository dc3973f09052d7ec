"""Timestamp windows as options, and the original wrapper's methods on the model object.

The reference for every case is the original's framing written out plainly: reflect-pad the
clip by ``pad``, cut a window every ``hop`` samples, embed each window on its own; window i
is stamped ``i * hop`` in milliseconds.
"""

from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F
from support.reference import relative_error

import hear_mn


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return hear_mn.create_model("mn01_all_b_mel_avgs", pretrained=False)


def _one_window_at_a_time(model, audio: torch.Tensor, size: int, hop: int, pad: int):
    padded = F.pad(audio[:, None], (pad, pad), mode="reflect")[:, 0]
    count = (padded.shape[1] - size) // hop + 1
    with torch.inference_mode():
        rows = [model.embed_audio(padded[:, i * hop : i * hop + size]) for i in range(count)]
    return torch.stack(rows, 1), torch.arange(count) * (1000.0 * hop / model.sample_rate)


def _audio(n_samples: int, seed: int = 0) -> torch.Tensor:
    return 0.1 * torch.randn(2, n_samples, generator=torch.Generator().manual_seed(seed))


@pytest.mark.slow  # mn10 over long framings; the option tests stay fast
@pytest.mark.parametrize(
    ("size", "hop", "pad"),
    [
        (5120, 1600, 2560),  # the default
        (10240, 3200, 5120),
        (40960, 1600, 20480),  # 1280 ms
        (4000, 1000, 0),  # no padding: windows inside the clip only
        (5120, 800, 1000),
        (3001, 1234, 17),  # odd sizes
    ],
)
def test_window_size_hop_and_pad_frame_like_the_original(model, size, hop, pad) -> None:
    audio = _audio(45000)
    expected, stamps = _one_window_at_a_time(model, audio, size, hop, pad)
    embeddings, timestamps = model.get_timestamp_embeddings(audio, size, hop, pad)
    assert relative_error(embeddings, expected) <= 1e-5
    assert torch.equal(timestamps, stamps.float().expand(2, -1))


def test_window_size_alone_pads_by_half_of_it(model) -> None:
    audio = _audio(20000, seed=1)
    expected, _ = _one_window_at_a_time(model, audio, 8000, 1600, 4000)
    embeddings, _ = model.get_timestamp_embeddings(audio, window_size=8000)
    assert relative_error(embeddings, expected) <= 1e-5


@pytest.mark.parametrize(("window_ms", "hop_ms"), [(640, 50), (320, 25), (1280, 100)])
def test_timestamp_window_and_hop_options_in_milliseconds(window_ms, hop_ms) -> None:
    torch.manual_seed(0)
    module = importlib.import_module("hear_mn.mn01_all_b_mel_avgs")
    model = module.load_model(pretrained=False, timestamp_window=window_ms, timestamp_hop=hop_ms)
    size, hop = window_ms * 32, hop_ms * 32
    assert (model.windows.size, model.windows.hop, model.windows.pad) == (size, hop, size // 2)
    audio = _audio(50000, seed=2)
    expected, stamps = _one_window_at_a_time(model, audio, size, hop, size // 2)
    embeddings, timestamps = module.get_timestamp_embeddings(audio, model)
    assert relative_error(embeddings, expected) <= 1e-5
    assert torch.equal(timestamps[0], stamps.float())
    assert timestamps.shape[1] == 50000 // hop + 1


def test_module_functions_and_model_methods_agree(model) -> None:
    audio = _audio(40000, seed=3)
    scene = hear_mn.get_scene_embeddings(audio, model)
    embeddings, timestamps = hear_mn.get_timestamp_embeddings(audio, model)
    assert torch.equal(model.get_scene_embeddings(audio), scene)
    method_embeddings, method_timestamps = model.get_timestamp_embeddings(audio)
    assert torch.equal(method_embeddings, embeddings)
    assert torch.equal(method_timestamps, timestamps)


def test_the_original_readme_example_runs_verbatim() -> None:
    """The original README's example, with random weights (the release is not reachable)."""
    from hear_mn.old_configs import mn40_ext_e1_l

    audio = _audio(32000, seed=4)
    wrapper = mn40_ext_e1_l.load_model(pretrained=False)
    embed, time_stamps = wrapper.get_timestamp_embeddings(audio)
    assert embed.shape == (2, 21, 4367) and time_stamps.shape == (2, 21)
    assert wrapper.get_scene_embeddings(audio).shape == (2, 4367)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"window_size": 0}, ValueError, "window_size must be an int of at least 1"),
        ({"hop": -5}, ValueError, "hop must be an int of at least 1"),
        ({"pad": 1.5}, ValueError, "pad must be an int of at least 0"),
        ({"window_size": True}, ValueError, "window_size must be an int"),
        ({"window_size": 50000, "pad": 0}, ValueError, "shorter than one window of 50000"),
    ],
)
def test_bad_windows_are_explained(model, options, error, message) -> None:
    with pytest.raises(error, match=message):
        model.get_timestamp_embeddings(_audio(20000), **options)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"timestamp_window": 0.01}, ValueError, "not a whole, positive number of samples"),
        ({"timestamp_hop": 0}, ValueError, "not a whole, positive number of samples"),
        ({"timestamp_window": "160"}, TypeError, "duration in milliseconds"),
    ],
)
def test_bad_window_options_are_explained(options, error, message) -> None:
    module = importlib.import_module("hear_mn.mn01_all_b_mel_avgs")
    with pytest.raises(error, match=message):
        module.load_model(pretrained=False, **options)


def test_audiomlp_frames_its_own_timestamps() -> None:
    model = hear_mn.create_model("kwmlp", pretrained=False)
    audio = torch.zeros(1, 16000)
    assert model.get_timestamp_embeddings(audio)[0].shape[-1] == 64
    with pytest.raises(ValueError, match="frames its timestamps itself"):
        model.get_timestamp_embeddings(audio, window_size=4000)
    with pytest.raises(ValueError, match="fixed embedding"):
        hear_mn.create_model("kwmlp", pretrained=False, timestamp_window=160)
