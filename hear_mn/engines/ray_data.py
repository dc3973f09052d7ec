"""Bulk embedding on Ray Data: ``hear-mn embed --engine ray`` and :func:`embed_dataset`.

Ray is imported here only, and only when this engine is used. The driver plans as the local
engine does (:func:`hear_mn.batch.plan_embedding`: the same outputs, names and resume rule)
and groups the files into forward passes by the same rule
(:func:`hear_mn.batch.length_groups`), from lengths that Ray tasks measure by decoding each
file; a pool of actors, each holding the model once, then decodes every group's files again
(the same audio I/O as the CLI), embeds them and writes each output atomically. Ray retries a
task whose actor died on a fresh actor; rewriting an output with the same bytes is harmless,
so a killed actor costs time, not outputs. The same files to compute (hence the same
batches) and the same torch thread count give the same numbers as the local engine, bit for
bit (docs/batch_embedding.md says when batch partners change an output's last bits).
"""

from __future__ import annotations

import glob
import logging
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hear_mn.atomic import remove_stale_temporaries
from hear_mn.audio_io import (
    scan_audio_inputs,
)
from hear_mn.batch import (
    EmbedPlan,
    OutputJob,
    length_groups,
)
from hear_mn.engines.ray_tasks import audio_lengths
from hear_mn.engines.ray_worker import EmbeddingWorker
from hear_mn.model import EmbeddingModel
from hear_mn.run_options import RunOptions

logger = logging.getLogger(__name__)
RAY_EXTRA = "pip install 'hear-mn[ray]' (or pip install 'ray[data]')"
# Files whose lengths one probing task measures (decoding is cheap next to embedding).
PROBE_BATCH = 16


def import_ray() -> Any:
    """The ray module with Ray Data, or an ImportError that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Data is a separate extra of ray)
    except ImportError as error:
        raise ImportError(f"the ray engine needs Ray Data: {RAY_EXTRA}") from error
    return ray


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide to run: ``address`` of a running cluster ("auto", "HOST:PORT";
    None: start Ray in this process), ``actors`` in the pool (None: the cluster's CPUs
    divided by ``threads_per_actor``), torch threads and GPUs per actor, Ray's temporary
    folder when it starts here (None: Ray's default), and ``quiet``: no progress output from
    Ray Data (the command line shows its own progress bar)."""

    address: str | None = None
    actors: int | None = None
    threads_per_actor: int = 1
    gpus_per_actor: float = 0.0
    temp_dir: str | None = None
    quiet: bool = False

    def __post_init__(self) -> None:
        for name in ("actors", "threads_per_actor"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(self.gpus_per_actor, (int, float)) or self.gpus_per_actor < 0:
            raise ValueError(f"gpus_per_actor must be >= 0, got {self.gpus_per_actor!r}")


def connect(options: RayOptions) -> Any:
    """Ray, initialised: connected to ``options.address``, or started in this process.

    ``quiet`` keeps Ray's own lines off the terminal (the command line's output is the
    user's business; Ray's is not): Ray's Python loggers at error level, no progress from
    Ray Data, and :func:`_init_quietly`."""
    ray = import_ray()
    if options.quiet:
        for name in ("ray", "ray.data"):  # Ray Data's logger has a level of its own
            logging.getLogger(name).setLevel(logging.ERROR)
    if not ray.is_initialized():
        settings: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if options.address is not None:
            settings["address"] = options.address
        elif options.temp_dir is not None:
            settings["_temp_dir"] = str(options.temp_dir)
        if options.quiet:
            settings["logging_level"] = logging.ERROR
            _init_quietly(ray, settings)
        else:
            ray.init(**settings)
    if options.quiet:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
    return ray


def _init_quietly(ray: Any, settings: dict[str, Any]) -> None:
    """``ray.init(**settings)`` with Ray's C++ core logging only fatal errors (unless
    ``$RAY_BACKEND_LOG_LEVEL`` says otherwise) and what it writes to this process's stderr
    while it starts (a notice of that log level; "failed to determine local IP via
    external connectivity to 8.8.8.8" where there is no route to the internet, harmless:
    Ray falls back to the host name) sent to this module's log, at info level (``-v``
    shows it), or at warning level when Ray fails to start.

    Why fatal: the driver's core logs an error for every actor whose constructor
    arguments are in the object store while it may be restarted, and Ray Data creates
    every actor of a pool so (its DataContext and the map function are object references;
    ray-project/ray#53727, #57733), whatever the arguments of the map function: a false
    alarm here, since Ray Data holds those references while the pool lives (a killed
    actor is restarted: tests/test_ray_engine.py). Ray's C++ core reads the level once,
    when each process starts, so the setting covers this process and the Ray processes
    it starts now (not a running cluster's), and the environment is restored after."""
    key = "RAY_BACKEND_LOG_LEVEL"
    chosen_by_user = key in os.environ
    if not chosen_by_user:
        os.environ[key] = "fatal"
    captured = tempfile.TemporaryFile()
    sys.stderr.flush()
    try:
        terminal = os.dup(2)
    except OSError:  # no stderr to protect
        terminal = None
    failed = True
    try:
        if terminal is not None:
            os.dup2(captured.fileno(), 2)
        ray.init(**settings)
        failed = False
    finally:
        if terminal is not None:
            os.dup2(terminal, 2)
            os.close(terminal)
        if not chosen_by_user:
            del os.environ[key]
        captured.seek(0)
        for line in captured.read().decode(errors="replace").splitlines():
            if line.strip():
                logger.log(logging.WARNING if failed else logging.INFO, "ray: %s", line)
        captured.close()


def pool_size(ray: Any, options: RayOptions) -> int:
    """Actors in the pool: as asked, else one per ``threads_per_actor`` CPUs of the cluster."""
    if options.actors is not None:
        return options.actors
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(1, cpus // options.threads_per_actor)


def planned_rows(
    ray: Any, jobs: list[OutputJob], sample_rate: int, batch_size: int, *, write: bool = True
) -> list[dict[str, list[str]]]:
    """Rows of ``paths`` and ``outputs``: the local engine's forward passes for ``jobs``,
    from lengths measured by Ray tasks, then each file that cannot be read on its own (its
    worker reports why, in its row). Without ``write`` the outputs are empty: rows only."""
    if not jobs:
        return []
    probes = (
        ray.data.from_items([{"path": str(job.path)} for job in jobs])
        .map_batches(audio_lengths, fn_kwargs={"sample_rate": sample_rate}, batch_size=PROBE_BATCH)
        .take_all()
    )
    found = {row["path"]: int(row["samples"]) for row in probes}
    readable = [(job, found[str(job.path)]) for job in jobs if found[str(job.path)] >= 0]
    groups = [
        [job for job, _ in group]
        for group in length_groups(readable, lambda item: item[1], batch_size)
    ]
    groups += [[job] for job in jobs if found[str(job.path)] < 0]
    return [
        {
            "paths": [str(job.path) for job in group],
            "outputs": [str(job.output) if write else "" for job in group],
        }
        for group in groups
    ]


def embedding_dataset(
    ray: Any,
    rows: Any,
    model: EmbeddingModel,
    options: RayOptions,
    *,
    timestamps: bool,
    batch_size: int,
    metadata: dict[str, np.ndarray] | None = None,
) -> Any:
    """``rows`` (a Ray Dataset of groups or files) mapped through a pool of
    :class:`EmbeddingWorker` actors: a lazy Dataset of
    :data:`~hear_mn.engines.ray_worker.COLUMNS`. Ray Data restarts a pool's actors that die
    and runs their tasks again (its defaults, ``max_restarts`` and ``max_task_retries`` -1):
    at least once, so outputs are written atomically."""
    device = "cuda" if options.gpus_per_actor > 0 else "cpu"
    return rows.map_batches(
        EmbeddingWorker,
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=pool_size(ray, options)),
        num_cpus=options.threads_per_actor,
        num_gpus=options.gpus_per_actor,
        fn_constructor_kwargs={
            "model": model,
            "timestamps": timestamps,
            "threads": options.threads_per_actor,
            "metadata": metadata,
            "device": device,
        },
    )


def run_plan(
    plan: EmbedPlan,
    model: EmbeddingModel,
    options: RayOptions,
    *,
    timestamps: bool,
    batch_size: int,
    parquet: str | os.PathLike[str] | None = None,
) -> Iterator[dict[str, object]]:
    """Carry out ``plan`` on Ray: yields each embedded (or failed) file's row as it arrives
    and fills ``plan.report``; with ``parquet``, the rows are also written there (Parquet
    files, one folder), after the outputs."""
    ray = connect(options)
    report = plan.report
    groups = planned_rows(ray, plan.jobs, int(model.sample_rate), batch_size)
    if not groups:
        return
    # One block per group, so that every actor of the pool gets work.
    rows = ray.data.from_items(groups, override_num_blocks=len(groups))
    dataset = embedding_dataset(
        ray, rows, model, options, timestamps=timestamps, batch_size=1, metadata=plan.metadata
    )
    if parquet is not None:
        dataset = dataset.materialize()
        dataset.write_parquet(str(parquet))
    for row in dataset.iter_rows():
        if row["error"]:
            report.failures.append((Path(row["path"]), row["error"]))
        else:
            report.written.append(Path(row["output"]))
        yield row
    # An actor killed mid-write leaves its temporary file (the task ran again elsewhere).
    remove_stale_temporaries(job.output for job in plan.jobs)
    plan.in_input_order()


def stop_ray_after_interrupt(plan: EmbedPlan) -> None:
    """After Ctrl-C during :func:`run_plan`: disconnect from Ray (which stops this job's
    actors; Ray started here stops) and remove what their cut writes left, so that the
    outputs on disk are all there will be (:meth:`EmbedPlan.count_outputs_on_disk`)."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
    remove_stale_temporaries(job.output for job in plan.jobs)


def _expand(inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[str]:
    """Paths, directories and glob patterns -> the inputs to scan."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    expanded = []
    for item in inputs:
        text = os.fspath(item)
        if not os.path.exists(text) and glob.has_magic(text):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise ValueError(f"no files match {text!r}")
            expanded.extend(matches)
        else:
            expanded.append(text)
    return expanded


def dataset_of_inputs(
    inputs: Any,
    model: EmbeddingModel,
    options: RayOptions,
    *,
    timestamps: bool,
    batch_size: int,
) -> Any:
    """:func:`hear_mn.embed_dataset`'s work once the model is made: a lazy Dataset of
    :data:`~hear_mn.engines.ray_worker.COLUMNS` rows for a Ray Dataset of files (``path``
    and, optionally, ``bytes``, e.g. ``ray.data.read_binary_files(..., include_paths=True)``;
    its batches of ``batch_size`` files are grouped by length) or for paths, directories and
    globs (grouped as the local engine groups them, so the numbers are the same)."""
    ray = connect(options)
    if isinstance(inputs, ray.data.Dataset):
        if "path" not in inputs.columns():
            raise ValueError(
                "a Dataset of audio needs a 'path' column (and 'bytes' for file contents), "
                "e.g. ray.data.read_binary_files(paths, include_paths=True)"
            )
        return embedding_dataset(
            ray, inputs, model, options, timestamps=timestamps, batch_size=batch_size
        )
    scan = scan_audio_inputs(_expand(inputs))
    for path, why in scan.unreadable:
        logger.warning("%s: %s", path, why)
    if not scan.files:
        raise ValueError(f"no audio files found in {', '.join(_expand(inputs))}")
    jobs = [OutputJob(path, relative, Path("")) for path, relative in scan.files]
    items = planned_rows(ray, jobs, int(model.sample_rate), batch_size, write=False)
    rows = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
    return embedding_dataset(ray, rows, model, options, timestamps=timestamps, batch_size=1)


def embed_dataset(
    inputs: Any,
    model: str | EmbeddingModel = "mn10_e1_l",
    *,
    weights: str | os.PathLike[str] | None = None,
    features: str | None = None,
    timestamps: bool = False,
    batch_size: int = 8,
    actors: int | None = None,
    threads_per_actor: int = 1,
    gpus_per_actor: float = 0.0,
    backend: str = "torch",
    address: str | None = None,
) -> Any:
    """Embed many audio files on Ray Data; returns a lazy ``ray.data.Dataset`` of rows
    ``path``, ``embedding`` ((D,) scene or (T, D) with ``timestamps``), ``timestamps`` (ms),
    ``seconds`` (of audio), ``model``, ``output`` (empty) and ``error`` (empty, or why the
    file failed: such rows have empty arrays), to ``.write_parquet(...)`` or iterate.

    ``inputs``: paths, directories or glob patterns (their lengths are measured by Ray tasks
    first, so that files are batched as ``hear-mn embed`` batches them and the numbers are
    the same), or a Ray Dataset with a ``path`` column and optionally ``bytes`` (e.g.
    ``ray.data.read_binary_files(paths, include_paths=True)``). ``model``: a configuration
    name (built with ``weights``, ``features`` and ``backend``) or a built model. Ray starts
    in this process unless ``address`` names a cluster ("auto", "HOST:PORT"); ``actors``
    (default: one per ``threads_per_actor`` CPUs) each hold the model once.
    """
    from hear_mn.registry import create_model

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    options = RayOptions(address, actors, threads_per_actor, gpus_per_actor)
    if isinstance(model, str):
        run = RunOptions(backend=backend)
        model = create_model(model, weights=weights, features=features, run=run)
    elif not isinstance(model, EmbeddingModel):
        raise TypeError(f"model must be a configuration name or an EmbeddingModel, got {model!r}")
    return dataset_of_inputs(inputs, model, options, timestamps=timestamps, batch_size=batch_size)
