"""HEAR module mn04_e1_l: EfficientAT mn04_as weights, features l + e1, 911-d embeddings."""

from hear_mn.hear import get_scene_embeddings, get_timestamp_embeddings, make_load_model

load_model = make_load_model("mn04_e1_l")
__all__ = ["load_model", "get_scene_embeddings", "get_timestamp_embeddings"]
