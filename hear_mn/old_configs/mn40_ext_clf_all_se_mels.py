"""HEAR module mn40_ext_clf_all_se_mels under its original import path (same as hear_mn.mn40_ext_clf_all_se_mels)."""

from hear_mn.mn40_ext_clf_all_se_mels import (
    get_scene_embeddings,
    get_timestamp_embeddings,
    load_model,
)

__all__ = ["load_model", "get_scene_embeddings", "get_timestamp_embeddings"]
