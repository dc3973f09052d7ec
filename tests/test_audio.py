"""Padding and window gathering helpers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hear_mn.audio import (
    FINITE_CHECK_SLICE,
    as_audio_batch,
    centred_windows,
    gather_windows,
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


def test_gather_windows_equals_unfold_of_padded_signal() -> None:
    audio = torch.randn(3, 9000)
    padded = reflect_pad(audio, 2560, 2560).unfold(-1, 5120, 1600)
    sounds = torch.tensor([0, 2, 1, 1])
    windows = torch.tensor([0, 5, 3, 1])
    gathered = gather_windows(audio, sounds, windows * 1600 - 2560, 5120)
    assert torch.equal(gathered, padded[sounds, windows])


@pytest.mark.parametrize(("n_sounds", "n_samples"), [(1, 64000), (3, 9000), (2, 5119), (1, 1)])
@pytest.mark.parametrize(("size", "hop"), [(5120, 1600), (320000, 80000)])
def test_centred_windows_equal_gathered_ones_for_any_chunk(n_sounds, n_samples, size, hop) -> None:
    audio = torch.randn(n_sounds, n_samples, generator=torch.Generator().manual_seed(n_samples))
    n_windows = n_samples // hop + 1
    total = n_sounds * n_windows
    for per_pass in (1, 3, 256):
        for first in range(0, total, per_pass):
            stop = min(first + per_pass, total)
            index = torch.arange(first, stop)
            starts = (index % n_windows) * hop - size // 2
            expected = gather_windows(audio, index // n_windows, starts, size)
            got = centred_windows(audio, first, stop, n_windows, size, hop)
            assert torch.equal(got, expected), (first, stop)


def test_nan_past_the_first_finite_check_slice_is_found() -> None:
    audio = torch.zeros(1, FINITE_CHECK_SLICE + 10)
    audio[0, -1] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        as_audio_batch(audio)
    assert as_audio_batch(torch.zeros(1, FINITE_CHECK_SLICE + 10)).shape == (
        1,
        FINITE_CHECK_SLICE + 10,
    )
