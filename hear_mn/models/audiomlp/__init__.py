"""Audio-MLP (HEAR 2021): the two variants as data (torch-free), the gMLP network with its
frontends and streams, the scene resampling of long signals, the family's checkpoints, and
the ONNX graph. The HEAR modules are :mod:`hear_mn.kwmlp` and :mod:`hear_mn.audiomae`."""

from __future__ import annotations

HEAR_API = frozenset({"load_model", "get_scene_embeddings", "get_timestamp_embeddings"})


def __getattr__(name: str) -> object:
    """Users of the original Audio-MLP package look here for the models: say where they are."""
    if name in HEAR_API:
        raise AttributeError(
            f"hear_mn.models.audiomlp holds the Audio-MLP networks, not a HEAR module: the "
            f"models are hear_mn.kwmlp and hear_mn.audiomae (e.g. hear_mn.kwmlp.{name})"
        )
    raise AttributeError(f"module 'hear_mn.models.audiomlp' has no attribute {name!r}")
