"""HEAR module mn40_ext_e1 under its original import path (same as hear_mn.mn40_ext_e1)."""

from hear_mn.mn40_ext_e1 import get_scene_embeddings, get_timestamp_embeddings, load_model

__all__ = ["load_model", "get_scene_embeddings", "get_timestamp_embeddings"]
