"""Runs inside a loopback-only network namespace (``tests/integration/test_ray_engine.py`` starts
it with ``unshare -n``): a local Ray cluster started by ``ray start --head`` with its temporary
folder under the test's folder, ``hear-mn embed --engine ray --address`` jobs against it (one
with an actor killed by PID mid-run, then the same job again, which must skip everything), the
listening sockets seen while the cluster is up, and ``ray stop``.

    python tests/support/ray_cluster_job.py WORK_DIR ARGS_JSON

``ARGS_JSON``: {"embed": [common hear-mn embed arguments], "jobs": {name: [extra
arguments]}, "kill": name of the job whose actor is killed, "temp_dir": Ray's folder}. Writes
``WORK_DIR/result.json``: per job its exit code, stdout and stderr, whether and when an
actor was killed, the network interfaces and the listening sockets.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

LISTEN = "0A"


def listening_sockets() -> list[str]:
    """host:port of every listening TCP socket in this network namespace."""
    found = []
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != LISTEN:
                continue
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)
            # /proc prints each 32-bit word in host (little-endian) order.
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.append(f"{socket.inet_ntop(family, raw)}:{int(port, 16)}")
    return sorted(set(found))


def network_interfaces() -> list[str]:
    """Names of this network namespace's interfaces (/proc/net/dev is per namespace;
    /sys/class/net shows the namespace sysfs was mounted in)."""
    lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    return sorted(line.split(":")[0].strip() for line in lines)


def worker_pids() -> list[int]:
    """PIDs of the Ray actor processes that run hear-mn's embedding worker."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if command.startswith("ray::") and "EmbeddingWorker" in command:
            pids.append(int(entry.name))
    return pids


def run_job(arguments: list[str], env: dict, out_dir: Path, kill: bool) -> dict:
    """One ``hear-mn embed`` run; with ``kill``, SIGKILL the actor once 2 outputs exist."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "hear_mn", "embed", *arguments],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed = []
    while kill and not killed and process.poll() is None:
        if len(list(out_dir.rglob("*.npz"))) >= 2:
            for pid in worker_pids():
                os.kill(pid, signal.SIGKILL)
                killed.append({"pid": pid, "outputs_then": len(list(out_dir.rglob("*.npz")))})
        time.sleep(0.01)
    stdout, stderr = process.communicate(timeout=600)
    return {
        "code": process.returncode,
        "stdout": stdout,
        "stderr": stderr,
        "killed": killed,
        "seconds": time.monotonic() - started,
    }


def main() -> None:
    work, args = Path(sys.argv[1]), json.loads(sys.argv[2])
    env = {
        **os.environ,
        "HOME": str(work / "home"),  # Ray writes ~/.ray
        "RAY_TMPDIR": str(work / "tmp"),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    for folder in ("home", "tmp"):
        (work / folder).mkdir(exist_ok=True)
    temp_dir = args["temp_dir"]  # short: Ray's socket paths must fit in 107 bytes
    port = 46379
    ray = shutil.which("ray", path=os.path.dirname(sys.executable)) or "ray"
    start = subprocess.run(
        [
            ray,
            "start",
            "--head",
            f"--port={port}",
            f"--temp-dir={temp_dir}",
            "--include-dashboard=false",
            "--num-cpus=2",
            "--disable-usage-stats",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    result: dict = {"start": {"code": start.returncode, "output": start.stdout + start.stderr}}
    try:
        if start.returncode == 0:
            result["interfaces"] = network_interfaces()
            result["listening_with_cluster"] = listening_sockets()
            common = [*args["embed"], "--engine", "ray", "--address", f"127.0.0.1:{port}"]
            result["jobs"] = {}
            for name, extra in args["jobs"].items():
                out_dir = Path(extra[extra.index("--out") + 1])
                result["jobs"][name] = run_job(
                    [*common, *extra], env, out_dir, kill=name == args.get("kill")
                )
                result["listening_after_" + name] = listening_sockets()
    finally:
        stop = subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, text=True)
        result["stop"] = {"code": stop.returncode, "output": stop.stdout + stop.stderr}
        (work / "result.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
