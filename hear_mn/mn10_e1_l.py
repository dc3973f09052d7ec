"""HEAR module mn10_e1_l: EfficientAT mn10_as weights, features l + e1, 1487-d embeddings."""

from hear_mn.hear import get_scene_embeddings, get_timestamp_embeddings, make_load_model

load_model = make_load_model("mn10_e1_l")
__all__ = ["load_model", "get_scene_embeddings", "get_timestamp_embeddings"]
