"""Peak memory of computing a classifier's training embeddings from one long recording:
the whole file as one example, and twelve one-second segments of it (``file,label,start,end``),
this tree against a baseline revision, in the same run.

For each file length and code (this tree, and the baseline revision's ``hear_mn`` extracted
with ``git archive``), a fresh child process builds kwmlp (shipped weights), embeds the
examples with :func:`hear_mn.classifier.features.embed_examples` (what ``hear-mn fit`` runs
before training) at one thread and exits; its peak resident memory is its own
(``harness.run_child``). The baseline decoded a whole-file example whole, and a file with
segments whole too.

    python benchmarks/studies/bench_fit_memory.py --baseline d93e8ae      # 10 min and 1 h
    python benchmarks/studies/bench_fit_memory.py --smoke --json /tmp/fit_memory.json
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import harness  # noqa: E402
from bench_long_file_memory import extract_revision, make_flac  # noqa: E402

# The revision before long whole-file examples went block by block and segments were kept
# as the file streamed by (issue 24).
BASELINE = "7212fd3"

CHILD = r"""
import sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
import hear_mn
from hear_mn.classifier.data import read_labelled
from hear_mn.classifier.features import embed_examples
labels, cache = Path(sys.argv[1]), Path(sys.argv[2])
data = read_labelled(labels)
start = time.perf_counter()
embedded = embed_examples(data.examples, hear_mn.create_model("kwmlp"), cache)
assert not embedded.failures, embedded.failures
print(time.perf_counter() - start, hear_mn.__file__)
"""


def labelled(folder: Path, recording: Path, seconds: float) -> dict[str, Path]:
    """The two ways of labelling ``recording``: a class folder holding it whole, and a CSV
    of twelve one-second segments spread over it."""
    whole = folder / "whole"
    (whole / "drone").mkdir(parents=True, exist_ok=True)
    link = whole / "drone" / recording.name
    if not link.exists():
        link.symlink_to(recording)
    rows = ["file,label,start,end"]
    step = seconds / 12
    rows += [
        f"{recording},{'a' if k % 2 else 'b'},{k * step:.3f},{k * step + 1:.3f}" for k in range(12)
    ]
    segments = folder / f"segments_{seconds:g}.csv"
    segments.write_text("\n".join(rows) + "\n")
    return {"whole file": whole, "12 segments": segments}


def main() -> None:
    parser = harness.parser(__doc__, repeats=1, threads="1")
    parser.add_argument("--lengths", default="600,3600", help="recording lengths, seconds")
    parser.add_argument("--baseline", default=BASELINE, help="revision to compare with")
    args = harness.parse_args(parser, default_json=harness.RESULTS / "fit_memory.json")
    lengths = [2.0, 3.0] if args.smoke else [float(v) for v in args.lengths.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-fit-memory-") as scratch:
        scratch = Path(scratch)
        codes = {"this tree": harness.ROOT}
        if not args.smoke:
            codes["baseline"] = extract_revision(args.baseline, scratch / "baseline")
        for seconds in lengths:
            recording = make_flac(scratch / f"recording_{seconds:g}s.flac", seconds)
            for how, labels in labelled(scratch / "labels", recording, seconds).items():
                for code, source in codes.items():
                    run = harness.run_child(
                        [sys.executable, "-c", CHILD, str(labels), str(scratch / f"cache-{code}")],
                        env={**os.environ, "PYTHONPATH": str(source), "OMP_NUM_THREADS": "1"},
                        cwd=scratch,  # not the repository: `python -c` puts its folder first
                    )
                    imported = Path(run.stdout.split()[-1]).resolve()
                    if not imported.is_relative_to(Path(source).resolve()):
                        raise RuntimeError(f"the {code} child imported {imported}, not {source}")
                    rows.append(
                        {
                            "seconds_of_audio": seconds,
                            "examples": how,
                            "code": code,
                            "peak_rss_mib": run.peak_rss_mib,
                            "embedding_s": float(run.stdout.split()[-2]),
                        }
                    )
                    shutil.rmtree(scratch / f"cache-{code}")  # the next child computes again
    cells = [
        [
            f"{row['seconds_of_audio']:g} s",
            row["examples"],
            row["code"],
            f"{row['peak_rss_mib']:.0f}",
            f"{row['embedding_s']:.1f}",
        ]
        for row in rows
    ]
    table = harness.markdown_table(
        ["recording", "examples", "code", "peak RSS (MiB)", "embedding (s)"], cells
    )
    harness.report(args, {"baseline": args.baseline, "rows": rows}, table)


if __name__ == "__main__":
    main()
