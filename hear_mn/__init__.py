"""hear-mn: low-complexity audio embedding extractors behind the HEAR API.

Each named configuration is a HEAR module, ``hear_mn.<name>``; any configuration can also be
built by name with :func:`create_model`. :mod:`hear_mn.registry` knows them all.
"""

from hear_mn.hear import EmbeddingModel, get_scene_embeddings, get_timestamp_embeddings
from hear_mn.registry import NAMED_CONFIGS, create_model, get_config, named_configs
from hear_mn.streaming import EmbeddingStream, stream

__version__ = "0.1.0"
__all__ = [
    "NAMED_CONFIGS",
    "EmbeddingModel",
    "EmbeddingStream",
    "create_model",
    "get_config",
    "get_scene_embeddings",
    "get_timestamp_embeddings",
    "named_configs",
    "stream",
]
