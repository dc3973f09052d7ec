"""Helpers for the tests (and the benchmarks that reuse them): fixture locations and parity
checks (``reference``), in-process runs and builds (``runs``), loopback-only network
namespaces (``namespaces``), damaged checkpoints (``damaged_files``), a local HTTP server
(``local_http``), synthesized HEAR tasks (``hear_tasks``, ``classifier_data``,
``render_speech``), heareval as a reference (``heareval_reference``) and the Ray cluster job
script (``ray_cluster_job.py``). ``tests/`` is on the import path (setup.cfg), so tests
import them as ``support.<module>``.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository root
