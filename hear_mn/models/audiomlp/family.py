"""The Audio-MLP family (HEAR 2021): its two released checkpoints and its builder.

Their embeddings are fixed: no features, pooling, windows or other checkpoint to choose.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hear_mn.config import Checkpoint, Family, ModelConfig, register_family
from hear_mn.hub.weights_spec import WeightsSpec
from hear_mn.models.audiomlp.architectures import ARCHS, AUDIOMLP_FAMILY, CHUNK_SAMPLES
from hear_mn.run_options import RunOptions

if TYPE_CHECKING:
    from hear_mn.export.graph import GraphSpec
    from hear_mn.models.audiomlp.network import AudioMLPModel

AUDIOMLP_CHECKPOINTS = (
    "https://raw.githubusercontent.com/mashrurmorshed/HEAR-2021-Audio-MLP/"
    "292c77c92468beff9292e9892742e9b1fcecfcab/checkpoints/"
)
AUDIOMLP_LICENSE = "CC BY-SA 4.0 (HEAR-2021-Audio-MLP)"
# The rate the two checkpoints take audio at, which the models read (ModelConfig.sample_rate):
# one encoder chunk a second.
SAMPLE_RATE = CHUNK_SAMPLES


def _audiomlp(arch: str, sha256: str, num_bytes: int, num_params: int) -> Checkpoint:
    weights = WeightsSpec(
        file_name=f"{arch}.pth",
        url=f"{AUDIOMLP_CHECKPOINTS}{arch}.pth",
        sha256=sha256,
        num_bytes=num_bytes,
        state_dict_key="model_state_dict",
        license=AUDIOMLP_LICENSE,
    )
    return Checkpoint(arch, AUDIOMLP_FAMILY, arch, weights, SAMPLE_RATE, num_params=num_params)


CHECKPOINTS: tuple[Checkpoint, ...] = (
    _audiomlp(
        "kwmlp",
        "bfb3c2b1da7f723bba8fd1ad96f5be9b25fa79de48af80ce0235e4871613c016",
        1_743_045,
        422_408,
    ),
    _audiomlp(
        "audiomae",
        "7bb9f183f41f9d388da5d68380a3dc1579a2c251af01fcfc636b6310e9a9ab5e",
        874_213,
        213_036,
    ),
)


class AudioMLPFamily(Family):
    """kwmlp and audiomae: one configuration per checkpoint, named after it."""

    name = AUDIOMLP_FAMILY

    def new_config(self, name: str, checkpoint: Checkpoint) -> ModelConfig:
        return ModelConfig(name, checkpoint)

    def parse_name(self, name: str) -> tuple[ModelConfig, str | None, str | None] | None:
        checkpoint = next((c for c in CHECKPOINTS if c.name == name), None)
        return None if checkpoint is None else (self.new_config(name, checkpoint), None, None)

    def name_examples(self) -> str:
        return f"are one of {', '.join(c.name for c in CHECKPOINTS)}"

    def with_options(self, config: ModelConfig, **options: object) -> ModelConfig:
        checkpoint, head = options.pop("checkpoint", None), options.pop("head", None)
        if checkpoint not in (None, config.checkpoint.name) or head is not None:
            raise ValueError(f"{config.name} has no other checkpoint or head to choose")
        given = [name for name, value in options.items() if value is not None]
        if given:
            raise ValueError(
                f"{config.name} has a fixed embedding: drop the option(s) {', '.join(given)}"
            )
        return config

    def embedding_sizes(self, config: ModelConfig) -> tuple[int, int]:
        arch = ARCHS[config.checkpoint.arch]
        return arch.scene_dim, arch.timestamp_dim

    def describe(self, config: ModelConfig) -> str:
        return f"Audio-MLP {config.checkpoint.name} (HEAR 2021)"

    def build(self, config: ModelConfig, run: RunOptions) -> AudioMLPModel:
        from hear_mn.models.audiomlp.network import (
            AudioMLPModel,  # the network: torch, on building only
        )

        return AudioMLPModel(config, run)

    def export_graph(self, model: AudioMLPModel, frontend: bool) -> GraphSpec:
        from hear_mn.models.audiomlp.onnx_graph import audiomlp_graph_spec  # torch

        return audiomlp_graph_spec(model, frontend)


register_family(AudioMLPFamily(), CHECKPOINTS)
