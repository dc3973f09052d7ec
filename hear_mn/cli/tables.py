"""The per-file, per-window reports of ``hear-mn tag`` and ``hear-mn predict``: each window's
top classes as a table on stdout, or every file in one JSON report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from hear_mn.cli.common import EXIT_FAILED, EXIT_OK, out, report_failures, report_ignored

if TYPE_CHECKING:
    import numpy as np

    from hear_mn.audio_io import AudioInputs


def top_classes(scores: np.ndarray, top_k: int) -> np.ndarray:
    """The indices of the ``top_k`` highest ``scores``, highest first (ties: lower index)."""
    import numpy as np  # not at the top: every hear-mn command imports this module

    return np.argsort(-scores, kind="stable")[:top_k]


def print_segments(entry: dict, ranked: str, score: str) -> None:
    """One file's table: each segment's span, then its ``entry[...][ranked]`` classes with
    their ``score``, one a line."""
    out(f"{entry['file']}  ({entry['duration_s']:.2f} s)")
    for segment in entry["segments"]:
        span = f"{segment['start_s']:7.2f}-{segment['end_s']:.2f} s"
        for rank, item in enumerate(segment[ranked]):
            lead = span if rank == 0 else " " * len(span)
            out(f"  {lead}  {item[score]:.3f}  {item['label']}")
    out()


def finish(
    report: dict | None,
    failures: list[tuple[Path, str]],
    scan: AudioInputs,
    quiet: bool,
    verb: str,
) -> int:
    """Print the JSON ``report`` (None: the tables are out already) with its failures, then
    the ignored and failed files on stderr; the exit code (1 when files failed)."""
    if report is not None:
        report["failures"] = [{"file": str(path), "error": why} for path, why in failures]
        out(json.dumps(report, indent=2))
    report_ignored(scan.ignored, quiet)
    report_failures(failures, verb)
    return EXIT_FAILED if failures else EXIT_OK
