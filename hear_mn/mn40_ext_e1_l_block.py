"""HEAR module mn40_ext_e1_l_block: EfficientAT mn40_as_ext weights, features l + e1 + block, 8751-d embeddings."""

from hear_mn.hear import get_scene_embeddings, get_timestamp_embeddings, make_load_model

load_model = make_load_model("mn40_ext_e1_l_block")
__all__ = ["load_model", "get_scene_embeddings", "get_timestamp_embeddings"]
