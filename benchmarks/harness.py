"""The benchmarks' shared harness: interleaved timing, medians and ratios, peak memory of a
child process, the environment record, JSON output and one command line.

A benchmark script is a short list of cases plus what is its own: it builds its command
line with :func:`parser` (``--repeats``, ``--json``, ``--threads``, ``--quick``,
``--smoke``), reads it with :func:`parse_args`, times its contenders with :func:`interleave`
and ends with :func:`report` (prints its table, writes its JSON with the environment
record). Contenders are timed in alternation within every repeat, the order reversed every
other repeat, so that a noisy machine's slow and fast phases fall on all of them alike:
their ratios hold where absolute seconds drift. Compare ratios, not seconds.

``--smoke`` is for the tests (tests/integration/test_benchmarks.py): tiny inputs, one repeat, random
weights; it checks that a script runs and writes well-formed JSON, and measures nothing.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

MIB = 1024 * 1024
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
Clock = Callable[[], float]


@dataclass(frozen=True)
class Timing:
    """The seconds of every timed call of one contender, warm-up excluded."""

    samples: tuple[float, ...]

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)

    def as_dict(self) -> dict[str, object]:
        """min, median, max and every sample, in seconds (for JSON)."""
        return {
            "min_s": self.min,
            "median_s": self.median,
            "max_s": self.max,
            "samples_s": list(self.samples),
        }


def interleave(
    contenders: Mapping[str, Callable[[], object]],
    repeats: int,
    *,
    warmup: int = 1,
    clock: Clock = time.perf_counter,
) -> dict[str, Timing]:
    """Time every contender ``repeats`` times, in alternation, after ``warmup`` untimed calls
    of each; the order is reversed every other repeat (no contender always runs first)."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    names = list(contenders)
    for _ in range(warmup):
        for name in names:
            contenders[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            start = clock()
            contenders[name]()
            samples[name].append(clock() - start)
    return {name: Timing(tuple(values)) for name, values in samples.items()}


def medians(timings: Mapping[str, Timing]) -> dict[str, float]:
    """The median seconds of each contender."""
    return {name: timing.median for name, timing in timings.items()}


def ratios(timings: Mapping[str, Timing], baseline: str) -> dict[str, float]:
    """Each contender's median time over the baseline's (below 1: faster than it)."""
    reference = timings[baseline].median
    return {name: timing.median / reference for name, timing in timings.items()}


def speedups(timings: Mapping[str, Timing], baseline: str) -> dict[str, float]:
    """The baseline's median time over each contender's (above 1: faster than it)."""
    reference = timings[baseline].median
    return {name: reference / timing.median for name, timing in timings.items()}


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``run`` after one warm-up call."""
    return interleave({"run": run}, repeats)["run"].median


@dataclass(frozen=True)
class ChildRun:
    """A finished child process: its output, wall time and peak resident memory."""

    stdout: str
    seconds: float
    peak_rss_mib: float


# A small process between this one and the measured one: Linux carries a process's peak
# resident memory (ru_maxrss) across exec, so a child started from a large process would
# report at least that process's size. Forked from this small one, it starts from ~10 MiB.
_MEASURING_PARENT = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as record:
    record.write(str(usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_child(
    command: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> ChildRun:
    """Run ``command`` in a fresh process, which must succeed, and measure its own peak
    resident memory (``os.wait4``'s rusage), not that of this process."""
    with tempfile.TemporaryDirectory(prefix="bench_child_") as scratch:
        peak_file = Path(scratch) / "peak"
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _MEASURING_PARENT, str(peak_file), *command],
            capture_output=True,
            text=True,
            env=None if env is None else dict(env),
            cwd=cwd,
        )
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}"
            )
        return ChildRun(done.stdout, seconds, int(peak_file.read_text()) / MIB)


def cpu_model() -> str:
    """The CPU model from /proc/cpuinfo, or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _version(package: str) -> str | None:
    module = sys.modules.get(package)
    if module is not None and hasattr(module, "__version__"):
        return str(module.__version__)
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment(threads: int | Sequence[int] | None = None) -> dict[str, object]:
    """Where and with what a benchmark ran: machine, CPU, cores, library versions, torch
    threads, the load average (a loaded machine's seconds are not an idle one's)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if threads is None and "torch" in sys.modules:
        threads = sys.modules["torch"].get_num_threads()
    return {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "usable_cpus": usable,
        "python": platform.python_version(),
        "torch": _version("torch"),
        "numpy": _version("numpy"),
        "onnxruntime": _version("onnxruntime"),
        "threads": list(threads) if isinstance(threads, Sequence) else threads,
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def thread_counts(text: str) -> list[int]:
    """``"1,2"`` -> ``[1, 2]``: the ``--threads`` of a benchmark that compares counts."""
    try:
        counts = [int(part) for part in text.split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(f"thread counts must be integers, got {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"thread counts must be at least 1, got {text!r}")
    return counts


def parser(
    doc: str, *, repeats: int = 3, threads: str = "2", several_threads: bool = False
) -> argparse.ArgumentParser:
    """The shared command line; a script adds its own options to it. ``doc`` is the
    script's docstring (its first line is the description). ``--threads`` is one count,
    or with ``several_threads`` a comma-separated list of counts."""
    made = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    made.add_argument("--repeats", type=int, default=repeats, help=f"default {repeats}")
    made.add_argument("--json", type=Path, help="also write the results to this JSON file")
    made.add_argument(
        "--threads",
        type=thread_counts if several_threads else int,
        default=thread_counts(threads) if several_threads else int(threads),
        help=f"torch threads{' (comma-separated counts)' if several_threads else ''}, "
        f"default {threads}",
    )
    made.add_argument("--quick", action="store_true", help="shorter inputs, fewer cases")
    made.add_argument(
        "--smoke",
        action="store_true",
        help="tiny inputs, one repeat, random weights: checks that the script runs",
    )
    return made


def parse_args(
    made: argparse.ArgumentParser,
    argv: Sequence[str] | None = None,
    default_json: Path | None = None,
) -> argparse.Namespace:
    """Parse; ``--smoke`` implies ``--quick`` and one repeat. ``default_json`` (a results
    file) is written only by a full run: never by ``--quick`` or ``--smoke``."""
    args = made.parse_args(argv)
    if args.smoke:
        args.quick = True
        args.repeats = 1
    if args.json is None and not args.quick:
        args.json = default_json
    return args


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table of already formatted cells, one row per item of ``rows``."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def command_line() -> str:
    """This run's command, as a user would type it from the repository root."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    return " ".join(["python", str(shown), *sys.argv[1:]])


def write_json(path: Path, payload: Mapping[str, object]) -> None:
    """Write ``payload`` as indented JSON, atomically (a temporary file, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(payload, indent=1) + "\n")
    os.replace(temporary, path)


def report(
    args: argparse.Namespace,
    payload: Mapping[str, object],
    table: str,
    *,
    threads: int | Sequence[int] | None = None,
) -> dict[str, object]:
    """Print ``table``; write ``payload`` with the command and the environment record to
    ``--json`` when given. Returns what was (or would be) written."""
    record = {
        **payload,
        "command": command_line(),
        "repeats": args.repeats,
        "smoke": args.smoke,
        "environment": {
            **environment(args.threads if threads is None else threads),
            **dict(payload.get("environment", {})),  # type: ignore[arg-type]
        },
    }
    print(table, flush=True)
    if args.json is not None:
        write_json(args.json, record)
        print(f"wrote {args.json}", flush=True)
    return record
