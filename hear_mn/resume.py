"""The resume rule of batch embedding: what each output records, and whether an output that is
already there can be reused.

An output records the settings that produced it (model, features, windows, timestamps or
scene, a fingerprint of the weights, the output format's version) and the input it was made
from (size, modification time and SHA-256 of the file's bytes, taken before decoding). A
later run reuses it only when both still hold: other settings stop the run (the folder
holds another job's outputs), while a changed input, an output that records no input (an
older hear-mn) or an output that cannot be read are computed again, each with a note.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hear_mn.model import EmbeddingModel

__all__ = [
    "OUTPUTS_VERSION",
    "RECOMPUTE_REASONS",
    "ExistingOutput",
    "input_record",
    "judge_existing",
    "output_settings",
    "recompute_summary",
    "same_settings",
    "weights_fingerprint",
    "with_input",
]

# Bumped whenever hear-mn starts computing different numbers for the same settings, so that
# outputs of the older computation are not reused.
OUTPUTS_VERSION = 1
# Settings recorded for information only: a difference does not make an output stale.
INFORMATIONAL = ("hear_mn_version",)
# The key of the settings record that describes the input file (checked on its own).
INPUT_KEY = "input"
_READ_BLOCK = 1 << 20


def weights_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 over the model's state dict (names, shapes, dtypes and values)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        value = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{tuple(tensor.shape)}:{value.dtype};".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()


def output_settings(model: EmbeddingModel, timestamps: bool) -> dict[str, object]:
    """Everything an output of ``model`` depends on besides its input, as each ``.npz``
    records it."""
    from hear_mn.version import __version__

    return {
        **model.output_settings(),
        "timestamps": bool(timestamps),
        "weights_sha256": weights_fingerprint(model),
        "outputs_version": OUTPUTS_VERSION,
        "hear_mn_version": __version__,
    }


def same_settings(recorded: dict, asked: dict) -> bool:
    """Whether ``recorded`` settings are ``asked`` (the input and informational keys aside)."""

    def compared(settings: dict) -> dict:
        ignored = (*INFORMATIONAL, INPUT_KEY)
        return {k: v for k, v in settings.items() if k not in ignored}

    return compared(recorded) == compared(asked)


def input_record(path: str | os.PathLike[str]) -> dict[str, object]:
    """The identity of the file ``path``: ``size``, ``mtime_ns`` and the ``sha256`` of its
    bytes. Hashing reads the file once (about 1 GB/s), little next to decoding and
    embedding it; the hash, not the time, decides whether an input changed, so a copied or
    touched corpus is still reused and a file swapped under its old time is not. Raises
    OSError when the file cannot be read."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        status = os.fstat(handle.fileno())
        while block := handle.read(_READ_BLOCK):
            digest.update(block)
    return {"size": status.st_size, "mtime_ns": status.st_mtime_ns, "sha256": digest.hexdigest()}


def with_input(metadata: dict[str, np.ndarray], record: dict[str, object]) -> dict[str, np.ndarray]:
    """``metadata`` (the arrays every output of a plan records) with ``record``, the input's
    identity (:func:`input_record`), added to its ``settings``."""
    settings = {**json.loads(str(metadata["settings"])), INPUT_KEY: record}
    return {**metadata, "settings": np.array(json.dumps(settings, sort_keys=True))}


class _UnreadableOutputError(Exception):
    """An existing output that is not a readable ``.npz`` (truncated, damaged, unreadable)."""


def _recorded_settings(output: Path) -> dict | None:
    """The settings an existing output was written with (None: it records none); raises
    :class:`_UnreadableOutputError` when it cannot be read at all."""
    try:
        with np.load(output, allow_pickle=False) as data:
            text = str(data["settings"]) if "settings" in data.files else None
    except Exception as error:  # zipfile, zlib, numpy and OS errors alike: a damaged file
        raise _UnreadableOutputError(str(error) or type(error).__name__) from None
    try:
        settings = json.loads(text) if text is not None else None
    except ValueError:
        return None
    return settings if isinstance(settings, dict) else None


def _same_input(record: dict, source: Path) -> bool:
    try:
        if os.stat(source).st_size != record.get("size"):
            return False
        return input_record(source)["sha256"] == record.get("sha256")
    except OSError:
        return False


# Why an output is computed again, in the words a run's summary counts them with
# ("recomputed 3 output(s) that could not be reused: 2 whose input changed, ...").
INPUT_CHANGED = "whose input changed"
NO_INPUT_RECORD = "written by an older hear-mn (no input record)"
UNREADABLE = "that could not be read"
RECOMPUTE_REASONS = (INPUT_CHANGED, NO_INPUT_RECORD, UNREADABLE)


@dataclass(frozen=True)
class ExistingOutput:
    """What to do with an output that is already there: ``action`` is "reuse", "recompute"
    (``why`` says why, for the run's notes, and ``reason`` is one of
    :data:`RECOMPUTE_REASONS`, for its counts) or "conflict" (written with other settings,
    ``recorded``: None when it records none)."""

    action: str
    why: str = ""
    recorded: dict | None = None
    reason: str = ""


def recompute_summary(reasons: Iterable[str]) -> str:
    """``reasons`` (one per recomputed output) counted, in :data:`RECOMPUTE_REASONS`' order:
    "2 whose input changed, 1 that could not be read"."""
    counts = Counter(reasons)
    return ", ".join(f"{counts[reason]} {reason}" for reason in RECOMPUTE_REASONS if counts[reason])


def judge_existing(output: Path, source: Path, settings: dict) -> ExistingOutput:
    """Whether the existing ``output`` of the input ``source`` can be reused for ``settings``."""
    try:
        recorded = _recorded_settings(output)
    except _UnreadableOutputError as error:
        return ExistingOutput(
            "recompute", f"cannot be read ({error}); computed again", reason=UNREADABLE
        )
    if recorded is None or not same_settings(recorded, settings):
        return ExistingOutput("conflict", recorded=recorded)
    record = recorded.get(INPUT_KEY)
    if not isinstance(record, dict):
        return ExistingOutput(
            "recompute",
            "records no fingerprint of its input (written by an older hear-mn); computed again",
            reason=NO_INPUT_RECORD,
        )
    if not _same_input(record, source):
        return ExistingOutput(
            "recompute",
            f"its input {source} changed since it was written; computed again",
            reason=INPUT_CHANGED,
        )
    return ExistingOutput("reuse")
