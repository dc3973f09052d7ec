"""benchmarks/harness.py: interleaving, medians and ratios with a fake clock, the
environment record, the shared command line and the child's peak memory."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from support import ROOT

HARNESS = ROOT / "benchmarks" / "harness.py"


@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("benchmark_harness", HARNESS)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


class FakeClock:
    """A clock that each contender advances by its own cost; calls are logged in order."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[str] = []

    def __call__(self) -> float:
        return self.now

    def contender(self, name: str, costs: list[float]):
        remaining = iter(costs)

        def run() -> None:
            self.calls.append(name)
            self.now += next(remaining)

        return run


def test_contenders_alternate_and_the_order_reverses_every_other_repeat(harness) -> None:
    clock = FakeClock()
    contenders = {name: clock.contender(name, [0.0] * 10) for name in ("base", "fast", "slow")}
    harness.interleave(contenders, repeats=3, warmup=1, clock=clock)
    warmup, timed = clock.calls[:3], clock.calls[3:]
    assert warmup == ["base", "fast", "slow"]
    assert timed == ["base", "fast", "slow", "slow", "fast", "base", "base", "fast", "slow"]


def test_medians_min_max_and_ratios_against_the_baseline(harness) -> None:
    clock = FakeClock()
    contenders = {
        # warm-up cost first (never timed), then one cost per repeat
        "base": clock.contender("base", [99.0, 4.0, 2.0, 3.0]),
        "other": clock.contender("other", [99.0, 1.0, 1.5, 9.0]),
    }
    timings = harness.interleave(contenders, repeats=3, clock=clock)
    assert timings["base"].samples == (4.0, 2.0, 3.0)
    assert (timings["base"].min, timings["base"].median, timings["base"].max) == (2.0, 3.0, 4.0)
    assert timings["other"].median == 1.5
    assert harness.medians(timings) == {"base": 3.0, "other": 1.5}
    assert harness.ratios(timings, "base") == {"base": 1.0, "other": 0.5}
    assert harness.speedups(timings, "base") == {"base": 1.0, "other": 2.0}
    assert timings["other"].as_dict() == {
        "min_s": 1.0,
        "median_s": 1.5,
        "max_s": 9.0,
        "samples_s": [1.0, 1.5, 9.0],
    }


def test_zero_repeats_are_refused(harness) -> None:
    with pytest.raises(ValueError, match="repeats must be at least 1"):
        harness.interleave({"a": lambda: None}, repeats=0)


def test_environment_record(harness) -> None:
    record = harness.environment(threads=[1, 2])
    for key in ("cpu", "cpus", "torch", "numpy", "onnxruntime", "python", "load_average"):
        assert record[key] not in (None, ""), key
    assert record["threads"] == [1, 2]
    assert len(record["load_average"]) == 3
    json.dumps(record)


def test_the_shared_command_line(harness, tmp_path: Path) -> None:
    made = harness.parser("Doc.\n\nMore.", repeats=5, threads="1,2", several_threads=True)
    args = harness.parse_args(made, [], default_json=tmp_path / "r.json")
    assert (args.repeats, args.threads, args.json) == (5, [1, 2], tmp_path / "r.json")
    smoke = harness.parse_args(made, ["--smoke", "--threads", "2"], tmp_path / "r.json")
    assert (smoke.repeats, smoke.quick, smoke.threads, smoke.json) == (1, True, [2], None)
    with pytest.raises(SystemExit):
        harness.parse_args(made, ["--threads", "0"])


def test_report_writes_json_with_the_environment(harness, tmp_path: Path, capsys) -> None:
    made = harness.parser("Doc.")
    args = harness.parse_args(made, ["--json", str(tmp_path / "out.json")])
    harness.report(args, {"rows": [1], "environment": {"extra": "x"}}, "the table")
    written = json.loads((tmp_path / "out.json").read_text())
    assert written["rows"] == [1]
    assert written["environment"]["extra"] == "x"
    assert written["environment"]["threads"] == 2
    assert "the table" in capsys.readouterr().out


def test_a_childs_peak_memory_is_its_own(harness) -> None:
    small = harness.run_child([sys.executable, "-c", "print('ok')"])
    big = harness.run_child(
        [
            sys.executable,
            "-c",
            "b = bytearray(200 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])",
        ]
    )
    assert small.stdout.strip() == "ok"
    assert small.peak_rss_mib < 100, "the child should not count this (larger) process's memory"
    assert big.peak_rss_mib > small.peak_rss_mib + 150
    with pytest.raises(RuntimeError, match="failed"):
        harness.run_child([sys.executable, "-c", "raise SystemExit(3)"])
