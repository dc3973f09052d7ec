"""Log-mel frontend of the EfficientAT MobileNets (32 kHz audio -> normalised log-mel).

Pre-emphasis, a Hann-windowed STFT, a Kaldi-style triangular mel matrix, log and a fixed
affine normalisation. All constants (window, mel matrix) are buffers built once.
"""

from __future__ import annotations

import math

import torch

from hear_mn.audio import reflect_pad

PREEMPHASIS = 0.97
LOG_OFFSET = 1e-5
NORM_SHIFT = 4.5
NORM_SCALE = 5.0
# Sharing frames costs a few extra STFT calls (about 0.3 ms on one CPU thread): it paid
# from about 8 overlapping 160 ms windows on (2 took twice as long), i.e. this many samples.
MIN_SHARED_SAMPLES = 8 * 5120


def kaldi_mel(freq: torch.Tensor | float) -> torch.Tensor | float:
    """Kaldi's mel scale: 1127 ln(1 + f / 700)."""
    if isinstance(freq, torch.Tensor):
        return 1127.0 * torch.log(1.0 + freq / 700.0)
    return 1127.0 * math.log(1.0 + freq / 700.0)


# The reference computed its STFT window and mel matrix in float32 on an x86 CPU, where
# torch's float32 cos and log (SLEEF) are one unit in the last place (ulp) off the correctly
# rounded values at these points (index: +1 one ulp up, -1 one ulp down). Those bits matter:
# the low mel bands hold one or two FFT bins each, so one ulp in a bin's mel value moves the
# band's log-mel by ~1e-5 relative, the whole parity budget; the correctly rounded window
# alone moves it by 1.3e-5. Both are built here from correctly rounded values plus these
# steps, so they have the reference's bits on every platform, whatever its float32 cos and log.
REFERENCE_LOG_ULPS: dict[tuple[int, int], dict[int, int]] = {
    (1024, 32000): {  # ln(1 + f / 700) of FFT bin i, for (n_fft, sample_rate)
        8: 1, 13: 1, 31: -1, 38: -1, 56: 1, 57: -1, 91: 1, 93: 1, 98: 1, 100: -1, 116: 1,
        148: -1, 216: 1, 218: 1, 221: 1, 225: 1, 236: 1, 240: 1, 243: -1, 245: 1, 252: 1,
        316: -1, 367: -1, 385: -1, 387: -1, 415: -1, 437: -1, 472: 1, 475: 1, 476: 1,
        485: 1, 499: 1, 501: 1, 502: 1, 504: 1,
    },
}  # fmt: skip
REFERENCE_COS_ULPS: dict[int, dict[int, int]] = {
    800: {  # cos(2 pi n / 799) of sample n of the symmetric Hann window, for its length
        6: -1, 88: -1, 91: -1, 96: -1, 154: 1, 237: -1, 247: -1, 254: -1, 256: -1, 261: -1,
        275: -1, 309: 1, 319: 1, 352: -1, 357: -1, 369: -1, 372: -1, 380: 1, 393: 1, 414: 1,
        451: -1, 476: 1, 479: 1, 482: 1, 486: 1, 501: 1, 547: -1, 561: -1, 638: 1, 645: 1,
        651: 1, 662: 1, 705: -1, 708: -1, 712: -1, 722: -1, 787: -1, 793: -1,
    },
}  # fmt: skip


def _float32(exact: torch.Tensor) -> torch.Tensor:
    """A float64 result rounded once to float32: an exactly evaluated float32 step."""
    return exact.float()


def _step_ulps(values: torch.Tensor, steps: dict[int, int]) -> torch.Tensor:
    """``values`` (float32) with ``values[i]`` moved by ``steps[i]`` ulps."""
    values = values.clone()
    for index, ulps in steps.items():
        toward = torch.tensor(math.copysign(math.inf, ulps))
        for _ in range(abs(ulps)):
            values[index] = torch.nextafter(values[index], toward)
    return values


def reference_hann_window(length: int) -> torch.Tensor:
    """The symmetric float32 Hann window of ``length`` samples with the reference's bits.

    torch.hann_window's float32 steps (angle, cos, scale, shift), each evaluated exactly; the
    cos correctly rounded, moved by :data:`REFERENCE_COS_ULPS` where the reference's rounds
    otherwise.
    """
    scale = torch.tensor(2 * math.pi / (length - 1), dtype=torch.float32).double()
    angle = _float32(torch.arange(length, dtype=torch.float64) * scale)
    cos = _step_ulps(_float32(torch.cos(angle.double())), REFERENCE_COS_ULPS.get(length, {}))
    return _float32(0.5 - 0.5 * cos.double())


def kaldi_bin_mels(n_fft: int, sample_rate: int) -> torch.Tensor:
    """Kaldi's mel value of each FFT bin below Nyquist, in float32, as the reference has them.

    Every step is float32 arithmetic evaluated exactly (in float64, rounded once to float32),
    so the result does not depend on the platform's float32 log; the log is the correctly
    rounded one, moved by :data:`REFERENCE_LOG_ULPS` where the reference's rounds otherwise.
    """
    freqs = torch.arange(n_fft // 2, dtype=torch.float64) * (sample_rate / n_fft)  # exact
    ratio = _float32(freqs / 700.0)
    log = _float32(torch.log(_float32(1.0 + ratio.double()).double()))
    log = _step_ulps(log, REFERENCE_LOG_ULPS.get((n_fft, sample_rate), {}))
    return _float32(1127.0 * log.double())


def kaldi_mel_banks(
    n_mels: int, n_fft: int, sample_rate: int, f_min: float, f_max: float
) -> torch.Tensor:
    """Kaldi-style triangular mel filters, (n_mels, n_fft // 2): no column for the Nyquist bin.

    Band b spans equal steps on the mel scale from ``f_min`` to ``f_max``; the weight of FFT
    bin i is the triangle's height at that bin's mel value. Computed in float32 with the
    same operation order as the reference and its bins' mel values
    (:func:`kaldi_bin_mels`), so that the matrix matches it to the last bit on any platform.
    """
    mel_low, mel_high = kaldi_mel(f_min), kaldi_mel(f_max)
    step = (mel_high - mel_low) / (n_mels + 1)
    bands = torch.arange(n_mels, dtype=torch.float32)[:, None]
    left = mel_low + bands * step
    centre = mel_low + (bands + 1.0) * step
    right = mel_low + (bands + 2.0) * step
    bin_mel = kaldi_bin_mels(n_fft, sample_rate)
    rising = (bin_mel - left) / (centre - left)
    falling = (right - bin_mel) / (right - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


class LogMelFrontend(torch.nn.Module):
    """(batch, samples) at 32 kHz -> (batch, n_mels, frames) normalised log-mel.

    frames = floor((samples - 1) / hop) + 1. Signals too short for the STFT's reflect padding
    are mirrored further (see :func:`hear_mn.audio.reflect_pad`) instead of failing.
    """

    def __init__(
        self,
        n_mels: int = 128,
        sample_rate: int = 32000,
        n_fft: int = 1024,
        win_length: int = 800,
        hop_length: int = 320,
        f_min: float = 0.0,
        f_max: float = 15000.0,
    ) -> None:
        super().__init__()
        self.n_mels = n_mels
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        window = reference_hann_window(win_length)
        offset = (n_fft - win_length) // 2
        padded_window = torch.zeros(n_fft)
        padded_window[offset : offset + win_length] = window
        self.register_buffer("window", padded_window, persistent=False)
        banks = kaldi_mel_banks(n_mels, n_fft, sample_rate, f_min, f_max)
        mel_matrix = torch.nn.functional.pad(banks, (0, 1))
        self.register_buffer("mel_matrix", mel_matrix, persistent=False)

    def num_frames(self, num_samples: int) -> int:
        """Number of output frames for a signal of ``num_samples`` samples."""
        return (max(num_samples, 2) - 1) // self.hop_length + 1

    def power_spectrogram(self, audio: torch.Tensor) -> torch.Tensor:
        """Pre-emphasised power STFT: (batch, samples) -> (batch, n_fft // 2 + 1, frames)."""
        return self._clip_power(audio).transpose(-1, -2)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self._log_mel_rows(self._clip_power(audio)).transpose(-1, -2).contiguous()

    def _clip_power(self, audio: torch.Tensor) -> torch.Tensor:
        """Pre-emphasised power STFT of mirror-padded clips, frames as rows."""
        half = self.n_fft // 2
        return self._frame_power(reflect_pad(self._emphasise(audio), half, half))

    def sliding_windows(
        self, signal: torch.Tensor, count: int, size: int, hop: int
    ) -> torch.Tensor:
        """Log-mel of the windows ``signal[k * hop : k * hop + size]``, k < count.

        Equal to ``self(signal.unfold(0, size, hop)[:count])``, but when ``hop`` is a
        multiple of the STFT hop, overlapping windows share most of their frames: the frames
        clear of a window's own mirror padding lie on one grid over the whole signal and are
        computed once; only the few edge frames are computed per window. For 160 ms windows
        every 50 ms that halves the frontend's work.
        """
        step, half = self.hop_length, self.n_fft // 2
        first_inner = -(-half // step)  # frame j covers emphasised [j*step - half, j*step + half)
        last_inner = (size - 1 - half) // step
        few = count < 2 or count * size < MIN_SHARED_SAMPLES
        if few or hop % step or first_inner > last_inner:
            return self(signal.unfold(0, size, hop)[:count])
        emphasised = self._emphasise(signal[: (count - 1) * hop + size])
        inner = last_inner - first_inner + 1
        grid_start = first_inner * step - half
        n_grid = (count - 1) * (hop // step) + inner
        grid_end = grid_start + (n_grid - 1) * step + self.n_fft
        grid = self._frame_power(emphasised[None, grid_start:grid_end])[0]
        # Edge frames see the window's own mirror padding (which needs half + 1 samples).
        own = emphasised.unfold(0, size - 1, hop)[:count]
        left_length = max((first_inner - 1) * step + half, half + 1)
        left = self._frame_power(reflect_pad(own[:, :left_length], half, 0))[:, :first_inner]
        right_start = (last_inner + 1) * step - half
        skip = max(0, -(-(right_start - (size - 2 - half)) // step))
        right = self._frame_power(reflect_pad(own[:, right_start - skip * step :], 0, half))
        edges = torch.cat([left, right[:, skip:]], dim=1)
        n_edges = edges.shape[1]
        # Frames as rows: the edge frames of all windows make one long product, not `count`.
        edge_mel = self._log_mel_rows(edges.reshape(count * n_edges, -1))
        edge_mel = edge_mel.reshape(count, n_edges, -1)
        grid_mel = self._log_mel_rows(grid)
        mels = signal.new_empty(count, self.n_mels, inner + n_edges)
        frames = mels.transpose(1, 2)
        frames[:, :first_inner] = edge_mel[:, :first_inner]
        frames[:, first_inner : first_inner + inner] = grid_mel.unfold(
            0, inner, hop // step
        ).transpose(1, 2)
        frames[:, first_inner + inner :] = edge_mel[:, first_inner:]
        return mels

    def _emphasise(self, audio: torch.Tensor) -> torch.Tensor:
        """Pre-emphasis x[t] - 0.97 x[t - 1]: one sample shorter (a 1-sample signal is mirrored)."""
        if audio.shape[-1] < 2:
            audio = reflect_pad(audio, 0, 2 - audio.shape[-1])
        return audio[..., 1:] - PREEMPHASIS * audio[..., :-1]

    def _frame_power(self, padded: torch.Tensor) -> torch.Tensor:
        """Power STFT with frames as rows: (..., samples) -> (..., frames, n_fft // 2 + 1)."""
        spectrum = torch.stft(
            padded,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            window=self.window,
            center=False,
            return_complex=True,
        ).transpose(-1, -2)
        return spectrum.real.square().add_(spectrum.imag.square())

    def _log_mel_rows(self, power: torch.Tensor) -> torch.Tensor:
        """(..., frames, n_fft // 2 + 1) power -> (..., frames, n_mels) normalised log-mel.

        One dense mel product, as the reference computes it: a product by band groups on the
        bins each covers (948 non-zeros of 65,664) measured no faster (0.9x to 1.07x, 1 and
        16 clips of 10 s, 1 and 2 threads) and moved the log-mels 1e-7 off the reference's bits.
        """
        mel = torch.matmul(power, self.mel_matrix.T)
        return mel.add_(LOG_OFFSET).log_().add_(NORM_SHIFT).div_(NORM_SCALE)

    def _power_to_log_mel(self, power: torch.Tensor) -> torch.Tensor:
        """(..., n_fft // 2 + 1, frames) power -> (..., n_mels, frames) normalised log-mel."""
        return self._log_mel_rows(power.transpose(-1, -2)).transpose(-1, -2).contiguous()
