"""HEAR module mn40_ext_clf_all_se_mels: EfficientAT mn40_as_ext weights, features mels + clf + all_se, 9304-d embeddings."""

from hear_mn.hear import get_scene_embeddings, get_timestamp_embeddings, make_load_model

load_model = make_load_model("mn40_ext_clf_all_se_mels")
__all__ = ["load_model", "get_scene_embeddings", "get_timestamp_embeddings"]
