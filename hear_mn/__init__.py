"""hear-mn: low-complexity audio embedding extractors behind the HEAR API.

Each named configuration is a HEAR module, ``hear_mn.<name>``; any configuration can also be
built by name with :func:`create_model`, and folders of audio files embedded with
:func:`embed_files` (or on a Ray cluster with :func:`embed_dataset`).
:mod:`hear_mn.registry` knows every model.

The names below are imported on first use, so that ``import hear_mn`` (and ``hear-mn
--help``) does not load torch.
"""

from __future__ import annotations

import importlib

from hear_mn import module_finder
from hear_mn.version import __version__ as __version__  # re-exported

# ``import hear_mn.<name>`` works for every configuration name the registry accepts.
module_finder.install()

# Public name -> the module that defines it.
_EXPORTS = {
    "EmbeddingModel": "hear_mn.model",
    "get_scene_embeddings": "hear_mn.hear",
    "get_timestamp_embeddings": "hear_mn.hear",
    "NAMED_CONFIGS": "hear_mn.registry",
    "create_model": "hear_mn.registry",
    "get_config": "hear_mn.registry",
    "named_configs": "hear_mn.registry",
    "RunOptions": "hear_mn.run_options",
    "EmbeddingStream": "hear_mn.streaming",
    "stream": "hear_mn.streaming",
    "EmbedReport": "hear_mn.batch",
    "embed_files": "hear_mn.batch",
    "embed_dataset": "hear_mn.engines.ray_data",
    "evaluate": "hear_mn.evaluation.api",
    "export_onnx": "hear_mn.export",
    "score_embeddings": "hear_mn.evaluation.api",
    "fit": "hear_mn.classifier",
    "load_classifier": "hear_mn.classifier",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hear_mn' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
