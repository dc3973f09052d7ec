"""Results users can trust: no NaN embeddings, streams that survive a failed push, clear
errors for inputs that make no sense, and audio at any sample rate.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from support.reference import relative_error

import hear_mn
from hear_mn.registry import create_model


@pytest.fixture(scope="module")
def mobilenet():
    torch.manual_seed(0)
    return create_model("mn01_all_b_mel_avgs", pretrained=False)


@pytest.fixture(scope="module", params=["mn01_e1_l", "kwmlp"])
def any_model(request):
    torch.manual_seed(0)
    return create_model(request.param, pretrained=False)


def _noise(n_samples: int, seed: int = 0) -> torch.Tensor:
    return 0.1 * torch.randn(n_samples, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------- never NaN embeddings


HUGE_PEAK = r"not finite: the audio's samples peak at \d\.\d+e\+\d\d, far outside \[-1, 1\]"


@pytest.mark.parametrize("peak", [1e18, 1e24, 1e30])
def test_huge_samples_never_give_nan_embeddings(any_model, peak: float) -> None:
    """Either finite embeddings or the clear error: never NaN (1e30 overflows every model)."""
    audio = _noise(20000)[None] * peak
    for call in (
        any_model.get_scene_embeddings,
        lambda a: any_model.get_timestamp_embeddings(a)[0],
    ):
        try:
            embeddings = call(audio)
        except ValueError as error:
            assert re.search(HUGE_PEAK, str(error)), error
        else:
            assert peak < 1e30 and torch.isfinite(embeddings).all()


def test_huge_samples_in_a_stream_are_refused(any_model) -> None:
    stream = hear_mn.stream(any_model)
    with pytest.raises(ValueError, match=HUGE_PEAK):
        for _ in range(4):
            stream.push(_noise(16000) * 1e30)


def test_loud_but_finite_audio_still_works(any_model) -> None:
    scene = any_model.get_scene_embeddings(_noise(20000)[None] * 50)
    assert torch.isfinite(scene).all()


# ----------------------------------------------------------------- streams roll back


def test_a_failed_push_leaves_the_stream_as_it_was(any_model, monkeypatch) -> None:
    signal = _noise(40000, seed=3)
    expected, expected_stamps = hear_mn.get_timestamp_embeddings(signal[None], any_model)
    stream = hear_mn.stream(any_model)
    first, _ = stream.push(signal[:12000])
    compute = type(stream)._push

    def failing(self, samples):
        compute(self, samples)  # the work is done, then something goes wrong
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(type(stream), "_push", failing)
    with pytest.raises(RuntimeError, match="simulated"):
        stream.push(signal[12000:30000])
    monkeypatch.undo()
    second, _ = stream.push(signal[12000:30000])  # the retry
    third, _ = stream.push(signal[30000:])
    last, stamps = stream.close()
    embeddings = torch.cat([first, second, third, last])
    assert relative_error(embeddings, expected[0]) <= 1e-5
    assert stream.num_samples == 40000


# ----------------------------------------------------------------- empty streams


def test_an_empty_stream_gives_no_frames_in_every_family(any_model) -> None:
    embeddings, timestamps = hear_mn.stream(any_model).close()
    assert embeddings.shape == (0, any_model.timestamp_embedding_size)
    assert timestamps.shape == (0,)


# ----------------------------------------------------------------- clear errors


def test_meta_device_audio_is_explained(any_model) -> None:
    audio = torch.zeros(1, 16000, device="meta")
    with pytest.raises(ValueError, match="meta device.*holds no data"):
        any_model.get_scene_embeddings(audio)
    with pytest.raises(ValueError, match="meta device.*holds no data"):
        hear_mn.stream(any_model).push(torch.zeros(100, device="meta"))


def test_meta_device_for_the_model_is_explained() -> None:
    with pytest.raises(ValueError, match="'meta'.*holds no data.*cpu"):
        create_model("mn01_e1_l", pretrained=False, device="meta")


@pytest.mark.parametrize("name", ["mn01_e1_l", "kwmlp"])
def test_window_batch_size_is_an_option_of_every_family(name: str) -> None:
    small = create_model(name, pretrained=False, window_batch_size=3)
    torch.manual_seed(0)
    large = create_model(name, pretrained=False)
    small.load_state_dict(large.state_dict())
    audio = _noise(5 * small.sample_rate, seed=4)[None]
    torch.testing.assert_close(
        small.get_timestamp_embeddings(audio)[0], large.get_timestamp_embeddings(audio)[0]
    )


@pytest.mark.parametrize("name", ["mn01_e1_l", "kwmlp"])
@pytest.mark.parametrize(
    ("value", "error"), [(True, TypeError), (0, ValueError), (2.5, TypeError), ("8", TypeError)]
)
def test_bad_window_batch_size_is_explained(name: str, value, error) -> None:
    with pytest.raises(error, match="window_batch_size must be a positive int"):
        create_model(name, pretrained=False, window_batch_size=value)


def test_features_of_the_wrong_type_are_explained() -> None:
    with pytest.raises(TypeError, match="features must be a string or a list"):
        create_model("mn01_e1_l", pretrained=False, features=123)


# ----------------------------------------------------------------- any sample rate


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_audio_at_another_rate_is_resampled(any_model, rate: int) -> None:
    soxr = pytest.importorskip("soxr")
    seconds = 1.5
    audio = _noise(int(seconds * rate), seed=5)[None].repeat(2, 1)
    resampled = torch.from_numpy(
        soxr.resample(audio.numpy().T, rate, any_model.sample_rate, quality="HQ").T.copy()
    )
    expected = any_model.get_scene_embeddings(resampled)
    got = any_model.get_scene_embeddings(audio, sample_rate=rate)
    torch.testing.assert_close(got, expected)
    stamps_expected = any_model.get_timestamp_embeddings(resampled)
    stamps_got = any_model.get_timestamp_embeddings(audio, sample_rate=rate)
    torch.testing.assert_close(stamps_got[0], stamps_expected[0])
    assert torch.equal(stamps_got[1], stamps_expected[1])


def test_a_stream_at_another_rate_equals_the_offline_call(any_model) -> None:
    rate = 44100
    signal = _noise(3 * rate, seed=6)
    expected, stamps = any_model.get_timestamp_embeddings(signal[None], sample_rate=rate)
    stream = hear_mn.stream(any_model, sample_rate=rate)
    parts = [stream.push(signal[i : i + 7919])[0] for i in range(0, signal.shape[0], 7919)]
    last, _ = stream.close()
    embeddings = torch.cat([*parts, last])
    assert relative_error(embeddings, expected[0]) <= 1e-4


@pytest.mark.parametrize("rate", [0, -8000, 44100.5, "44100"])
def test_bad_sample_rates_are_explained(mobilenet, rate) -> None:
    with pytest.raises((ValueError, TypeError), match="sample_rate must be a positive int"):
        mobilenet.get_scene_embeddings(np.zeros((1, 100), dtype=np.float32), sample_rate=rate)
