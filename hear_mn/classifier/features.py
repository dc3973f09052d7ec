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
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hear_mn.atomic import deferred_interrupts, remove_stale_temporaries
from hear_mn.audio_io import AudioReadError
from hear_mn.batch import decode_input, embed_clips, length_groups
from hear_mn.classifier.data import Example
from hear_mn.model import EmbeddingModel
from hear_mn.npz_output import save_npz
from hear_mn.resume import INFORMATIONAL, judge_existing, output_settings, with_input

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


def _segment(audio: np.ndarray, example: Example, sample_rate: int) -> np.ndarray:
    if example.start is None:
        return audio
    first = round(example.start * sample_rate)
    if first >= len(audio):
        raise AudioReadError(
            f"{example.describe()}: the segment starts after the end of the file "
            f"({len(audio) / sample_rate:.3f} s)"
        )
    return audio[first : round(example.end * sample_rate)].copy()  # not a view of the file


def _clips(
    jobs: list[tuple[Example, Path]],
    sample_rate: int,
    result: ExampleEmbeddings,
    progress: Callable[[Path, float], None] | None,
) -> Iterator[tuple[Example, Path, np.ndarray, dict]]:
    """(example, output, clip, input record) per job; each file is decoded once for all
    its segments (the jobs come grouped by file)."""
    decoded_path, audio, record = None, None, None
    for example, output in jobs:
        if example.path != decoded_path:
            decoded_path, audio = example.path, None
            try:
                audio, record = decode_input(example.path, sample_rate)
            except AudioReadError as error:
                audio, record = str(error), None
        if isinstance(audio, str):
            result.failures.append((example, audio))
            continue
        try:
            clip = _segment(audio, example, sample_rate)
        except AudioReadError as error:
            result.failures.append((example, str(error)))
            continue
        if progress is not None:
            progress(example.path, len(clip) / sample_rate)
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
    for example in sorted(examples, key=lambda e: (str(e.path), e.start or 0.0, e.end or 0.0)):
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
    sample_rate = int(model.sample_rate)
    clips = _clips(jobs, sample_rate, result, progress)
    for group in length_groups(clips, lambda item: len(item[2]), batch_size):
        outputs = embed_clips(model, [clip for _, _, clip, _ in group], False)
        for (example, output, clip, record), arrays in zip(group, outputs):
            if isinstance(arrays, str):
                result.failures.append((example, f"{example.describe()}: {arrays}"))
                continue
            seconds = len(clip) / sample_rate
            with deferred_interrupts():  # Ctrl-C waits until the output is whole and counted
                try:
                    save_npz(
                        output,
                        **arrays,
                        seconds=np.array(seconds),
                        **with_input(metadata, record),
                    )
                except OSError as error:
                    logger.warning(
                        "cannot cache the embedding of %s: %s", example.describe(), error
                    )
                result.embeddings[example] = arrays["embedding"].astype(np.float32)
                result.seconds[example] = seconds
                result.computed += 1
    return result
