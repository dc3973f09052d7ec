"""A released checkpoint described as data (:class:`WeightsSpec`), and where it stands locally.

Torch-free, so that configurations can be declared, listed and checked for their weights
files without loading torch; :mod:`hear_mn.weights` finds, checks and loads the files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from hear_mn.hub import RemoteFile, find, integrity_of


@dataclass(frozen=True)
class WeightsSpec(RemoteFile):
    """A released checkpoint file, described as data.

    ``state_dict_key`` names the entry that holds the state dict when the file is a dict
    wrapping it (Audio-MLP's ``{"model_state_dict": ...}``); ``None`` means the file is the
    state dict itself (EfficientAT). ``sha256`` and ``num_bytes`` are checked when known.
    """

    state_dict_key: str | None = None
    license: str = ""
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    kind: ClassVar[str] = "weights"
    mirrored: ClassVar[bool] = True
    supply_hint: ClassVar[str] = (
        ", or pass its path (load_model(path), create_model(..., weights=path))"
    )


def find_weights(file_name: str) -> tuple[str, Path] | None:
    """Where ``file_name`` is found locally, in lookup order, without checking or downloading.

    Returns ``("offline" | "shipped" | "cached", path)``, or None when it is nowhere.
    """
    return find(file_name)


def weights_integrity(spec: WeightsSpec) -> str:
    """How far the released file of ``spec`` is trusted, without reading it: "pinned",
    "published digest", "trust on first use" (a cached copy's record) or "unpinned"."""
    return integrity_of(spec)
