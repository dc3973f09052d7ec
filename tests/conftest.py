"""Fixtures every test shares (an isolated weights cache, random mn04 weights, the local HTTP
server) and the test tiers.

The tiers are support/tiers.py's (tests/README.md): a test is slow when it lives under
``tests/integration/`` or is marked ``@pytest.mark.slow``. The helpers live in
``tests/support/`` (imported as ``support.<module>``; setup.cfg puts ``tests/`` on the path).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
import torch
from support.local_http import _http_server, server  # noqa: F401  (shared fixtures)
from support.runs import save_random_checkpoint
from support.tiers import FAST_FILE_BUDGET, is_slow_path


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory) -> Path:
    """A folder holding a random mn04 checkpoint under its release file name (every mn04
    configuration loads it), for ``$HEAR_MN_WEIGHTS_DIR``."""
    from hear_mn.registry import get_config

    folder = tmp_path_factory.mktemp("weights")
    save_random_checkpoint(folder / get_config("mn04_e1_l").weights.file_name, "mn04_e1_l")
    return folder


@pytest.fixture
def weights_env(_isolated_weights_cache, monkeypatch, random_weights) -> Path:
    """``$HEAR_MN_WEIGHTS_DIR`` set to :func:`random_weights`: mn04 loads without a download."""
    monkeypatch.setenv("HEAR_MN_WEIGHTS_DIR", str(random_weights))
    return random_weights


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """In-process CLI runs set torch's thread count; give every test the same start."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _isolated_weights_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's weights cache or the network from a test."""
    monkeypatch.setenv("HEAR_MN_HOME", str(tmp_path_factory.mktemp("hear_mn_home")))
    monkeypatch.delenv("HEAR_MN_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("HEAR_MN_QUIET", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests under tests/integration/ slow; deselect upstream_bug tests (they watch
    upstream tools and never decide a run) unless ``-m`` names them."""
    for item in items:
        if is_slow_path(item.path):
            item.add_marker(pytest.mark.slow)
    if "upstream_bug" in (config.option.markexpr or ""):
        return
    watchers = [item for item in items if item.get_closest_marker("upstream_bug")]
    if watchers:
        config.hook.pytest_deselected(items=watchers)
        items[:] = [item for item in items if not item.get_closest_marker("upstream_bug")]


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """In the fast tier, name the files over FAST_FILE_BUDGET seconds, so that the tier's
    time cannot creep up unseen: mark them slow or make their fixtures cheaper."""
    if "not slow" not in (config.option.markexpr or ""):
        return
    seconds: defaultdict[str, float] = defaultdict(float)
    for reports in terminalreporter.stats.values():
        for report in reports:
            if isinstance(report, pytest.TestReport):
                seconds[report.nodeid.split("::")[0]] += report.duration
    over = {name: time for name, time in seconds.items() if time > FAST_FILE_BUDGET}
    if over:
        terminalreporter.section("fast-tier files over budget")
        for name, time in sorted(over.items(), key=lambda item: -item[1]):
            terminalreporter.write_line(
                f"{name}: {time:.0f} s (budget {FAST_FILE_BUDGET:.0f} s): mark it slow "
                "(tests/README.md) or make it cheaper"
            )
