"""Per-window latency of the on-device streaming example (examples/edge_stream.py).

    python benchmarks/bench_edge.py                          # mn04_e1_l, mn10_e1_l; 1 thread
    python benchmarks/bench_edge.py --models mn04_e1_l --threads 1,2 --seconds 10
    python benchmarks/bench_edge.py --smoke --json /tmp/edge.json   # does it run?

Each model is exported with its frontend (random weights: the latency does not depend on
them) to an ONNX file; a 20 s WAV file (a tone plus noise, 32 kHz) is written; then the
example runs on it in its own process, exactly as a user would
(``python examples/edge_stream.py MODEL.onnx input.wav --threads N --quiet --json OUT``):
one ``session.run`` per 160 ms window, every 50 ms of audio, batch 1. The table gives, per
model and thread count, the windows, median and 95th percentile latency of one window,
the real-time factor (time in the model / audio duration) and the file's size. Results go
to ``benchmarks/results/edge_latency.json`` with the commands that produced them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import harness
import numpy as np
import soundfile as sf
import torch

import hear_mn
from hear_mn.export import export_onnx

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "edge_stream.py"
RESULTS = harness.RESULTS / "edge_latency.json"
MODELS = ("mn04_e1_l", "mn10_e1_l")
SAMPLE_RATE = 32000


def write_wav(path: Path, seconds: float) -> None:
    """``seconds`` of a 440 Hz tone plus noise, mono float32 at 32 kHz."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    audio = 0.4 * np.sin(2 * np.pi * 440.0 * t) + 0.1 * rng.standard_normal(t.size)
    sf.write(str(path), audio.astype(np.float32), SAMPLE_RATE, subtype="FLOAT")


def export(name: str, folder: Path) -> Path:
    """A random-weight ``name`` exported with its frontend to ``folder/name.onnx``."""
    torch.manual_seed(0)
    model = hear_mn.create_model(name, pretrained=False)
    return export_onnx(model, folder / f"{name}.onnx")


def run_example(onnx_path: Path, wav: Path, threads: int, out: Path) -> tuple[list[str], dict]:
    """The example's command line and its ``--json`` record."""
    command = [
        sys.executable,
        str(EXAMPLE.relative_to(ROOT)),
        str(onnx_path),
        str(wav),
        "--threads",
        str(threads),
        "--quiet",
        "--json",
        str(out),
    ]
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return command, json.loads(out.read_text())


def main() -> None:
    """Export, run, print the table, write the results."""
    parser = harness.parser(__doc__, repeats=1, threads="1", several_threads=True)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated names")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the WAV file")
    args = harness.parse_args(parser, default_json=RESULTS)
    if args.smoke:
        args.models, args.seconds, args.threads = MODELS[0], 1.0, args.threads[:1]
    rows = []
    lines = [
        f"{args.seconds:g} s of audio, one run per row",
        f"{'model':12} {'thr':>3} {'windows':>7} {'median ms':>9} {'p95 ms':>8} "
        f"{'RTF':>7} {'file MB':>8}",
    ]
    with tempfile.TemporaryDirectory(prefix="bench_edge_") as temp:
        folder = Path(temp)
        wav = folder / "input.wav"
        write_wav(wav, args.seconds)
        for name in args.models.split(","):
            onnx_path = export(name, folder)
            size = onnx_path.stat().st_size
            for threads in args.threads:
                command, record = run_example(onnx_path, wav, threads, folder / "out.json")
                summary = record["summary"]
                rows.append(
                    {
                        "model": name,
                        "threads": threads,
                        "file_bytes": size,
                        "embedding_size": len(record["embeddings"][0]),
                        **summary,
                        "command": " ".join(["python", *command[1:]]).replace(temp, "$TMP"),
                    }
                )
                lines.append(
                    f"{name:12} {threads:>3} {summary['windows']:>7} "
                    f"{summary['median_ms']:9.2f} {summary['p95_ms']:8.2f} "
                    f"{summary['real_time_factor']:7.4f} {size / 1e6:8.2f}"
                )
    payload = {
        "benchmark": harness.command_line(),
        "torch_for_export": torch.__version__,
        "audio_seconds": args.seconds,
        "weights": "random (torch.manual_seed(0)); latency does not depend on the values",
        "notes": "one session.run per 160 ms window, batch 1, every 50 ms of audio; "
        "real_time_factor = time in session.run / audio duration",
        "rows": rows,
    }
    harness.report(args, payload, "\n".join(lines))


if __name__ == "__main__":
    main()
