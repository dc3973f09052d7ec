"""A released checkpoint described as data (:class:`WeightsSpec`): the row a family's table
holds for each weights file.

Torch-free, so that configurations can be declared, listed and checked for their weights
files without loading torch; :mod:`hear_mn.hub.weights` finds, checks and loads the files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from hear_mn.hub.locations import RemoteFile

__all__ = ["WeightsSpec"]


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
