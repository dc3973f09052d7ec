"""The log-mel frontend against the reference arrays, and its frame count rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support.reference import relative_error, require_shared

from hear_mn.models.efficientat.log_mel_frontend import LogMelFrontend, kaldi_mel_banks


def test_mel_matrix_matches_kaldi_reference() -> None:
    reference = np.load(require_shared() / "frontend.npz")["mel_banks_128"]
    ours = kaldi_mel_banks(128, 1024, 32000, 0.0, 15000.0).numpy()
    assert ours.shape == (128, 512)
    assert np.abs(ours - reference).max() <= 1e-6
    assert np.array_equal(ours, reference)  # bit for bit, on any platform (kaldi_bin_mels)


def test_frontend_matches_reference_log_mel() -> None:
    data = np.load(require_shared() / "frontend.npz")
    ours = LogMelFrontend()(torch.from_numpy(data["input"]))
    assert relative_error(ours, data["mel"]) <= 1e-5


@pytest.mark.skipif(
    not torch.backends.mkl.is_available(),
    reason="the reference's float32 STFT rounding is MKL's; another FFT is ~1.2e-5 away, as "
    "float64 is (benchmarks/precision_margin.py): the reference's own rounding is the floor",
)
def test_frontend_matches_reference_log_mel_with_a_margin() -> None:
    """With torch's MKL FFT (the reference's), a clear margin under the 1e-5 rule."""
    data = np.load(require_shared() / "frontend.npz")
    ours = LogMelFrontend()(torch.from_numpy(data["input"]))
    assert relative_error(ours, data["mel"]) <= 2e-6


def test_mel_matrix_has_zero_nyquist_column_and_is_a_buffer() -> None:
    frontend = LogMelFrontend(n_mels=256)
    assert frontend.mel_matrix.shape == (256, 513)
    assert torch.all(frontend.mel_matrix[:, -1] == 0)
    assert "mel_matrix" not in frontend.state_dict()  # constant, never loaded from checkpoints


@pytest.mark.parametrize("n", [1, 2, 3, 320, 321, 513, 514, 5120, 34240])
def test_frame_count(n: int) -> None:
    frontend = LogMelFrontend()
    mels = frontend(torch.randn(2, n))
    assert mels.shape == (2, 128, frontend.num_frames(n))
    assert torch.isfinite(mels).all()
    if n >= 2:
        assert frontend.num_frames(n) == (n - 1) // 320 + 1


@pytest.mark.parametrize(
    ("size", "hop", "count"),
    [(5120, 1600, 401), (5120, 1600, 8), (5120, 1600, 2), (5120, 1600, 1), (320000, 80000, 2),
     (320000, 80000, 5), (5120, 320, 9), (5120, 1000, 40), (1024, 320, 50), (700, 320, 60)],
)  # fmt: skip
@pytest.mark.parametrize("n_mels", [128, 256])
def test_sliding_windows_equal_windows_one_by_one(size, hop, count, n_mels) -> None:
    frontend = LogMelFrontend(n_mels=n_mels)
    generator = torch.Generator().manual_seed(size + hop + count)
    signal = 0.1 * torch.randn((count - 1) * hop + size + 17, generator=generator)
    signal[: size // 3] = 0.0  # silence: the log floor must match too
    windows = signal.unfold(0, size, hop)[:count]
    shared = frontend.sliding_windows(signal, count, size, hop)
    assert shared.shape == (count, n_mels, frontend.num_frames(size))
    assert (shared - frontend(windows)).abs().max() <= 1e-6


def test_sliding_windows_share_frames() -> None:
    """Overlapping 160 ms windows every 50 ms: about half the STFT frames of one by one."""
    frontend = LogMelFrontend()
    counted: list[int] = []
    original = frontend._frame_power

    def spy(padded: torch.Tensor) -> torch.Tensor:
        power = original(padded)  # (..., frames, bins)
        counted.append(power.shape[:-1].numel())
        return power

    frontend._frame_power = spy
    frontend.sliding_windows(torch.randn(99 * 1600 + 5120), 100, 5120, 1600)
    assert sum(counted) <= 0.55 * 100 * frontend.num_frames(5120)
