"""Peak memory of embedding one file against its length: block by block (this tree) and
whole (a baseline revision), measured in the same run.

For each model, mode (scene, timestamps), file length and code (this tree, and the
baseline revision's ``hear_mn`` extracted with ``git archive``), a fresh child process
builds the model with random weights (memory does not depend on their values), embeds one
16 kHz mono FLAC with :func:`hear_mn.batch.embed_files` (what ``hear-mn embed`` runs) and
exits; its peak resident memory is read from ``os.wait4``'s rusage (``ru_maxrss``). The
output's size is that of its arrays (embedding and timestamps).

    python benchmarks/bench_long_file_memory.py --threads 1 \
        --models kwmlp,audiomae,mn04_e1_l,dymn04_all_b_mel_avgs      # 10 s, 10 min, 1 h
    python benchmarks/bench_long_file_memory.py --lengths 10,60 --models kwmlp --json /tmp/m.json
    python benchmarks/bench_long_file_memory.py --smoke --json /tmp/m.json   # does it run?

A full run (no ``--quick``, default lengths) writes benchmarks/results/long_file_memory.json
and .md (the table printed). ``--smoke``: files of 1 and 2 s, kwmlp scene, this tree only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import harness
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MIB = 1024 * 1024
RATE = 16000
# The last revision that decoded and embedded every file whole (before issue 22, item 7).
BASELINE = "6993212"

CHILD = r"""
import json, sys, time
import numpy as np, torch
from hear_mn.batch import embed_files
from hear_mn.registry import create_model
path, name, mode, out = sys.argv[1:5]
torch.set_num_threads(int(sys.argv[5]))
torch.manual_seed(0)
model = create_model(name, pretrained=False)
start = time.perf_counter()
report = embed_files([path], model, out, timestamps=mode == "timestamps", overwrite=True)
seconds = time.perf_counter() - start
assert report.written and not report.failures, report.failures
with np.load(report.written[0]) as data:
    size = sum(data[key].nbytes for key in ("embedding", "timestamps") if key in data.files)
print(json.dumps({"seconds": seconds, "output_bytes": int(size)}))
"""


def make_flac(path: Path, seconds: float) -> Path:
    """A 16 kHz mono FLAC of ``seconds``: tones and noise, written a minute at a time."""
    import soundfile as sf

    if path.exists():
        return path
    rng = np.random.default_rng(0)
    total, block = int(seconds * RATE), 60 * RATE
    partial = path.with_suffix(".part.flac")
    with sf.SoundFile(partial, "w", RATE, 1, subtype="PCM_16") as file:
        for start in range(0, total, block):
            n = min(block, total - start)
            t = (start + np.arange(n)) / RATE
            tone = 0.2 * np.sin(2 * np.pi * (220 + 30 * np.sin(t / 7)) * t)
            file.write((tone + 0.02 * rng.standard_normal(n)).astype(np.float32))
    partial.rename(path)
    return path


def extract_revision(revision: str, into: Path) -> Path:
    """The package ``hear_mn`` of ``revision`` (``git archive``), under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision, "hear_mn"], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def run_child(source: Path, path: Path, name: str, mode: str, threads: int, out: Path) -> dict:
    """One child process embedding ``path`` with the ``hear_mn`` found in ``source``, reaped
    by ``os.wait4`` so that the rusage is its own."""
    environment = {**os.environ, "PYTHONPATH": str(source), "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, "-c", CHILD, str(path), name, mode, str(out), str(threads)]
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        child = subprocess.Popen(command, env=environment, stdout=stdout, stderr=stderr, cwd=out)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        stdout.seek(0)
        stderr.seek(0)
        if child.returncode != 0:
            tail = stderr.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{name} {mode} {path.name} failed:\n{tail}")
        result = json.loads(stdout.read().decode().strip().splitlines()[-1])
    return {**result, "wall_seconds": wall, "peak_rss_mib": usage.ru_maxrss * 1024 / MIB}


def _length_name(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def table(rows: list[dict]) -> str:
    """The results as a Markdown table, the two codes side by side."""
    lines = [
        "| model | mode | file | output (MiB) | whole: peak RSS (MiB) | blocks: peak RSS (MiB) "
        "| blocks: peak - output (MiB) | whole: time (s) | blocks: time (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    keyed = {(r["model"], r["mode"], r["seconds_of_audio"], r["code"]): r for r in rows}
    for model, mode, length, code in keyed:
        if code != "blocks":
            continue
        blocks, whole = (
            keyed[(model, mode, length, code)],
            keyed.get((model, mode, length, "whole")),
        )
        output = blocks["output_bytes"] / MIB
        lines.append(
            f"| {model} | {mode} | {_length_name(length)} | {output:.1f} | "
            f"{whole['peak_rss_mib'] if whole else float('nan'):.0f} | {blocks['peak_rss_mib']:.0f} | "
            f"{blocks['peak_rss_mib'] - output:.0f} | "
            f"{whole['seconds'] if whole else float('nan'):.1f} | {blocks['seconds']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = harness.parser(__doc__, repeats=1, threads="2")
    parser.add_argument("--lengths", default="10,600,3600", help="file lengths, seconds")
    parser.add_argument("--models", default="kwmlp,mn04_e1_l")
    parser.add_argument("--modes", default="scene,timestamps")
    parser.add_argument("--baseline", default=BASELINE, help="revision embedding files whole")
    parser.add_argument("--audio-dir", type=Path, help="where the FLAC files are kept")
    full_run = "--lengths" not in sys.argv and "--smoke" not in sys.argv
    args = harness.parse_args(
        parser, default_json=RESULTS / "long_file_memory.json" if full_run else None
    )
    if args.smoke:
        args.lengths, args.models, args.modes = "1,2", "kwmlp", "scene"
    lengths = [float(value) for value in args.lengths.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-long-") as scratch:
        scratch = Path(scratch)
        audio_dir = args.audio_dir or scratch
        audio_dir.mkdir(parents=True, exist_ok=True)
        files = {s: make_flac(audio_dir / f"signal_{s:g}s.flac", s) for s in lengths}
        codes = (
            {} if args.smoke else {"whole": extract_revision(args.baseline, scratch / "baseline")}
        )
        codes["blocks"] = ROOT
        rows = []
        for model in args.models.split(","):
            for mode in args.modes.split(","):
                for length in lengths:
                    for code, source in codes.items():
                        out = scratch / f"out-{code}"
                        out.mkdir(exist_ok=True)
                        measured = run_child(source, files[length], model, mode, args.threads, out)
                        row = {
                            "model": model,
                            "mode": mode,
                            "seconds_of_audio": length,
                            "code": code,
                            **measured,
                        }
                        rows.append(row)
                        print(json.dumps(row), flush=True)
    text = (
        f"Peak resident memory embedding one 16 kHz mono FLAC with embed_files, random "
        f"weights, {args.threads} threads; whole = revision {args.baseline} (file decoded "
        f"and embedded whole), blocks = this tree.\n\n{table(rows)}\n"
    )
    harness.report(args, {"baseline": args.baseline, "rate": RATE, "rows": rows}, text)
    if full_run and args.json == RESULTS / "long_file_memory.json":
        (RESULTS / "long_file_memory.md").write_text(text)


if __name__ == "__main__":
    main()
