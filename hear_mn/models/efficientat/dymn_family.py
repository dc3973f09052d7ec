"""EfficientAT's dynamic MobileNets (DyMN): the released AudioSet checkpoints, names, options.

Names outside the catalog follow ``dymnXX[_as]_<features>[_<pooling>][_ts<ms>]``, e.g.
``dymn10_all_b_mel_avgs`` (b5, b11, b13, b15 and the mean log-mel), ``dymn04_clf1_logits``
or ``dymn20_b0_b3_avg_time_pool``. Features are those of the newer EfficientAT_HEAR
vocabulary (``mel_avgs``, ``clf1``, ``clf2``, ``logits``, ``b0`` ... ``b15``; the paper's
synonyms ``mels``, ``e1``, ``clf``, ``l`` and ``block`` work too); there is no ``seK``, as
DyMN has no squeeze-excitation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hear_mn.config import ModelConfig, register_family
from hear_mn.hub.weights_spec import WeightsSpec
from hear_mn.models.efficientat.block_table import DYMN_FAMILY, FeatureInfo, dymn_feature_info
from hear_mn.models.efficientat.efficientat_family import (
    EFFICIENTAT_LICENSE,
    EFFICIENTAT_RELEASE,
    EfficientATCheckpoint,
    EfficientATFamily,
)
from hear_mn.models.efficientat.feature_taps import TAPS
from hear_mn.run_options import RunOptions

if TYPE_CHECKING:
    from hear_mn.export.graph import GraphSpec
    from hear_mn.models.efficientat.dymn_network import DyMNEmbedder

HEAD = "mlp"
# Width multiplier of each DyMN architecture.
WIDTHS: dict[str, float] = {"dymn04": 0.4, "dymn10": 1.0, "dymn20": 2.0}


@dataclass(frozen=True)
class DyMNCheckpoint(EfficientATCheckpoint):
    """A released DyMN (128 mel bands, STFT hop 320, no tags: one checkpoint a width)."""

    @property
    def width(self) -> float:
        return WIDTHS[self.arch]


def _release(arch: str, file_name: str, map_percent: int, num_params: int) -> DyMNCheckpoint:
    """``<arch>_as`` of the EfficientAT v0.0.1 release; ``map_percent``: AudioSet mAP x 10
    as the EfficientAT README gives it."""
    weights = WeightsSpec(
        file_name=file_name,
        url=EFFICIENTAT_RELEASE + file_name,
        license=EFFICIENTAT_LICENSE,
        meta={"audioset_map": map_percent / 1000},
    )
    return DyMNCheckpoint(f"{arch}_as", DYMN_FAMILY, arch, weights, num_params=num_params)


# dymn20_as is the release's best file (the original's default for that name); the
# release also has dymn20_as.pt, dymn20_as_mAP_489.pt and dymn20_as_mAP_490.pt.
RELEASE: tuple[DyMNCheckpoint, ...] = (
    _release("dymn04", "dymn04_as.pt", 450, 1_961_239),
    _release("dymn10", "dymn10_as.pt", 477, 10_548_479),
    _release("dymn20", "dymn20_as_mAP_493.pt", 491, 39_966_143),
)


def check_dymn_features(features: tuple[str, ...]) -> tuple[str, ...]:
    """``features`` when DyMN has them all; squeeze-excitation features are refused."""
    for name in features:
        if TAPS[name].squeeze_excite:
            raise ValueError(
                f"feature {name!r}: DyMN has no squeeze-excitation (its blocks use dynamic "
                "convolution, Dy-ReLU and coordinate attention instead); choose from "
                "mel_avgs, clf1, clf2, logits and b0 ... b15"
            )
    return features


class DyMNFamily(EfficientATFamily):
    """EfficientAT's dynamic MobileNets: any feature set but seK, any pooling and windows."""

    name = DYMN_FAMILY
    widths = WIDTHS
    release = RELEASE
    weights_title = "EfficientAT DyMN"
    checkpoint_title = "DyMN"

    def check_head(self, config: ModelConfig, head: str) -> None:
        if head != HEAD:
            raise ValueError(f"head_type {head!r}: the released DyMNs have an {HEAD!r} head only")

    def check_features(self, features: tuple[str, ...]) -> tuple[str, ...]:
        return check_dymn_features(features)

    def feature_info(self, config: ModelConfig) -> FeatureInfo:
        return dymn_feature_info(config.checkpoint.width, config.checkpoint.n_mels)

    def build(self, config: ModelConfig, run: RunOptions) -> DyMNEmbedder:
        from hear_mn.models.efficientat.dymn_network import (
            DyMNEmbedder,  # the network: torch, on building only
        )

        return DyMNEmbedder(config, run)

    def export_graph(self, model: DyMNEmbedder, frontend: bool) -> GraphSpec:
        from hear_mn.models.efficientat.graph_specs import dymn_graph_spec  # torch

        return dymn_graph_spec(model, frontend)


register_family(DyMNFamily(), RELEASE)
