"""Padding and window gathering helpers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hear_mn.audio import (
    FINITE_CHECK_SLICE,
    as_audio_batch,
    extended_span,
    reflect_index,
    reflect_pad,
)


@pytest.mark.parametrize(("n", "pad"), [(10, 3), (10, 9), (5120, 2560), (2561, 2560)])
def test_reflect_pad_equals_torch_where_torch_works(n: int, pad: int) -> None:
    x = torch.randn(2, n)
    expected = F.pad(x[:, None], (pad, pad), mode="reflect")[:, 0]
    assert torch.equal(reflect_pad(x, pad, pad), expected)


def test_reflect_pad_keeps_mirroring_past_the_signal() -> None:
    x = torch.tensor([[0.0, 1.0, 2.0]])
    assert reflect_pad(x, 5, 5).tolist() == [[1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1]]
    assert reflect_pad(torch.tensor([[7.0]]), 2, 1).tolist() == [[7, 7, 7, 7]]


def test_reflect_index_inside_is_identity() -> None:
    positions = torch.arange(50)
    assert torch.equal(reflect_index(positions, 50), positions)


@pytest.mark.parametrize("n", [1, 2, 7, 9000])
def test_extended_span_equals_the_mirror_padded_clip(n: int) -> None:
    clip = torch.randn(n, generator=torch.Generator().manual_seed(n))
    pad = 3 * n + 5
    padded = reflect_pad(clip[None], pad, pad)[0]
    for start, stop in ((0, n), (-pad, n + pad), (-1, 2), (n - 2, n + 4), (-pad, -pad + 3)):
        assert torch.equal(extended_span(clip, start, stop), padded[start + pad : stop + pad])


def test_extended_span_inside_the_clip_is_a_view() -> None:
    clip = torch.arange(100.0)
    span = extended_span(clip, 10, 60)
    assert span.data_ptr() == clip[10:].data_ptr() and span.tolist() == list(range(10, 60))


def test_nan_past_the_first_finite_check_slice_is_found() -> None:
    audio = torch.zeros(1, FINITE_CHECK_SLICE + 10)
    audio[0, -1] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        as_audio_batch(audio)
    assert as_audio_batch(torch.zeros(1, FINITE_CHECK_SLICE + 10)).shape == (
        1,
        FINITE_CHECK_SLICE + 10,
    )


def test_finite_check_is_exact_where_the_fast_sum_is_not() -> None:
    huge = torch.full((1, 1000), 3e38)  # finite samples whose sum overflows to inf
    assert torch.equal(as_audio_batch(huge), huge)
    for bad in (float("inf"), float("-inf"), float("nan")):
        mixed = torch.zeros(1, 100)
        mixed[0, 7] = bad
        mixed[0, 8] = -bad  # +inf and -inf sum to NaN, still caught
        with pytest.raises(ValueError, match="NaN or Inf"):
            as_audio_batch(mixed)
