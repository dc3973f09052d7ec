"""Streaming timestamp embeddings equal the offline ones for any chunking.

The grids below are not a full product of chunkings and lengths: each case is one that can
differ from the others in the streams' state machines (hear_mn.streaming). A MobileNet stream
keeps its samples in a head until the left padding is filled (more than ``pad`` samples), then
emits each window once its last sample is in and the rest at close (right padding). An
Audio-MLP stream only concatenates until a one-second chunk (80 padding samples + 15920) is
complete, and emits frames as their chunk is done. Two chunkings that give the same state
(e.g. any chunking of samples that stay in the head) are the same case and are listed once.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from support.reference import randomize_batchnorm, relative_error

import hear_mn
from hear_mn.models.efficientat.efficientat_embedder import MobileNetEmbedder

CHUNKINGS = {
    "one big chunk": [10**9],
    "primes": [7919, 1, 2, 3, 5, 104729, 13],
    "single samples then rest": [1] * 2000 + [10**9],
    "window-sized": [5120] * 10,
    "hop-sized": [1600] * 20,
}


@pytest.fixture(scope="module")
def model() -> MobileNetEmbedder:
    torch.manual_seed(0)
    built = hear_mn.create_model("mn04_e1_l", pretrained=False, window_batch_size=64)
    randomize_batchnorm(built.backbone)
    return built


def _run_stream(model, signal: torch.Tensor, sizes: list[int]):
    stream = hear_mn.stream(model)
    embeddings, timestamps, position = [], [], 0
    for size in sizes:
        if position >= signal.shape[0]:
            break
        e, t = stream.push(signal[position : position + size])
        position += size
        assert e.shape[0] == t.shape[0] and e.dtype == torch.float32
        embeddings.append(e)
        timestamps.append(t)
    if position < signal.shape[0]:
        e, t = stream.push(signal[position:])
        embeddings.append(e)
        timestamps.append(t)
    e, t = stream.close()
    embeddings.append(e)
    timestamps.append(t)
    return torch.cat(embeddings), torch.cat(timestamps), stream


def _assert_stream_equals_offline(model, n_samples: int, sizes: list[int]) -> None:
    signal = 0.1 * torch.randn(n_samples, generator=torch.Generator().manual_seed(n_samples))
    expected, expected_ts = hear_mn.get_timestamp_embeddings(signal[None], model)
    embeddings, timestamps, _ = _run_stream(model, signal, sizes)
    assert relative_error(embeddings, expected[0]) <= 1e-5
    assert torch.equal(timestamps, expected_ts[0])


# mn04_e1_l: 160 ms windows (5120 samples, pad 2560) every 50 ms (1600 samples).
STREAM_CASES = [
    # 40 hops + 123 samples: 41 windows, the last ones from close's right padding.
    (64123, "one big chunk"),  # every window from one push (one batch)
    (64123, "primes"),  # pushes of 1 to 5 samples that complete no window, then a ragged rest
    (64123, "window-sized"),  # windows split across pushes, about three per push
    (64123, "hop-sized"),  # one window per push; the head is left in the second push
    # (single samples then rest: 2000 samples stay in the head, so the same as one big chunk)
    # Two hops, just past the left padding: one window from the pushes, two at close.
    (3200, "one big chunk"),  # (primes and window-sized push the same single chunk)
    (3200, "single samples then rest"),  # 2000 pushes into the head, then 1200 leave it
    (3200, "hop-sized"),  # the head is left by the second push
]


@pytest.mark.parametrize(("n_samples", "chunking"), STREAM_CASES)
def test_stream_equals_offline(model, n_samples: int, chunking: str) -> None:
    _assert_stream_equals_offline(model, n_samples, CHUNKINGS[chunking])


@pytest.mark.parametrize("n_samples", [1, 2, 1600, 2560, 2561, 2562])
def test_short_streams(model, n_samples: int) -> None:
    _assert_stream_equals_offline(model, n_samples, [1] * n_samples)


def test_windows_come_out_80_ms_after_their_centre(model) -> None:
    stream = hear_mn.stream(model)
    embeddings, _ = stream.push(torch.zeros(2560))
    assert embeddings.shape[0] == 0  # window 0 (centre 0 ms) needs sample 2560 for its padding
    embeddings, timestamps = stream.push(torch.zeros(1))
    assert timestamps.tolist() == [0.0]
    embeddings, timestamps = stream.push(torch.zeros(1598))
    assert embeddings.shape[0] == 0
    embeddings, timestamps = stream.push(torch.zeros(1))  # sample 4159 = 1600 + 2559 is in
    assert timestamps.tolist() == [50.0]


def test_memory_is_constant_in_stream_length(model) -> None:
    stream = hear_mn.stream(model)
    chunk = torch.zeros(3001)
    for _ in range(40):  # ~4 s of audio
        stream.push(chunk)
        assert stream._buffer.shape[0] <= 5120 + 3001 + 1600
    stream.close()


def test_empty_stream_and_empty_chunks(model) -> None:
    stream = hear_mn.stream(model)
    embeddings, timestamps = stream.push(np.zeros(0, dtype=np.float32))
    assert embeddings.shape == (0, model.timestamp_embedding_size) and timestamps.shape == (0,)
    embeddings, timestamps = stream.close()
    assert embeddings.shape[0] == 0


def test_stream_errors(model) -> None:
    stream = hear_mn.stream(model)
    with pytest.raises(ValueError, match="1-D"):
        stream.push(torch.zeros(1, 100))
    with pytest.raises(TypeError, match="floating point"):
        stream.push(torch.zeros(100, dtype=torch.int16))
    with pytest.raises(ValueError, match="NaN"):
        stream.push(torch.tensor([float("nan")]))
    stream.close()
    with pytest.raises(RuntimeError, match="closed"):
        stream.push(torch.zeros(10))
    with pytest.raises(TypeError, match="load_model"):
        hear_mn.stream(object())


@pytest.fixture(scope="module", params=["kwmlp", "audiomae"])
def audiomlp(request):
    torch.manual_seed(0)
    return hear_mn.create_model(request.param, pretrained=False)


# Audio-MLP: 10 ms frames (160 samples); the signal is cut in one-second chunks after 80
# padding samples. Below 15920 samples no chunk completes before close, so every chunking
# leaves the same state; "primes" and "single samples then rest" push under 15920 samples
# before their last push, so for longer signals they equal "one big chunk".
AUDIOMLP_CASES = [
    (1, "one big chunk"),  # one sample: n_timestamps' minimum of one frame
    (159, "one big chunk"),  # under one hop: still one frame
    (159, "single samples then rest"),  # pushes that emit nothing, all before close
    (160, "one big chunk"),  # one hop: the first frame by the count
    # The first chunk completes exactly with the last sample (nothing left over for close).
    (15920, "one big chunk"),
    (15920, "window-sized"),  # completed inside a push
    (15920, "hop-sized"),  # completed by the last push
    # One second: a chunk from the pushes, 80 samples left over, a second chunk at close.
    (16000, "one big chunk"),
    (16000, "window-sized"),
    (16000, "hop-sized"),
    # Two chunks from the pushes (at different pushes per chunking), a third at close.
    (37123, "one big chunk"),
    (37123, "window-sized"),
    (37123, "hop-sized"),
]


@pytest.mark.parametrize(("n_samples", "chunking"), AUDIOMLP_CASES)
def test_audiomlp_stream_equals_offline(audiomlp, n_samples: int, chunking: str) -> None:
    _assert_stream_equals_offline(audiomlp, n_samples, CHUNKINGS[chunking])


def test_audiomlp_stream_memory_is_constant(audiomlp) -> None:
    stream = hear_mn.stream(audiomlp)
    emitted = 0
    for _ in range(60):  # 30 s in 0.5 s chunks
        embeddings, _ = stream.push(torch.zeros(8000))
        emitted += embeddings.shape[0]
        assert stream._samples.shape[0] < 16000 + 8000
        assert stream._frames.shape[0] <= 100 + 2
    assert emitted >= 2900  # frames come out as their second completes, not at close
    stream.close()


# The newer wrapper's variants: every frontend hop (160 and 800 share STFT frames across
# windows, 480 and 640 do not) and longer timestamp windows, including odd sample counts.
VARIANTS = {
    "hop5": {"checkpoint": "mn10_as_hop_5"},
    "hop15": {"checkpoint": "mn10_as_hop_15"},
    "hop20": {"checkpoint": "mn10_as_hop_20"},
    "hop25": {"checkpoint": "mn10_as_hop_25"},
    "window 640 ms": {"timestamp_window": 640},
    "window 1280 ms, hop 30 ms": {"timestamp_window": 1280, "timestamp_hop": 30},
    "window of 1601 samples": {"timestamp_window": 50.03125},
}


# Frontend-hop variants keep the 160 ms window (pad 2560): the long signal with pushes that
# cut windows in different places, and the shortest signal past the padding. The long
# windows (pad 10240 and 20480) keep every push of "primes" and of the short signals in the
# head: the long signal in one push and hop by hop, and one signal that never leaves the
# head. The 1601-sample window (pad 800) leaves the head early, even at 1500 samples.
FRONTEND_HOPS = ("hop5", "hop15", "hop20", "hop25")
VARIANT_CASES = [
    *(
        (name, 32000 + 777, chunking)
        for name in FRONTEND_HOPS
        for chunking in ("primes", "hop-sized")
    ),
    *((name, 3200, "hop-sized") for name in FRONTEND_HOPS),
    ("window 640 ms", 32000 + 777, "one big chunk"),
    ("window 640 ms", 32000 + 777, "hop-sized"),
    ("window 640 ms", 3200, "one big chunk"),  # all in the head: close embeds it whole
    ("window 1280 ms, hop 30 ms", 32000 + 777, "one big chunk"),
    ("window 1280 ms, hop 30 ms", 32000 + 777, "hop-sized"),  # 50 ms pushes, 30 ms hops
    ("window of 1601 samples", 32000 + 777, "primes"),
    ("window of 1601 samples", 32000 + 777, "hop-sized"),
    ("window of 1601 samples", 3200, "hop-sized"),  # one window per push, one at close
    ("window of 1601 samples", 1500, "one big chunk"),  # one window, none left for close
]


@pytest.fixture(scope="module")
def variant(request) -> MobileNetEmbedder:
    torch.manual_seed(1)
    options = VARIANTS[request.param]
    return hear_mn.create_model(
        "mn01_all_b_mel_avgs", pretrained=False, window_batch_size=16, **options
    )


@pytest.mark.parametrize(("variant", "n_samples", "chunking"), VARIANT_CASES, indirect=["variant"])
def test_variant_stream_equals_offline(variant, n_samples: int, chunking: str) -> None:
    _assert_stream_equals_offline(variant, n_samples, CHUNKINGS[chunking])


def test_variant_windows_come_out_half_a_window_after_their_centre() -> None:
    model = hear_mn.create_model("mn01_all_b_mel_avgs", pretrained=False, timestamp_window=640)
    stream = hear_mn.stream(model)
    embeddings, _ = stream.push(torch.zeros(10240))
    assert embeddings.shape[0] == 0  # window 0 needs sample 10240 for its left padding
    embeddings, timestamps = stream.push(torch.zeros(1))
    assert timestamps.tolist() == [0.0]


def test_without_onnxruntime_the_default_stream_is_torch(model, monkeypatch) -> None:
    """backend "auto" where ONNX Runtime is not installed: the live stream runs in torch and
    says so; its windows equal the offline ones."""
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime fails
    without = hear_mn.create_model("mn04_e1_l", pretrained=False, window_batch_size=64)
    without.load_state_dict(model.state_dict())
    stream = hear_mn.stream(without)
    assert stream.output_settings()["backend"] == "torch"
    assert without.runtime_for("live") is None
    assert without.engines() == {"timestamps": "torch", "scene": "torch", "live": "torch"}
    _assert_stream_equals_offline(without, 9000, CHUNKINGS["hop-sized"])
