"""Loopback-only network namespaces for the tests that start Ray (Ray binds its servers to
every interface): ``unshare -n``, then ``ip link set lo up``; needs root."""

from __future__ import annotations

import shutil
import subprocess

import pytest


def namespace_problem() -> str | None:
    """Why no loopback-only network namespace can be made here (None: it can)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare and ip (util-linux, iproute2) are needed for a loopback-only namespace"
    probe = subprocess.run(
        ["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        return f"cannot make a loopback-only network namespace (needs root): {probe.stderr}"
    return None


def in_network_namespace(command: list[str], **kwargs: object) -> subprocess.CompletedProcess:
    """``command`` run in a loopback-only network namespace (``unshare -n``, ``lo`` up); the
    calling test skips where no such namespace can be made (it needs root)."""
    problem = namespace_problem()
    if problem is not None:
        pytest.skip(problem)
    script = 'ip link set lo up && exec "$@"'
    return subprocess.run(
        ["unshare", "-n", "sh", "-c", script, "sh", *command],
        capture_output=True,
        text=True,
        timeout=900,
        **kwargs,
    )
