"""HEAR module mn40_ext_e1_l_se under its original import path (same as hear_mn.mn40_ext_e1_l_se)."""

from hear_mn.mn40_ext_e1_l_se import get_scene_embeddings, get_timestamp_embeddings, load_model

__all__ = ["load_model", "get_scene_embeddings", "get_timestamp_embeddings"]
