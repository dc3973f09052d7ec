"""The EfficientAT MobileNet family: the release's checkpoints, its names, options and builder.

Names outside the catalog are read by the grammar
``<arch>[_as][_<tag>]_<features>[_<pooling>][_ts<ms>]``, e.g. ``mn40_ext_e1_l`` (the
mn40_as_ext checkpoint, features e1 and l), ``mn10_hop5_b5_b11_mel_avgs`` or
``mn20_all_b_avg_time_pool``; a checkpoint's ``tags`` are the name parts that pick it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from hear_mn.config import CHECKPOINTS, Checkpoint, Family, ModelConfig, register_family
from hear_mn.durations import duration_to_samples
from hear_mn.hub.weights_spec import WeightsSpec
from hear_mn.models.efficientat.block_table import (
    DEFAULT_STRIDES,
    MOBILENET_FAMILY,
    SAMPLE_RATE,
    FeatureInfo,
    feature_info,
)
from hear_mn.models.efficientat.feature_taps import (
    DEFAULT_POOLING,
    POOLINGS,
    check_pooling,
    embedding_size,
    parse_features,
    uses_block_features,
)

if TYPE_CHECKING:
    from hear_mn.export.graph import GraphSpec
    from hear_mn.models.efficientat.efficientat_embedder import MobileNetEmbedder

EFFICIENTAT_RELEASE = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/"
EFFICIENTAT_LICENSE = "MIT (EfficientAT release)"
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
class MobileNetCheckpoint(Checkpoint):
    """A released MobileNet with its frontend (mel bands, STFT hop) and backbone (head,
    strides) settings; ``tags``: the name parts that pick it (e.g. "hop_5" and "hop5")."""

    n_mels: int = 128
    hop_length: int = 320
    head: str = "mlp"
    strides: tuple[int, ...] = DEFAULT_STRIDES
    tags: tuple[str, ...] = ()

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
        name,
        MOBILENET_FAMILY,
        arch,
        weights,
        SAMPLE_RATE,
        num_params=num_params,
        tags=tags,
        **settings,
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


def split_name_suffixes(tokens: list[str]) -> tuple[list[str], str | None, int | None]:
    """Name tokens after the checkpoint's -> (feature tokens, pooling, timestamp window in
    ms): a trailing pooling name (``..._avg_time_pool``) and ``ts<ms>`` tokens."""
    pooling = None
    for candidate in sorted(POOLINGS, key=len, reverse=True):
        suffix = candidate.split("_")
        if tokens[-len(suffix) :] == suffix:
            pooling, tokens = candidate, tokens[: -len(suffix)]
            break
    window = [token for token in tokens if token[:2] == "ts" and token[2:].isdigit()]
    tokens = [token for token in tokens if token not in window]
    return tokens, pooling, int(window[-1][2:]) if window else None


def with_tap_options(
    config: ModelConfig,
    *,
    features: str | tuple[str, ...] | list[str] | None = None,
    pooling: str | None = None,
    timestamp_window: float | None = None,
    timestamp_hop: float | None = None,
    check_features: Callable[[tuple[str, ...]], tuple[str, ...]] = lambda features: features,
) -> ModelConfig:
    """``config`` with the options every EfficientAT family takes: features (checked by
    ``check_features``), pooling of block features, timestamp window and hop in ms."""
    if features is not None:
        config = replace(config, features=check_features(parse_features(features)))
    if pooling is not None:
        config = replace(config, pooling=check_pooling(pooling))
        if not uses_block_features(config.features):
            raise ValueError(
                f"pooling={pooling!r} acts on block features (b0 ... b15), and features "
                f"{'_'.join(config.features)!r} have none; add some, e.g. features='b5_b11'"
            )
    if timestamp_window is not None:
        duration_to_samples(timestamp_window, SAMPLE_RATE, "timestamp_window")
        config = replace(config, timestamp_window_ms=timestamp_window)
    if timestamp_hop is not None:
        duration_to_samples(timestamp_hop, SAMPLE_RATE, "timestamp_hop")
        config = replace(config, timestamp_hop_ms=timestamp_hop)
    return config


def describe_taps(config: ModelConfig, weights: str, size: int) -> str:
    """One line: whose ``weights``, which features (and pooling), windows, embedding size."""
    text = f"{weights} weights, features {' + '.join(config.features)}"
    if uses_block_features(config.features):
        text += f" ({config.pooling})"
    if config.timestamp_window_ms is not None:
        text += f", {config.timestamp_window_ms:g} ms timestamp windows"
    if config.timestamp_hop_ms is not None:
        text += f" every {config.timestamp_hop_ms:g} ms"
    return f"{text}, {size}-d embeddings"


def tap_settings(config: ModelConfig) -> dict[str, object]:
    """The embedder's keyword arguments that every EfficientAT family takes from ``config``."""
    windows = {
        "timestamp_window_ms": config.timestamp_window_ms,
        "timestamp_hop_ms": config.timestamp_hop_ms,
    }
    return {
        "name": config.name,
        "features": config.features,
        "pooling": config.pooling,
        **{key: value for key, value in windows.items() if value is not None},
    }


class EfficientATFamily(Family):
    """What the EfficientAT families (MobileNets, DyMN) share: configurations with taps,
    pooling and timestamp windows; options; descriptions. A subclass names its widths and
    says how a checkpoint is found by name, which heads it has and which features."""

    widths: dict[str, float] = {}
    weights_title = "EfficientAT"

    def new_config(self, name: str, checkpoint: Checkpoint) -> ModelConfig:
        return ModelConfig(name, checkpoint, pooling=DEFAULT_POOLING)

    def name_examples(self) -> str:
        return f"start with one of {', '.join(self.widths)}"

    def checkpoint_named(self, name: str) -> Checkpoint:
        """This family's checkpoint ``name``, or a ValueError listing the known ones."""
        raise NotImplementedError

    def check_head(self, config: ModelConfig, head: str) -> None:
        """Refuse a ``head`` that ``config``'s checkpoint does not have (ValueError)."""
        raise NotImplementedError

    def check_features(self, features: tuple[str, ...]) -> tuple[str, ...]:
        """``features`` when this family has them (every family has every feature here)."""
        return features

    def feature_info(self, config: ModelConfig) -> FeatureInfo:
        """The shapes of the taps of ``config``'s network."""
        raise NotImplementedError

    def embedding_sizes(self, config: ModelConfig) -> tuple[int, int]:
        size = embedding_size(config.features, self.feature_info(config), config.pooling)
        return size, size

    def with_options(
        self,
        config: ModelConfig,
        *,
        features: str | tuple[str, ...] | list[str] | None = None,
        pooling: str | None = None,
        timestamp_window: float | None = None,
        timestamp_hop: float | None = None,
        checkpoint: str | None = None,
        head: str | None = None,
    ) -> ModelConfig:
        if checkpoint is not None:
            config = replace(config, checkpoint=self.checkpoint_named(checkpoint))
        if head is not None:
            self.check_head(config, head)
        config = with_tap_options(
            config,
            features=features,
            pooling=pooling,
            timestamp_window=timestamp_window,
            timestamp_hop=timestamp_hop,
            check_features=self.check_features,
        )
        if config.features:
            self.embedding_sizes(config)  # checks that every feature exists for this head
        return config

    def describe(self, config: ModelConfig) -> str:
        weights = f"{self.weights_title} {config.checkpoint.name}"
        return describe_taps(config, weights, self.embedding_sizes(config)[0])


def _take(tokens: list[str], part: tuple[str, ...]) -> bool:
    """Remove the first occurrence of the token run ``part`` from ``tokens``, if any."""
    for start in range(len(tokens) - len(part) + 1):
        if tuple(tokens[start : start + len(part)]) == part:
            del tokens[start : start + len(part)]
            return True
    return False


def _checkpoint(name: str) -> MobileNetCheckpoint:
    checkpoint = CHECKPOINTS.get(name)
    if not isinstance(checkpoint, MobileNetCheckpoint):
        known = ", ".join(c.name for c in RELEASE)
        raise ValueError(f"unknown EfficientAT checkpoint {name!r}; known: {known}")
    return checkpoint


class MobileNetFamily(EfficientATFamily):
    """EfficientAT MobileNetV3s: any feature set, pooling and timestamp windows."""

    name = MOBILENET_FAMILY
    widths = WIDTHS

    def parse_name(self, name: str) -> tuple[ModelConfig, str | None, str | None] | None:
        tokens = name.split("_")
        arch = tokens[0]
        if arch not in WIDTHS:
            return None
        rest = tokens[1:]
        if rest[:1] == ["as"]:
            rest = rest[1:]
        checkpoint = CHECKPOINTS.get(f"{arch}_as")
        tagged = sorted(
            ((tuple(tag.split("_")), c) for c in RELEASE if c.arch == arch for tag in c.tags),
            key=lambda pair: -len(pair[0]),
        )
        for tag, candidate in tagged:
            if _take(rest, tag):
                checkpoint = candidate
                break
        else:
            if rest[:1] == ["ext"]:
                raise ValueError(f"no released checkpoint '{arch}_as_ext' for {name!r}")
        if checkpoint is None:
            raise ValueError(f"no released checkpoint for {name!r}")
        rest, pooling, window = split_name_suffixes(rest)
        config = self.new_config(name, checkpoint)
        if window is not None:
            config = self.with_options(config, timestamp_window=window)
        return config, "_".join(rest) or None, pooling

    def checkpoint_named(self, name: str) -> Checkpoint:
        return _checkpoint(name)

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

    def build(self, config: ModelConfig, **options: object) -> MobileNetEmbedder:
        from hear_mn.models.efficientat.efficientat_embedder import (
            MobileNetEmbedder,  # the network: torch, on building only
        )

        c = config.checkpoint
        return MobileNetEmbedder(
            width=c.width,
            n_mels=c.n_mels,
            hop_length=c.hop_length,
            head=c.head,
            strides=c.strides,
            **tap_settings(config),
            **options,
        )

    def export_graph(self, model: MobileNetEmbedder, frontend: bool) -> GraphSpec:
        from hear_mn.models.efficientat.graph_specs import mobilenet_graph_spec  # torch

        return mobilenet_graph_spec(model, frontend)


register_family(MobileNetFamily(), RELEASE)
