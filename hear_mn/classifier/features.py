"""The embeddings a classifier trains on: one scene embedding per example, cached on disk.

Each example's embedding is an ``.npz`` in the cache folder, written atomically with the
settings and input record of batch embedding (:mod:`hear_mn.resume`): a later run (after
Ctrl-C, or a fit with another grid) reuses every output of the same model, weights and
unchanged input, and computes the rest. Only embeddings are held in memory, never the
corpus's audio: files are decoded one at a time and batched by the library's rule
(:func:`hear_mn.batch.length_groups`, which bounds the audio waiting for batch partners).
Files that cannot be decoded or embedded are listed and left out; the others are used.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hear_mn.atomic import deferred_interrupts, remove_stale_temporaries
from hear_mn.audio_io import AudioReadError, stream_audio
from hear_mn.batch import embed_clips, length_groups
from hear_mn.classifier.data import Example
from hear_mn.input_decoding import decode_or_embed
from hear_mn.model import EmbeddingModel
from hear_mn.npz_output import save_npz
from hear_mn.resume import (
    INFORMATIONAL,
    input_record,
    judge_existing,
    output_settings,
    with_input,
)

__all__ = ["ExampleEmbeddings", "embed_examples", "settings_key"]

logger = logging.getLogger(__name__)


@dataclass
class ExampleEmbeddings:
    """Per example its scene embedding (D,) and duration (s); the examples that failed (why);
    how many embeddings were computed and how many reused from the cache."""

    embeddings: dict[Example, np.ndarray] = field(default_factory=dict)
    seconds: dict[Example, float] = field(default_factory=dict)
    failures: list[tuple[Example, str]] = field(default_factory=list)
    computed: int = 0
    reused: int = 0


def settings_key(settings: dict) -> str:
    """A short digest of the settings an embedding depends on (the cache's sub-folder)."""
    kept = {k: v for k, v in settings.items() if k not in INFORMATIONAL}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]


def _cache_path(folder: Path, example: Example) -> Path:
    identity = f"{example.path.resolve()}|{example.start}|{example.end}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:20]
    return folder / f"{digest}-{example.path.name[:80]}.npz"


def _cached(output: Path, example: Example, settings: dict) -> tuple[np.ndarray, float] | None:
    if not output.exists() or judge_existing(output, example.path, settings).action != "reuse":
        return None
    try:
        with np.load(output, allow_pickle=False) as data:
            return np.asarray(data["embedding"], dtype=np.float32), float(data["seconds"])
    except Exception:  # a damaged cache file is computed again
        return None


class _SegmentSamples:
    """A receiver of :func:`hear_mn.audio_io.stream_audio` that keeps only the samples of
    a file's segments (``[first, stop)`` sample spans) as the file streams by."""

    def __init__(self, spans: list[tuple[int, int]]) -> None:
        self.firsts = np.array([first for first, _ in spans], dtype=np.int64)
        self.stops = np.array([stop for _, stop in spans], dtype=np.int64)
        self.parts: list[list[np.ndarray]] = [[] for _ in spans]
        self.received = 0

    def __call__(self, samples: np.ndarray) -> None:
        start, end = self.received, self.received + len(samples)
        for i in np.flatnonzero((self.firsts < end) & (self.stops > start)):
            low, high = max(self.firsts[i], start), min(self.stops[i], end)
            self.parts[i].append(samples[low - start : high - start].copy())
        self.received = end

    def clips(self) -> list[np.ndarray | None]:
        """Each segment's samples (cut at the end of the file); None: it starts after it."""
        return [
            np.concatenate(parts) if first < self.received else None
            for first, parts in zip(self.firsts, self.parts)
        ]


def _segments(path: Path, examples: list[Example], sample_rate: int) -> tuple[list, dict]:
    """The samples of ``examples`` (segments of ``path``) and the file's input record, the
    file streamed rather than decoded whole; raises :class:`AudioReadError`."""
    try:
        record = input_record(path)
    except OSError as error:
        raise AudioReadError(f"{path}: cannot read it ({error.strerror or error})") from None
    spans = [(round(e.start * sample_rate), round(e.end * sample_rate)) for e in examples]
    receivers: list[_SegmentSamples] = []

    def receiver() -> _SegmentSamples:
        receivers.append(_SegmentSamples(spans))  # a fresh one for each decoder tried
        return receivers[-1]

    stream_audio(path, sample_rate, receiver)
    received = receivers[-1]
    clips = []
    for example, clip in zip(examples, received.clips()):
        clips.append(
            clip
            if clip is not None
            else (
                f"{example.describe()}: the segment starts after the end of the file "
                f"({received.received / sample_rate:.3f} s)"
            )
        )
    return clips, record


@dataclass
class _Embedded:
    """A long whole-file example, embedded block by block as it was decoded."""

    arrays: dict[str, np.ndarray]
    seconds: float


def _file_clips(
    path: Path, examples: list[Example], model: EmbeddingModel
) -> tuple[list[np.ndarray | _Embedded | str], dict | None]:
    """Each example's samples (or its embedding, or why it has none) and the input record:
    a whole file is decoded, or embedded block by block when long
    (:func:`hear_mn.batch.decode_or_embed`); segments are kept as the file streams by, so a
    long file is never held."""
    sample_rate = int(model.sample_rate)
    try:
        if examples[0].start is None:
            received, record = decode_or_embed(path, model, False)
            if received.long:
                return [_Embedded(received.result(), received.seconds)] * len(examples), record
            return [received.audio()] * len(examples), record
        return _segments(path, examples, sample_rate)
    except AudioReadError as error:
        return [str(error)] * len(examples), None


def _clips(
    jobs: list[tuple[Example, Path]],
    model: EmbeddingModel,
    result: ExampleEmbeddings,
    progress: Callable[[Path, float], None] | None,
) -> Iterator[tuple[Example, Path, np.ndarray | _Embedded, dict]]:
    """(example, output, clip or long file's embedding, input record) per job; each file is
    read once for all its examples (the jobs come grouped by file, whole-file examples
    before segments)."""
    sample_rate = int(model.sample_rate)
    for (path, _whole_file), group in itertools.groupby(
        jobs, lambda job: (job[0].path, job[0].start is None)
    ):
        group = list(group)
        clips, record = _file_clips(path, [example for example, _ in group], model)
        for (example, output), clip in zip(group, clips):
            if isinstance(clip, str):
                result.failures.append((example, clip))
                continue
            if progress is not None:
                seconds = clip.seconds if isinstance(clip, _Embedded) else len(clip) / sample_rate
                progress(example.path, seconds)
            yield example, output, clip, record


def embed_examples(
    examples: Sequence[Example],
    model: EmbeddingModel,
    cache: str | Path,
    *,
    batch_size: int = 8,
    progress: Callable[[Path, float], None] | None = None,
) -> ExampleEmbeddings:
    """The scene embedding of every example (a file, or a segment of one) through ``model``,
    reusing what ``cache`` holds for the same settings and unchanged inputs. Ctrl-C raises
    KeyboardInterrupt after the outputs being written are whole; a rerun resumes."""
    settings = output_settings(model, False)
    folder = Path(cache) / settings_key(settings)
    folder.mkdir(parents=True, exist_ok=True)
    metadata = {
        "model": np.array(model.name),
        "settings": np.array(json.dumps(settings, sort_keys=True)),
    }
    result = ExampleEmbeddings()
    jobs = []
    order = sorted(
        examples, key=lambda e: (str(e.path), e.start is not None, e.start or 0.0, e.end or 0.0)
    )
    for example in order:
        output = _cache_path(folder, example)
        found = _cached(output, example, settings)
        if found is None:
            jobs.append((example, output))
            continue
        result.embeddings[example], result.seconds[example] = found
        result.reused += 1
        if progress is not None:
            progress(example.path, found[1])
    remove_stale_temporaries(output for _, output in jobs)
    model.start_batch_job()
    sample_rate = int(model.sample_rate)

    def keep(example: Example, output: Path, arrays: dict, seconds: float, record: dict) -> None:
        with deferred_interrupts():  # Ctrl-C waits until the output is whole and counted
            try:
                save_npz(
                    output, **arrays, seconds=np.array(seconds), **with_input(metadata, record)
                )
            except OSError as error:
                logger.warning("cannot cache the embedding of %s: %s", example.describe(), error)
            result.embeddings[example] = arrays["embedding"].astype(np.float32)
            result.seconds[example] = seconds
            result.computed += 1

    def clips_to_embed() -> Iterator[tuple[Example, Path, np.ndarray, dict]]:
        for example, output, clip, record in _clips(jobs, model, result, progress):
            if isinstance(clip, _Embedded):  # a long file, embedded as it was decoded
                keep(example, output, clip.arrays, clip.seconds, record)
            else:
                yield example, output, clip, record

    for group in length_groups(clips_to_embed(), lambda item: len(item[2]), batch_size):
        outputs = embed_clips(model, [clip for _, _, clip, _ in group], False)
        for (example, output, clip, record), arrays in zip(group, outputs):
            if isinstance(arrays, str):
                result.failures.append((example, f"{example.describe()}: {arrays}"))
                continue
            keep(example, output, arrays, len(clip) / sample_rate, record)
    return result
