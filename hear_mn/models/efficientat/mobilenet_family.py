"""The EfficientAT MobileNet family: the release's checkpoints (one row each), its heads and
builder; names, options and descriptions are shared with DyMN
(:mod:`hear_mn.models.efficientat.efficientat_family`).

Names outside the catalog are read by the grammar
``<arch>[_as][_<tag>]_<features>[_<pooling>][_ts<ms>]``, e.g. ``mn40_ext_e1_l`` (the
mn40_as_ext checkpoint, features e1 and l), ``mn10_hop5_b5_b11_mel_avgs`` or
``mn20_all_b_avg_time_pool``; a checkpoint's ``tags`` are the name parts that pick it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hear_mn.config import ModelConfig, register_family
from hear_mn.hub.weights_spec import WeightsSpec
from hear_mn.models.efficientat.block_table import (
    DEFAULT_STRIDES,
    MOBILENET_FAMILY,
    FeatureInfo,
    feature_info,
)
from hear_mn.models.efficientat.efficientat_family import (
    EFFICIENTAT_LICENSE,
    EFFICIENTAT_RELEASE,
    EfficientATCheckpoint,
    EfficientATFamily,
)
from hear_mn.run_options import RunOptions

if TYPE_CHECKING:
    from hear_mn.export.graph import GraphSpec
    from hear_mn.models.efficientat.efficientat_embedder import MobileNetEmbedder

FULLY_CONVOLUTIONAL = "fully_convolutional"

# Width multiplier of each MobileNet architecture.
WIDTHS: dict[str, float] = {
    "mn01": 0.1,
    "mn02": 0.2,
    "mn04": 0.4,
    "mn05": 0.5,
    "mn10": 1.0,
    "mn20": 2.0,
    "mn30": 3.0,
    "mn40": 4.0,
}


@dataclass(frozen=True)
class MobileNetCheckpoint(EfficientATCheckpoint):
    """A released MobileNet: the frontend settings and tags of any EfficientAT checkpoint,
    and its backbone's head and strides."""

    head: str = "mlp"
    strides: tuple[int, ...] = DEFAULT_STRIDES

    @property
    def width(self) -> float:
        return WIDTHS[self.arch]


def _release(
    arch: str, map_percent: int, num_params: int, *tags: str, **settings: object
) -> MobileNetCheckpoint:
    """A checkpoint of the EfficientAT v0.0.1 release, ``<arch>_as[_<tags[0]>]``;
    ``settings``: n_mels, hop_length, head, strides where they differ from mnXX_as."""
    name = f"{arch}_as" + "".join(f"_{tag}" for tag in tags[:1])
    file_name = f"{name}_mAP_{map_percent}.pt"
    weights = WeightsSpec(
        file_name=file_name,
        url=EFFICIENTAT_RELEASE + file_name,
        license=EFFICIENTAT_LICENSE,
        meta={"audioset_map": map_percent / 1000},
    )
    return MobileNetCheckpoint(
        name, MOBILENET_FAMILY, arch, weights, num_params=num_params, tags=tags, **settings
    )


_FC = {"head": FULLY_CONVOLUTIONAL}
RELEASE: tuple[MobileNetCheckpoint, ...] = (
    _release("mn01", 298, 123_783),
    _release("mn02", 378, 324_695),
    _release("mn04", 432, 983_599),
    _release("mn05", 443, 1_431_239),
    _release("mn10", 471, 4_876_831),
    _release("mn20", 478, 17_909_287),
    _release("mn30", 482, 39_086_367),
    _release("mn40", 484, 68_427_303),
    _release("mn40", 487, 68_427_303, "ext"),
    _release("mn40", 483, 68_427_303, "no_im_pre"),
    _release("mn10", 474, 4_876_831, "mels_256", "mels256", n_mels=256),
    _release("mn10", 453, 4_876_831, "mels_40", "mels40", n_mels=40),
    _release("mn10", 461, 4_876_831, "mels_64", "mels64", n_mels=64),
    _release("mn10", 475, 4_876_831, "hop_5", "hop5", hop_length=160),
    _release("mn10", 463, 4_876_831, "hop_15", "hop15", hop_length=480),
    _release("mn10", 456, 4_876_831, "hop_20", "hop20", hop_length=640),
    _release("mn10", 447, 4_876_831, "hop_25", "hop25", hop_length=800),
    _release("mn10", 465, 3_478_638, "fc", **_FC),
    _release("mn10", 466, 3_478_638, "fc_s2221", strides=(2, 2, 2, 1), **_FC),
    _release("mn10", 466, 3_478_638, "fc_s2211", strides=(2, 2, 1, 1), **_FC),
)


class MobileNetFamily(EfficientATFamily):
    """EfficientAT MobileNetV3s: any feature set, pooling and timestamp windows."""

    name = MOBILENET_FAMILY
    widths = WIDTHS
    release = RELEASE

    def check_head(self, config: ModelConfig, head: str) -> None:
        current = config.checkpoint
        if head != current.head:
            with_head = [c.name for c in RELEASE if c.head == head]
            raise ValueError(
                f"head_type {head!r} does not match checkpoint {current.name!r}, whose "
                f"head is {current.head!r}: the head comes with the checkpoint; "
                f"checkpoints with a {head!r} head: {', '.join(with_head) or 'none'} "
                "(choose one with model_name=)"
            )

    def feature_info(self, config: ModelConfig) -> FeatureInfo:
        c = config.checkpoint
        return feature_info(c.width, c.n_mels, c.strides, c.head)

    def build(self, config: ModelConfig, run: RunOptions) -> MobileNetEmbedder:
        from hear_mn.models.efficientat.efficientat_embedder import (
            MobileNetEmbedder,  # the network: torch, on building only
        )

        return MobileNetEmbedder(config, run)

    def export_graph(self, model: MobileNetEmbedder, frontend: bool) -> GraphSpec:
        from hear_mn.models.efficientat.graph_specs import mobilenet_graph_spec  # torch

        return mobilenet_graph_spec(model, frontend)


register_family(MobileNetFamily(), RELEASE)
