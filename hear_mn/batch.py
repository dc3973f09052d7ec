"""Embedding audio files in bulk: one ``.npz`` per input, written atomically, resumable.

:func:`embed_files` is what ``hear-mn embed`` runs, so Python and the command line give the
same files. Each output records the settings that produced it and the input it was made
from (:mod:`hear_mn.resume`); a later run reuses an output only when both still hold,
computes it again when its input changed or it cannot be read, and stops before computing
anything when the folder holds outputs of other settings (unless ``overwrite``).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from hear_mn.atomic import deferred_interrupts, remove_stale_temporaries
from hear_mn.audio_io import AudioInputs, AudioReadError, save_npz, scan_audio_inputs
from hear_mn.input_decoding import decode_input, decode_or_embed
from hear_mn.long_audio import embed_blocks, embeds_in_blocks, is_long
from hear_mn.model import EmbeddingModel
from hear_mn.output_conflict import OutputConflictError, conflict_error
from hear_mn.resume import (
    judge_existing,
    output_settings,
    recompute_summary,
    weights_fingerprint,
    with_input,
)

__all__ = [
    "EmbedPlan",
    "EmbedReport",
    "EmbeddingInterrupted",
    "OutputConflictError",
    "OutputFolderError",
    "OutputJob",
    "check_writable",
    "decode_input",
    "decode_or_embed",
    "embed_arrays",
    "embed_clips",
    "embed_files",
    "length_groups",
    "output_settings",
    "plan_embedding",
    "weights_fingerprint",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")

# When clips waiting for a batch partner hold more samples than this (73 MiB of float32,
# whatever the model's rate), run them anyway.
MAX_PENDING_SAMPLES = 19_200_000


class OutputFolderError(OSError):
    """The output folder cannot be created or written to."""


@dataclass
class EmbedReport:
    """What a run did: outputs written, outputs reused, inputs that failed (with why), and
    outputs that were there but computed again (with why: their input changed, they record
    no input, they cannot be read; ``recompute_reasons`` holds each one's reason as
    :meth:`recomputed_summary` counts it)."""

    out_dir: Path
    written: list[Path] = field(default_factory=list)
    resumed: list[Path] = field(default_factory=list)
    failures: list[tuple[Path, str]] = field(default_factory=list)
    recomputed: list[tuple[Path, str]] = field(default_factory=list)
    recompute_reasons: dict[Path, str] = field(default_factory=dict)

    def recomputed_summary(self) -> str:
        """The recomputed outputs counted by reason, e.g. "2 whose input changed, 1 that
        could not be read" ("" when none)."""
        return recompute_summary(self.recompute_reasons.get(o, "") for o, _ in self.recomputed)


class EmbeddingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`embed_files`; ``report`` says what was saved before it."""

    def __init__(self, report: EmbedReport) -> None:
        super().__init__(f"interrupted after writing {len(report.written)} output(s)")
        self.report = report


@dataclass(frozen=True)
class OutputJob:
    """One input file, its path relative to its input folder, and the ``.npz`` it gets."""

    path: Path
    relative: Path
    output: Path


@dataclass
class EmbedPlan:
    """What a run will do, decided before any audio is read: the outputs still to compute
    (``jobs``, in input order), the report so far (reused outputs, clashing names) and the
    arrays every output records besides its embeddings (``metadata``)."""

    report: EmbedReport
    jobs: list[OutputJob]
    metadata: dict[str, np.ndarray]
    # (inode, modification time) of the outputs already there that jobs will replace
    replaced: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def in_input_order(self) -> EmbedReport:
        """The report with outputs and failures sorted as the inputs came (every engine
        reports them so, whatever order the batches ran in); returns it."""
        order = {job.path: index for index, job in enumerate(self.jobs)}
        outputs = {job.output: index for index, job in enumerate(self.jobs)}
        self.report.written.sort(key=lambda output: outputs.get(output, -1))
        self.report.failures.sort(key=lambda failure: order.get(failure[0], -1))
        return self.report

    def count_outputs_on_disk(self) -> EmbedReport:
        """Add to the report's ``written`` every output of the jobs that is now on disk and
        was not there before (an engine whose workers write before the driver hears of it
        counts what was saved so, e.g. on Ctrl-C); returns the report in input order."""
        known = set(self.report.written)
        for job in self.jobs:
            try:
                status = job.output.stat()
            except OSError:
                continue
            if job.output not in known and (
                self.replaced.get(job.output) != (status.st_ino, status.st_mtime_ns)
            ):
                self.report.written.append(job.output)
        return self.in_input_order()


def check_writable(out_dir: str | os.PathLike[str]) -> Path:
    """Prove, before any work, that ``out_dir`` can be made and written to, and leave no
    trace: the folders this made for the proof are removed again (outputs make their
    folders as they are written), so that a run that writes nothing leaves nothing."""
    out_dir = Path(out_dir)
    missing = [folder for folder in (out_dir, *out_dir.parents) if not os.path.lexists(folder)]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".hear-mn-probe-"):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise OutputFolderError(
            f"cannot write to the output folder {out_dir}: {reason}; choose a writable folder"
        ) from error
    finally:
        for folder in missing:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                break
    return out_dir


def _output_path(out_dir: Path, relative: Path) -> Path:
    # Keep the source extension (a.wav -> a.wav.npz) so a.wav and a.flac do not collide.
    return out_dir / relative.parent / (relative.name + ".npz")


def _plan(
    inputs: Iterable[str | os.PathLike[str]] | AudioInputs, out_dir: Path, report: EmbedReport
) -> list[OutputJob]:
    if not isinstance(inputs, AudioInputs):
        inputs = list(inputs)
    scan = inputs if isinstance(inputs, AudioInputs) else scan_audio_inputs(inputs)
    files = scan.files
    report.failures.extend(scan.unreadable)
    if not files and not scan.unreadable:
        where = "the scanned inputs" if inputs is scan else " ".join(map(str, inputs))
        raise ValueError(f"no audio files found in {where}")
    jobs: list[OutputJob] = []
    owners: dict[Path, Path] = {}
    for path, relative in files:
        output = _output_path(out_dir, relative)
        if output in owners:
            report.failures.append(
                (path, f"its output {output} is already the output of {owners[output]}")
            )
            continue
        owners[output] = path
        jobs.append(OutputJob(path, relative, output))
    return jobs


def _split_done(
    jobs: list[OutputJob], settings: dict, overwrite: bool, report: EmbedReport
) -> list[OutputJob]:
    """Jobs still to run (:func:`hear_mn.resume.judge_existing`): outputs of the same
    settings and input are reused, stale or damaged ones computed again, others refused."""
    todo, conflicts = [], []
    for job in jobs:
        if overwrite or not job.output.exists():
            todo.append(job)
            continue
        existing = judge_existing(job.output, job.path, settings)
        if existing.action == "reuse":
            report.resumed.append(job.output)
        elif existing.action == "recompute":
            report.recomputed.append((job.output, existing.why))
            report.recompute_reasons[job.output] = existing.reason
            todo.append(job)
        else:
            conflicts.append((job.output, existing.recorded))
    if conflicts:
        raise conflict_error(conflicts, report.out_dir, settings)
    return todo


def embed_arrays(model: EmbeddingModel, audio: np.ndarray, timestamps: bool) -> list[dict]:
    """Embeddings of equal-length clips ``audio`` (n, samples): one dict of arrays per clip,
    as an output stores them (``embedding``, and ``timestamps`` with ``timestamps``)."""
    batch = torch.from_numpy(audio)
    if timestamps:
        embeddings, stamps = model.timestamp_embeddings(batch)
        embeddings, stamps = embeddings.cpu().numpy(), stamps.cpu().numpy()
        return [{"embedding": e, "timestamps": t} for e, t in zip(embeddings, stamps)]
    return [{"embedding": e} for e in model.scene_embeddings(batch).cpu().numpy()]


def embed_clips(
    model: EmbeddingModel, clips: list[np.ndarray], timestamps: bool
) -> list[dict[str, np.ndarray] | str]:
    """Per clip of an equal-length group: its arrays (:func:`embed_arrays`), or why it could
    not be embedded. A failing group is tried again clip by clip, so that one bad clip does
    not cost its partners their outputs. Long clips go through the model's streams block by
    block, one at a time (:mod:`hear_mn.long_audio`), as a long file does."""
    if clips and is_long(model, len(clips[0])):
        return [_embed_long_clip(model, clip, timestamps) for clip in clips]
    try:
        return embed_arrays(model, np.stack(clips), timestamps)
    except Exception as error:  # a model failure on one batch must not end the run
        if len(clips) > 1:
            return [embed_clips(model, [clip], timestamps)[0] for clip in clips]
        return [f"embedding failed: {error}"]


def _embed_long_clip(
    model: EmbeddingModel, clip: np.ndarray, timestamps: bool
) -> dict[str, np.ndarray] | str:
    try:
        return embed_blocks(model, [clip], timestamps)
    except Exception as error:  # a model failure on one clip must not end the run
        return f"embedding failed: {error}"


def length_groups(
    items: Iterable[T], length: Callable[[T], int], batch_size: int
) -> Iterator[list[T]]:
    """``items`` grouped for forward passes: equal ``length(item)`` share a group of at most
    ``batch_size``; a group goes as soon as it is full, and when the items waiting for
    partners hold more than :data:`MAX_PENDING_SAMPLES` samples all of them go (shortest
    first), as they do at the end. Every engine groups by this rule, so they make the same
    batches from the same inputs: an output's last float32 bits can depend on the files
    that share its batch (oneDNN picks kernels by the batch's shape; docs/batch_embedding.md),
    and with ``batch_size`` 1 it depends on its own file only."""
    pending: dict[int, list[T]] = {}
    pending_samples = 0
    for item in items:
        size = length(item)
        group = pending.setdefault(size, [])
        group.append(item)
        pending_samples += size
        if len(group) >= batch_size:
            yield pending.pop(size)
            pending_samples -= size * len(group)
        elif pending_samples > MAX_PENDING_SAMPLES:
            for size in sorted(pending):
                yield pending.pop(size)
            pending_samples = 0
    for size in sorted(pending):
        yield pending.pop(size)


def _decoded(
    jobs: list[OutputJob],
    model: EmbeddingModel,
    timestamps: bool,
    finish: Callable,
    progress_in_file: Callable[[Path, float], None] | None,
) -> Iterator[tuple[OutputJob, np.ndarray, dict[str, object]]]:
    """(job, audio, input record) of every short input that decodes, to be batched; a long
    input is embedded as it is decoded and ``finish(job, result, record, seconds)``
    saves it (``result``: its arrays, or why it failed)."""
    sample_rate = int(model.sample_rate)
    for job in jobs:
        progress = None
        if progress_in_file is not None:
            progress = functools.partial(progress_in_file, job.path)
        try:
            if not embeds_in_blocks(model):
                yield (job, *decode_input(job.path, sample_rate))
                continue
            taken, record = decode_or_embed(job.path, model, timestamps, progress)
            if not taken.long:
                yield job, taken.audio(), record
                continue
            result = taken.result()
        except AudioReadError as error:
            finish(job, str(error), {}, 0.0)
            continue
        except Exception as error:  # the model failed on this long file: the others go on
            finish(job, f"embedding failed: {error}", {}, 0.0)
            continue
        finish(job, result, record, taken.seconds)


def plan_embedding(
    inputs: Iterable[str | os.PathLike[str]] | AudioInputs,
    model: EmbeddingModel,
    out_dir: str | os.PathLike[str],
    *,
    timestamps: bool = False,
    overwrite: bool = False,
) -> EmbedPlan:
    """Check ``out_dir``, name each input's output, and keep the outputs still to compute
    (the resume rule of :func:`embed_files`; raises :class:`OutputConflictError` before any
    work when outputs of other settings are in the way)."""
    out_dir = check_writable(out_dir)
    report = EmbedReport(out_dir)
    settings = output_settings(model, timestamps)
    jobs = _split_done(_plan(inputs, out_dir, report), settings, overwrite, report)
    model.start_batch_job()
    # Writes of an earlier run that was killed (not interrupted) leave temporary files.
    remove_stale_temporaries(job.output for job in jobs)
    replaced = {}
    for job in jobs:
        try:
            status = job.output.stat()
        except OSError:
            continue
        replaced[job.output] = (status.st_ino, status.st_mtime_ns)
    metadata = {
        "model": np.array(model.name),
        "features": np.array("_".join(settings.get("features", []))),
        "sample_rate": np.array(int(model.sample_rate), dtype=np.int64),
        "settings": np.array(json.dumps(settings, sort_keys=True)),
    }
    return EmbedPlan(report, jobs, metadata, replaced)


def embed_files(
    inputs: Iterable[str | os.PathLike[str]] | AudioInputs,
    model: EmbeddingModel,
    out_dir: str | os.PathLike[str] = "embeddings",
    *,
    timestamps: bool = False,
    overwrite: bool = False,
    batch_size: int = 8,
    progress: Callable[[Path, float], None] | None = None,
    progress_in_file: Callable[[Path, float], None] | None = None,
) -> EmbedReport:
    """Embed audio files and directories into one ``.npz`` each under ``out_dir``.

    ``inputs``: files and directories, or what :func:`~hear_mn.audio_io.scan_audio_inputs`
    found in them (so a caller that scanned already does not walk the folders again).

    Outputs mirror the inputs' relative paths with ``.npz`` appended and hold ``embedding``
    (``(D,)`` scene, or ``(T, D)`` with ``timestamps``), ``timestamps`` (ms), ``model``,
    ``features``, ``sample_rate`` and ``settings`` (JSON, with the input's identity).
    Existing outputs with the same settings and input are reused; those whose input changed
    or that cannot be read are computed again (the report's ``recomputed`` says why);
    others raise :class:`OutputConflictError` before any work, unless ``overwrite``. Inputs that cannot be read or embedded are listed in the report's
    ``failures`` and the others go on. ``progress(path, seconds_of_audio)`` is called per
    input when it is done; ``progress_in_file(path, seconds_done)`` while a long input is
    embedded, block by block. Inputs longer than :data:`hear_mn.long_audio.LONG_SECONDS` are
    decoded and embedded block by block (memory holds a block and the output, not the file;
    the numbers are the whole-file ones within float32 rounding). Ctrl-C raises
    :class:`EmbeddingInterrupted` carrying the report so far.
    """
    plan = plan_embedding(inputs, model, out_dir, timestamps=timestamps, overwrite=overwrite)
    report, metadata = plan.report, plan.metadata
    sample_rate = int(model.sample_rate)

    def finish(
        job: OutputJob, result: dict | str, record: dict[str, object], seconds: float
    ) -> None:
        """Save one input's output (or note why it has none), then count it as done."""
        if isinstance(result, str):
            report.failures.append((job.path, result))
        else:
            try:
                # Ctrl-C waits until the output is whole and counted.
                with deferred_interrupts():
                    save_npz(job.output, **result, **with_input(metadata, record))
                    report.written.append(job.output)
            except OSError as error:
                report.failures.append((job.path, f"cannot write {job.output}: {error}"))
        if progress is not None:
            progress(job.path, seconds)

    try:
        decoded = _decoded(plan.jobs, model, timestamps, finish, progress_in_file)
        for group in length_groups(decoded, lambda item: len(item[1]), batch_size):
            results = embed_clips(model, [audio for _, audio, _ in group], timestamps)
            for (job, audio, record), result in zip(group, results):
                finish(job, result, record, len(audio) / sample_rate)
    except KeyboardInterrupt:
        raise EmbeddingInterrupted(report) from None
    return plan.in_input_order()
