"""The one place that knows every model: released checkpoints, named configurations, names.

A named configuration (:mod:`hear_mn.catalog`) has a HEAR module ``hear_mn.<name>``. Other
names are parsed: ``<arch>[_as][_<variant>]_<features>[_<pooling>][_ts<ms>]`` for the
MobileNets, e.g. ``mn40_ext_e1_l`` (the mn40_as_ext checkpoint, features e1 and l),
``mn10_hop5_b5_b11_mel_avgs`` or ``mn20_all_b_avg_time_pool``. HEAR modules, the model
table and the CLI all derive from here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from hear_mn.audio import duration_to_samples
from hear_mn.catalog import AUDIOMLP_CONFIGS, BEST_CONFIG, DEFAULT_CONFIG, NAMED, PAPER
from hear_mn.hear import EmbeddingModel
from hear_mn.mobilenet import DEFAULT_STRIDES, feature_info
from hear_mn.taps import (
    DEFAULT_POOLING,
    POOLINGS,
    check_pooling,
    embedding_size,
    parse_features,
    uses_block_features,
)
from hear_mn.weights import WeightsSpec, fetch_weights

EFFICIENTAT_RELEASE = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/"
AUDIOMLP_CHECKPOINTS = (
    "https://raw.githubusercontent.com/mashrurmorshed/HEAR-2021-Audio-MLP/"
    "292c77c92468beff9292e9892742e9b1fcecfcab/checkpoints/"
)
EFFICIENTAT_LICENSE = "MIT (EfficientAT release)"
FULLY_CONVOLUTIONAL = "fully_convolutional"
AUDIOMLP_LICENSE = "CC BY-SA 4.0 (HEAR-2021-Audio-MLP)"

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
class Checkpoint:
    """A released model: its family, architecture, frontend setting and weights file."""

    name: str
    family: str
    arch: str
    weights: WeightsSpec
    sample_rate: int
    n_mels: int = 128
    num_params: int = 0
    hop_length: int = 320
    head: str = "mlp"
    strides: tuple[int, ...] = DEFAULT_STRIDES
    variant: str = ""

    def name_tags(self) -> list[tuple[str, ...]]:
        """Name tokens that pick this checkpoint: variant "_hop_5" -> ("hop", "5"), ("hop5",)."""
        if not self.variant:
            return []
        tokens = tuple(self.variant.strip("_").split("_"))
        glued: list[str] = []
        for token in tokens:
            if token.isdigit() and glued:
                glued[-1] += token
            else:
                glued.append(token)
        return [tokens] if tuple(glued) == tokens else [tokens, tuple(glued)]


def _efficientat(
    arch: str, map_percent: int, num_params: int, variant: str = "", **frontend_and_head: object
) -> Checkpoint:
    """A checkpoint of the EfficientAT v0.0.1 release; ``frontend_and_head``: n_mels,
    hop_length, head, strides where they differ from the standard mnXX_as."""
    name = f"{arch}_as{variant}"
    file_name = f"{name}_mAP_{map_percent}.pt"
    weights = WeightsSpec(
        file_name=file_name,
        url=EFFICIENTAT_RELEASE + file_name,
        license=EFFICIENTAT_LICENSE,
        meta={"audioset_map": map_percent / 1000},
    )
    return Checkpoint(
        name,
        "mobilenet",
        arch,
        weights,
        32000,
        num_params=num_params,
        variant=variant,
        **frontend_and_head,
    )


def _audiomlp(arch: str, sha256: str, num_bytes: int, num_params: int) -> Checkpoint:
    weights = WeightsSpec(
        file_name=f"{arch}.pth",
        url=f"{AUDIOMLP_CHECKPOINTS}{arch}.pth",
        sha256=sha256,
        num_bytes=num_bytes,
        state_dict_key="model_state_dict",
        license=AUDIOMLP_LICENSE,
    )
    return Checkpoint(arch, "audiomlp", arch, weights, 16000, num_params=num_params)


CHECKPOINTS: dict[str, Checkpoint] = {
    checkpoint.name: checkpoint
    for checkpoint in (
        _efficientat("mn01", 298, 123_783),
        _efficientat("mn02", 378, 324_695),
        _efficientat("mn04", 432, 983_599),
        _efficientat("mn05", 443, 1_431_239),
        _efficientat("mn10", 471, 4_876_831),
        _efficientat("mn20", 478, 17_909_287),
        _efficientat("mn30", 482, 39_086_367),
        _efficientat("mn40", 484, 68_427_303),
        _efficientat("mn40", 487, 68_427_303, "_ext"),
        _efficientat("mn40", 483, 68_427_303, "_no_im_pre"),
        _efficientat("mn10", 474, 4_876_831, "_mels_256", n_mels=256),
        _efficientat("mn10", 453, 4_876_831, "_mels_40", n_mels=40),
        _efficientat("mn10", 461, 4_876_831, "_mels_64", n_mels=64),
        _efficientat("mn10", 475, 4_876_831, "_hop_5", hop_length=160),
        _efficientat("mn10", 463, 4_876_831, "_hop_15", hop_length=480),
        _efficientat("mn10", 456, 4_876_831, "_hop_20", hop_length=640),
        _efficientat("mn10", 447, 4_876_831, "_hop_25", hop_length=800),
        _efficientat("mn10", 465, 3_478_638, "_fc", head=FULLY_CONVOLUTIONAL),
        _efficientat(
            "mn10", 466, 3_478_638, "_fc_s2221", head=FULLY_CONVOLUTIONAL, strides=(2, 2, 2, 1)
        ),
        _efficientat(
            "mn10", 466, 3_478_638, "_fc_s2211", head=FULLY_CONVOLUTIONAL, strides=(2, 2, 1, 1)
        ),
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
}


@dataclass(frozen=True)
class ModelConfig:
    """A configuration: a checkpoint plus, for MobileNets, the embedding and its windows.

    ``features`` are the feature taps in concatenation order, ``pooling`` the pooling of
    block features (bK), ``timestamp_window_ms`` / ``timestamp_hop_ms`` the timestamp
    windows (None: the family's defaults, 160 and 50 ms).
    """

    name: str
    checkpoint: Checkpoint
    features: tuple[str, ...] = field(default=())
    pooling: str = DEFAULT_POOLING
    timestamp_window_ms: float | None = None
    timestamp_hop_ms: float | None = None

    @property
    def sample_rate(self) -> int:
        return self.checkpoint.sample_rate

    @property
    def weights(self) -> WeightsSpec:
        return self.checkpoint.weights

    @property
    def group(self) -> str:
        """The catalog group of a named configuration ("" for other names)."""
        row = NAMED.get(self.name)
        return row.group if row else ""

    @property
    def embedding_sizes(self) -> tuple[int, int]:
        """(scene_embedding_size, timestamp_embedding_size)."""
        checkpoint = self.checkpoint
        if checkpoint.family == "mobilenet":
            info = feature_info(
                WIDTHS[checkpoint.arch], checkpoint.n_mels, checkpoint.strides, checkpoint.head
            )
            size = embedding_size(self.features, info, self.pooling)
            return size, size
        from hear_mn.audiomlp import ARCHS

        arch = ARCHS[checkpoint.arch]
        return arch.scene_dim, arch.timestamp_dim

    def describe(self) -> str:
        """One line: checkpoint, features, pooling and windows where not the defaults, size."""
        checkpoint = self.checkpoint
        if checkpoint.family != "mobilenet":
            return f"Audio-MLP {checkpoint.name} (HEAR 2021)"
        text = f"EfficientAT {checkpoint.name} weights, features {' + '.join(self.features)}"
        if uses_block_features(self.features):
            text += f" ({self.pooling})"
        if self.timestamp_window_ms is not None:
            text += f", {self.timestamp_window_ms:g} ms timestamp windows"
        if self.timestamp_hop_ms is not None:
            text += f" every {self.timestamp_hop_ms:g} ms"
        return f"{text}, {self.embedding_sizes[0]}-d embeddings"

    def with_options(
        self,
        *,
        features: str | tuple[str, ...] | list[str] | None = None,
        pooling: str | None = None,
        timestamp_window: float | None = None,
        timestamp_hop: float | None = None,
        checkpoint: str | None = None,
        head: str | None = None,
    ) -> ModelConfig:
        """The configuration with options changed; None keeps a setting.

        ``checkpoint`` swaps the weights (e.g. "mn10_as_hop_5": the frontend, head and
        strides come with the checkpoint); ``head`` only checks that the checkpoint has that
        head; ``timestamp_window`` / ``timestamp_hop`` are milliseconds.
        """
        given = {
            "features": features,
            "pooling": pooling,
            "timestamp_window": timestamp_window,
            "timestamp_hop": timestamp_hop,
        }
        if self.checkpoint.family != "mobilenet":
            if checkpoint not in (None, self.checkpoint.name) or head is not None:
                raise ValueError(f"{self.name} has no other checkpoint or head to choose")
            options = [name for name, value in given.items() if value is not None]
            if options:
                raise ValueError(
                    f"{self.name} has a fixed embedding: drop the option(s) {', '.join(options)}"
                )
            return self
        config = self
        if checkpoint is not None:
            config = replace(config, checkpoint=_mobilenet_checkpoint(checkpoint))
        if head is not None and head != config.checkpoint.head:
            with_head = [name for name, c in CHECKPOINTS.items() if c.head == head]
            raise ValueError(
                f"head_type {head!r} does not match checkpoint {config.checkpoint.name!r}, whose "
                f"head is {config.checkpoint.head!r}: the head comes with the checkpoint; "
                f"checkpoints with a {head!r} head: {', '.join(with_head) or 'none'} "
                "(choose one with model_name=)"
            )
        if features is not None:
            config = replace(config, features=parse_features(features))
        if pooling is not None:
            config = replace(config, pooling=check_pooling(pooling))
            if not uses_block_features(config.features):
                raise ValueError(
                    f"pooling={pooling!r} acts on block features (b0 ... b15), and features "
                    f"{'_'.join(config.features)!r} have none; add some, e.g. features='b5_b11'"
                )
        rate = config.sample_rate
        if timestamp_window is not None:
            duration_to_samples(timestamp_window, rate, "timestamp_window")
            config = replace(config, timestamp_window_ms=timestamp_window)
        if timestamp_hop is not None:
            duration_to_samples(timestamp_hop, rate, "timestamp_hop")
            config = replace(config, timestamp_hop_ms=timestamp_hop)
        config.embedding_sizes  # noqa: B018 (computing the sizes checks every feature exists)
        return config

    def build(self, **options: object) -> EmbeddingModel:
        """The model with random weights; ``options`` go to the family's model class."""
        checkpoint = self.checkpoint
        if checkpoint.family == "mobilenet":
            from hear_mn.efficientat import MobileNetEmbedder

            windows = {
                "timestamp_window_ms": self.timestamp_window_ms,
                "timestamp_hop_ms": self.timestamp_hop_ms,
            }
            return MobileNetEmbedder(
                name=self.name,
                width=WIDTHS[checkpoint.arch],
                n_mels=checkpoint.n_mels,
                hop_length=checkpoint.hop_length,
                head=checkpoint.head,
                strides=checkpoint.strides,
                features=self.features,
                pooling=self.pooling,
                **{key: value for key, value in windows.items() if value is not None},
                **options,
            )
        from hear_mn.audiomlp import ARCHS, AudioMLPModel

        return AudioMLPModel(ARCHS[checkpoint.arch], name=self.name, **options)


PAPER_CONFIGS: tuple[str, ...] = tuple(
    name for name, row in NAMED.items() if row.group == PAPER and row.old_configs
)
# Every name that has its own HEAR module, hear_mn.<name>, in table order.
NAMED_CONFIGS: tuple[str, ...] = tuple(NAMED)
__all__ = [
    "AUDIOMLP_CONFIGS",
    "BEST_CONFIG",
    "CHECKPOINTS",
    "CONFIG_OPTIONS",
    "DEFAULT_CONFIG",
    "NAMED_CONFIGS",
    "PAPER_CONFIGS",
    "Checkpoint",
    "ModelConfig",
    "create_model",
    "get_config",
    "named_configs",
]


def _mobilenet_checkpoint(name: str) -> Checkpoint:
    checkpoint = CHECKPOINTS.get(name)
    if checkpoint is None or checkpoint.family != "mobilenet":
        known = ", ".join(k for k, c in CHECKPOINTS.items() if c.family == "mobilenet")
        raise ValueError(f"unknown EfficientAT checkpoint {name!r}; known: {known}")
    return checkpoint


def _named_config(name: str) -> ModelConfig:
    row = NAMED[name]
    checkpoint = CHECKPOINTS[row.checkpoint]
    if checkpoint.family != "mobilenet":
        return ModelConfig(name, checkpoint)
    config = ModelConfig(
        name,
        checkpoint,
        parse_features(row.features),
        row.pooling or DEFAULT_POOLING,
    )
    return config.with_options(timestamp_window=row.timestamp_window_ms)


def _take(tokens: list[str], part: tuple[str, ...]) -> bool:
    """Remove the first occurrence of the token run ``part`` from ``tokens``, if any."""
    for start in range(len(tokens) - len(part) + 1):
        if tuple(tokens[start : start + len(part)]) == part:
            del tokens[start : start + len(part)]
            return True
    return False


def _parse_name(name: str) -> tuple[ModelConfig, str | None, str | None]:
    """A MobileNet name by the grammar above -> (configuration, features text, pooling),
    the last two None where the name gives none."""
    tokens = name.split("_")
    arch = tokens[0]
    if arch not in WIDTHS:
        raise ValueError(
            f"unknown model {name!r}: names start with one of {', '.join(WIDTHS)} "
            f"(e.g. {DEFAULT_CONFIG}) or are one of {', '.join(AUDIOMLP_CONFIGS)}"
        )
    rest = tokens[1:]
    if rest[:1] == ["as"]:
        rest = rest[1:]
    checkpoint = CHECKPOINTS.get(f"{arch}_as")
    variants = [c for c in CHECKPOINTS.values() if c.arch == arch and c.variant]
    tagged = sorted(((tag, c) for c in variants for tag in c.name_tags()), key=lambda t: -len(t[0]))
    for tag, candidate in tagged:
        if _take(rest, tag):
            checkpoint = candidate
            break
    else:
        if rest[:1] == ["ext"]:
            raise ValueError(f"no released checkpoint '{arch}_as_ext' for {name!r}")
    if checkpoint is None:
        raise ValueError(f"no released checkpoint for {name!r}")
    pooling = None
    for candidate_pooling in sorted(POOLINGS, key=len, reverse=True):
        suffix = candidate_pooling.split("_")
        if rest[-len(suffix) :] == suffix:
            pooling, rest = candidate_pooling, rest[: -len(suffix)]
            break
    window = [token for token in rest if token[:2] == "ts" and token[2:].isdigit()]
    rest = [token for token in rest if token not in window]
    config = ModelConfig(name, checkpoint).with_options(
        timestamp_window=int(window[-1][2:]) if window else None
    )
    return config, "_".join(rest) or None, pooling


# The options of a configuration (ModelConfig.with_options): the rest go to the model class.
CONFIG_OPTIONS: tuple[str, ...] = (
    "features",
    "pooling",
    "timestamp_window",
    "timestamp_hop",
    "checkpoint",
    "head",
)


def get_config(name: str, **options: object) -> ModelConfig:
    """The configuration ``name`` (a named one, or parsed), with options changed.

    ``features`` replaces the feature set the name implies; see
    :meth:`ModelConfig.with_options` for all options.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"model name must be a non-empty string, got {name!r}")
    unknown = sorted(set(options) - set(CONFIG_OPTIONS))
    if unknown:
        raise TypeError(
            f"unknown option(s) {', '.join(unknown)}; known: {', '.join(CONFIG_OPTIONS)}"
        )
    features = options.pop("features", None)
    if name in NAMED:
        return _named_config(name).with_options(features=features, **options)
    if name in CHECKPOINTS and CHECKPOINTS[name].family == "audiomlp":
        return ModelConfig(name, CHECKPOINTS[name]).with_options(features=features, **options)
    config, named_features, named_pooling = _parse_name(name)
    if features is None:
        if named_features is None:
            raise ValueError(f"model name {name!r} names no embedding features; e.g. {name}_e1_l")
        features = named_features
    if options.get("pooling") is None:
        options["pooling"] = named_pooling
    return config.with_options(features=features, **options)


def named_configs(group: str | None = None) -> list[ModelConfig]:
    """Every configuration that has a HEAR module (of one catalog group), in table order."""
    return [get_config(name) for name, row in NAMED.items() if group in (None, row.group)]


def create_model(
    name: str,
    *,
    pretrained: bool = True,
    weights: str | os.PathLike[str] | None = None,
    device: str | None = None,
    download: bool = True,
    progress: bool | None = None,
    **options: object,
) -> EmbeddingModel:
    """Build a configuration in eval mode.

    ``weights`` is a checkpoint file to load; without it the released weights are used
    (from ``$HEAR_MN_WEIGHTS_DIR``, the cache, or downloaded), or random ones with
    ``pretrained=False`` (for benchmarks and tests). The options of
    :meth:`ModelConfig.with_options` (:data:`CONFIG_OPTIONS`: ``features``, ``pooling``,
    ``timestamp_window`` and ``timestamp_hop`` in ms, ``checkpoint``, e.g. "mn10_as_hop_5",
    and ``head``) change the configuration; the others (``autocast``,
    ``window_batch_size``) go to the model class.
    """
    config = get_config(name, **{k: options.pop(k) for k in CONFIG_OPTIONS if k in options})
    model = config.build(**options)
    path = Path(weights) if weights is not None and str(weights) != "" else None
    if path is not None or pretrained:
        # fetch_weights loads the file into the model; a cached file it refuses is removed.
        fetch_weights(
            config.weights,
            path,
            download=download,
            progress=progress,
            verify=model.load_checkpoint,
        )
    model.eval()
    if device is not None:
        model.to(torch_device(device))
    return model


def torch_device(device: object) -> object:
    """Check a device name early, with a clear message instead of a deep torch error."""
    import torch

    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'") from error
    if resolved.type == "meta":
        raise ValueError(
            "device 'meta' holds no data (only shapes), so no embedding can be computed there; "
            "use device='cpu', 'cuda' or 'cuda:N'"
        )
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use device='cpu'")
    return resolved
