"""Audio-MLP scene embeddings of long signals (issue 22, item 7): the frames a scene resamples
are not held in memory, and the streamed time resampling gives the original's numbers.

The scene embedding resamples every frame of the signal (one per 10 ms) to a fixed number of
steps by a cascade of linear interpolations whose positions depend on the final length, so
a stream cannot resample before it ends. The stream spills its frames to a temporary file
and resamples from there, level by level, in blocks; the result must equal
``resample_time`` (torch's interpolation, as the original computes it) within float32
rounding, and the process's peak memory must not grow with the signal's length.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from support.reference import relative_error

from hear_mn.models.audiomlp.network import resample_time
from hear_mn.models.audiomlp.scene_resampling import SpilledRows, cascade_lengths, resample_rows


@pytest.mark.parametrize(
    ("frames", "steps", "width"),
    [
        (5, 16, 4),  # shorter than the steps: zero-padded
        (16, 16, 4),  # exactly the steps
        (17, 16, 4),  # one level, straight to the steps
        (32, 16, 3),  # one halving, nothing after it
        (1000, 16, 8),
        (4097, 198, 8),  # audiomae's steps
        (360_000 - 2, 16, 2),  # an hour of kwmlp frames: float32 positions matter here
        (123_457, 198, 2),
    ],
)
@pytest.mark.parametrize("block_rows", [7, 4096])
def test_streamed_resampling_equals_the_original_cascade(frames, steps, width, block_rows) -> None:
    rows = np.random.default_rng(frames).standard_normal((frames, width)).astype(np.float32)
    expected = resample_time(torch.from_numpy(rows)[None], steps)[0].numpy()
    with SpilledRows(width) as spilled:
        for start in range(0, frames, 1000):
            spilled.add(rows[start : start + 1000])
        got = resample_rows(spilled, steps, block_rows=block_rows)
    assert got.shape == expected.shape == (steps, width)
    assert got.dtype == np.float32
    assert relative_error(got, expected) <= 1e-6


def test_the_cascade_is_one_rule_for_both_paths() -> None:
    assert cascade_lengths(360_000 - 2, 16) == [360_000 - 2 >> k for k in range(15)] + [16]
    assert cascade_lengths(32, 16) == [32, 16]
    assert cascade_lengths(16, 16) == [16]
    assert cascade_lengths(5, 16) == [5]


def test_spilled_rows_refuse_rows_of_another_width() -> None:
    with SpilledRows(4) as spilled, pytest.raises(ValueError, match="width 4"):
        spilled.add(np.zeros((3, 5), np.float32))


# One hour pushed through kwmlp's scene stream with a cheap stand-in for the encoder (the
# stream's memory is under test, not the network): peak RSS after the first minute and at
# the end. Keeping the hour's frames would add 92 MB (360,000 frames of 64 floats).
_PEAK_GROWTH = textwrap.dedent(
    """
    import resource, sys, torch
    from hear_mn.registry import create_model
    model = create_model("kwmlp", pretrained=False)
    def frames(chunks):
        return chunks[:, :6400].reshape(-1, 100, 64) + 1.0
    model.chunk_frames = frames
    stream = model.scene_stream()
    block = torch.full((32 * 16000,), 0.01)
    for _ in range(4):
        stream.push(block)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(int(3600 / 32)):
        stream.push(block)
    embedding, _ = stream.close()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert embedding.shape == (1, 1024) and torch.isfinite(embedding).all()
    print((after - before) / 1024)
    """
)


def test_an_hour_of_scene_stream_does_not_hold_its_frames() -> None:
    run = subprocess.run(
        [sys.executable, "-c", _PEAK_GROWTH], capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr
    growth_mib = float(run.stdout.split()[-1])
    assert growth_mib < 30, f"peak memory grew by {growth_mib:.0f} MiB over an hour of signal"


def test_a_failed_push_leaves_no_frames_behind_and_can_be_retried(monkeypatch) -> None:
    """A push that fails after its frames were spilled (here: the check for non-finite
    output is made to fail) is rolled back: the retry does not count those frames twice."""
    from hear_mn import streaming
    from hear_mn.registry import create_model

    torch.manual_seed(0)
    model = create_model("kwmlp", pretrained=False)
    audio = torch.from_numpy(np.random.default_rng(1).standard_normal(5 * 16000) * 0.1).float()
    expected = model.scene_embeddings(audio[None])[0]
    stream = model.scene_stream()
    stream.push(audio[: 2 * 16000])

    def refuse(*args, **kwargs):
        raise RuntimeError("simulated failure after the frames were kept")

    with monkeypatch.context() as patch:
        patch.setattr(streaming, "require_finite", refuse)
        with pytest.raises(RuntimeError, match="simulated"):
            stream.push(audio[2 * 16000 :])
    stream.push(audio[2 * 16000 :])
    embedding, _ = stream.close()
    assert relative_error(embedding[0], expected) <= 1e-5
