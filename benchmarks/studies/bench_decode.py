"""Peak memory and time of ``load_audio`` on a long file: block path against whole-file path.

Writes a stereo 44.1 kHz 16-bit file (2 hours by default) into a temporary folder, then loads
it at 32 kHz in a fresh child process per variant and reports the child's peak resident
memory (ru_maxrss), the time of the call and the size of the returned array. "whole file" is
the path load_audio took before it read in blocks: read everything as float32, average the
channels, resample once. Both variants must return the same samples (same SHA-1).

    python benchmarks/studies/bench_decode.py --minutes 120 --format wav
    python benchmarks/studies/bench_decode.py --smoke --json /tmp/decode.json   # does it run?
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the harness
import harness  # noqa: E402

MIB = 1024 * 1024
SAMPLE_RATE = 32000
FILE_RATE = 44100
VARIANTS = ("blocks", "whole file")


def whole_file_load(path: Path, sample_rate: int) -> np.ndarray:
    """load_audio's former path: the whole file as float32, then its mono mix, then soxr."""
    import soundfile
    import soxr

    data, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    return soxr.resample(mono, file_rate, sample_rate, quality="HQ")


def write_long_file(path: Path, minutes: float) -> None:
    """A stereo tone with a little noise, written a minute at a time."""
    import soundfile

    rng = np.random.default_rng(0)
    frames_left = round(minutes * 60 * FILE_RATE)
    with soundfile.SoundFile(str(path), "w", FILE_RATE, 2, subtype="PCM_16") as sink:
        while frames_left > 0:
            count = min(frames_left, 60 * FILE_RATE)
            t = np.arange(count) / FILE_RATE
            tone = np.stack([0.4 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)])
            sink.write((tone.T + 0.01 * rng.standard_normal((count, 2))).astype(np.float32))
            frames_left -= count


def measure(variant: str, path: Path) -> dict:
    """In this (fresh) process: one load, its time, this process's peak RSS, the result's size."""
    import soundfile  # noqa: F401  (imported before the baseline, as both variants need it)
    import soxr  # noqa: F401

    from hear_mn.audio_io import load_audio

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    load = load_audio if variant == "blocks" else whole_file_load
    audio = load(path, SAMPLE_RATE)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {
        "variant": variant,
        "peak_mib": peak / MIB,
        "baseline_mib": baseline / MIB,
        "seconds": seconds,
        "output_mib": audio.nbytes / MIB,
        "samples": len(audio),
        "sha1": hashlib.sha1(audio.data).hexdigest()[:12],
    }


def main() -> None:
    parser = harness.parser(__doc__, repeats=1)
    parser.add_argument("--minutes", type=float, default=120.0)
    parser.add_argument("--format", choices=("wav", "flac"), default="wav")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "PATH"), help=argparse.SUPPRESS)
    args = harness.parse_args(parser)
    if args.smoke:
        args.minutes = 0.05
    if args.child:
        variant, path = args.child[0], Path(args.child[1])
        if variant == "write":
            write_long_file(path, args.minutes)
        else:
            print(json.dumps(measure(variant, path)))
        return

    def run_child(variant: str, path: Path) -> str:
        # One child per step: ru_maxrss is the child's own (harness.run_child).
        command = [sys.executable, __file__, "--minutes", str(args.minutes), "--child", variant]
        return harness.run_child([*command, str(path)]).stdout

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"long.{args.format}"
        run_child("write", path)
        size_mib = path.stat().st_size / MIB
        rows = [json.loads(run_child(variant, path)) for variant in VARIANTS]
    lines = [
        f"{path.name}: {args.minutes:g} min stereo {FILE_RATE} Hz, {size_mib:.0f} MiB on disk; "
        f"loading at {SAMPLE_RATE} Hz",
        "| variant | peak RSS MiB | RSS before MiB | seconds | output MiB | samples | sha1 |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    lines += [
        "| {variant} | {peak_mib:.0f} | {baseline_mib:.0f} | {seconds:.1f} | {output_mib:.0f} "
        "| {samples} | {sha1} |".format(**row)
        for row in rows
    ]
    payload = {"minutes": args.minutes, "format": args.format, "rows": rows}
    harness.report(args, payload, "\n".join(lines), threads=1)


if __name__ == "__main__":
    main()
