"""Streaming timestamp embeddings equal the offline ones for any chunking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hear_mn
from hear_mn.efficientat import MobileNetEmbedder

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
    for name, buffer in built.backbone.named_buffers():
        if name.endswith("running_mean"):
            buffer.normal_(0, 0.1)
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
    assert embeddings.shape == expected[0].shape
    assert (embeddings - expected[0]).abs().max() <= 1e-5 * expected.abs().max()
    assert torch.equal(timestamps, expected_ts[0])


@pytest.mark.parametrize("chunking", sorted(CHUNKINGS))
@pytest.mark.parametrize("n_samples", [32000 * 2 + 123, 3200])
def test_stream_equals_offline(model, chunking: str, n_samples: int) -> None:
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


@pytest.mark.parametrize("chunking", sorted(CHUNKINGS))
@pytest.mark.parametrize("n_samples", [1, 159, 160, 16000, 16001, 37123])
def test_audiomlp_stream_equals_offline(audiomlp, chunking: str, n_samples: int) -> None:
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


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant(request) -> MobileNetEmbedder:
    torch.manual_seed(1)
    options = VARIANTS[request.param]
    return hear_mn.create_model(
        "mn01_all_b_mel_avgs", pretrained=False, window_batch_size=16, **options
    )


@pytest.mark.parametrize("chunking", ["primes", "hop-sized", "one big chunk"])
@pytest.mark.parametrize("n_samples", [32000 + 777, 3200, 1500, 1])
def test_variant_stream_equals_offline(variant, chunking: str, n_samples: int) -> None:
    _assert_stream_equals_offline(variant, n_samples, CHUNKINGS[chunking])


def test_variant_windows_come_out_half_a_window_after_their_centre() -> None:
    model = hear_mn.create_model("mn01_all_b_mel_avgs", pretrained=False, timestamp_window=640)
    stream = hear_mn.stream(model)
    embeddings, _ = stream.push(torch.zeros(10240))
    assert embeddings.shape[0] == 0  # window 0 needs sample 10240 for its left padding
    embeddings, timestamps = stream.push(torch.zeros(1))
    assert timestamps.tolist() == [0.0]
