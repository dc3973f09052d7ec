"""HEAR module audiomae: Audio-MLP audiomae (HEAR 2021)."""

from hear_mn.hear import get_scene_embeddings, get_timestamp_embeddings, make_load_model

load_model = make_load_model("audiomae")
__all__ = ["load_model", "get_scene_embeddings", "get_timestamp_embeddings"]
