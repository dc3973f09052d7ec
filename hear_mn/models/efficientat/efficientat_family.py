"""What the two EfficientAT families (MobileNets, DyMN) share: the release's checkpoint row
type, its sample rate, the name grammar and the configuration options (torch-free).

Names outside the catalog read ``<arch>[_as][_<tag>]_<features>[_<pooling>][_ts<ms>]``: a
checkpoint's ``tags`` are the name parts that pick it (e.g. ``mn10_hop5_...``), so a new
checkpoint is a row of its family's release, not a branch of the parser.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hear_mn.config import Checkpoint, Family, ModelConfig
from hear_mn.durations import duration_to_samples
from hear_mn.models.efficientat.block_table import FeatureInfo
from hear_mn.models.efficientat.feature_taps import (
    DEFAULT_POOLING,
    POOLINGS,
    check_pooling,
    embedding_size,
    parse_features,
    uses_block_features,
)

EFFICIENTAT_RELEASE = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/"
EFFICIENTAT_LICENSE = "MIT (EfficientAT release)"
# Every file of the EfficientAT release (MobileNets and DyMNs) takes audio at this rate: the
# default of the checkpoint rows, which the models read (ModelConfig.sample_rate).
SAMPLE_RATE = 32000


@dataclass(frozen=True)
class EfficientATCheckpoint(Checkpoint):
    """A released EfficientAT network with its frontend settings (mel bands, STFT hop);
    ``tags``: the name parts that pick it (e.g. "hop_5" and "hop5")."""

    sample_rate: int = SAMPLE_RATE
    n_mels: int = 128
    hop_length: int = 320
    tags: tuple[str, ...] = ()


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


def _take(tokens: list[str], part: tuple[str, ...]) -> bool:
    """Remove the first occurrence of the token run ``part`` from ``tokens``, if any."""
    for start in range(len(tokens) - len(part) + 1):
        if tuple(tokens[start : start + len(part)]) == part:
            del tokens[start : start + len(part)]
            return True
    return False


class EfficientATFamily(Family):
    """Configurations with feature taps, pooling and timestamp windows; the name grammar;
    options; descriptions. A subclass gives its widths (``arch`` -> width), its ``release``
    (checkpoint rows), which heads and features it has, its taps' shapes and its builder."""

    widths: dict[str, float] = {}
    release: tuple[EfficientATCheckpoint, ...] = ()
    weights_title = "EfficientAT"
    checkpoint_title = "EfficientAT"

    def new_config(self, name: str, checkpoint: Checkpoint) -> ModelConfig:
        return ModelConfig(name, checkpoint, pooling=DEFAULT_POOLING)

    def name_examples(self) -> str:
        return f"start with one of {', '.join(self.widths)}"

    def parse_name(self, name: str) -> tuple[ModelConfig, str | None, str | None] | None:
        arch, *rest = name.split("_")
        if arch not in self.widths:
            return None
        if rest[:1] == ["as"]:
            rest = rest[1:]
        checkpoint = self._tagged_checkpoint(name, arch, rest)
        rest, pooling, window = split_name_suffixes(rest)
        config = self.new_config(name, checkpoint)
        if window is not None:
            config = self.with_options(config, timestamp_window=window)
        return config, "_".join(rest) or None, pooling

    def _tagged_checkpoint(self, name: str, arch: str, rest: list[str]) -> Checkpoint:
        """The checkpoint of ``arch`` whose longest tag is in ``rest`` (removed from it),
        else ``<arch>_as``; a tag only other architectures have is refused."""
        tagged = sorted(
            ((tuple(tag.split("_")), c) for c in self.release if c.arch == arch for tag in c.tags),
            key=lambda pair: -len(pair[0]),
        )
        for tag, candidate in tagged:
            if _take(rest, tag):
                return candidate
        others = {tag for c in self.release for tag in c.tags if "_" not in tag}
        if rest[:1] and rest[0] in others:
            raise ValueError(f"no released checkpoint '{arch}_as_{rest[0]}' for {name!r}")
        default = next((c for c in self.release if c.name == f"{arch}_as"), None)
        if default is None:
            raise ValueError(f"no released checkpoint for {name!r}")
        return default

    def checkpoint_named(self, name: str) -> Checkpoint:
        """This family's checkpoint ``name``, or a ValueError listing the known ones."""
        found = next((c for c in self.release if c.name == name), None)
        if found is None:
            known = ", ".join(c.name for c in self.release)
            raise ValueError(f"unknown {self.checkpoint_title} checkpoint {name!r}; known: {known}")
        return found

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

    def option_value(self, option: str, value: object) -> object:
        return parse_features(value) if option == "features" else value

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
        if features is not None:
            config = replace(config, features=self.check_features(parse_features(features)))
        if pooling is not None:
            config = replace(config, pooling=check_pooling(pooling))
            if not uses_block_features(config.features):
                raise ValueError(
                    f"pooling={pooling!r} acts on block features (b0 ... b15), and features "
                    f"{'_'.join(config.features)!r} have none; add some, e.g. features='b5_b11'"
                )
        for option, value in (
            ("timestamp_window", timestamp_window),
            ("timestamp_hop", timestamp_hop),
        ):
            if value is not None:
                duration_to_samples(value, config.sample_rate, option)
                config = replace(config, **{option: value})
        if config.features:
            self.embedding_sizes(config)  # checks that every feature exists for this head
        return config

    def describe(self, config: ModelConfig) -> str:
        """Whose weights, which features (and pooling), windows, embedding size."""
        text = (
            f"{self.weights_title} {config.checkpoint.name} weights, "
            f"features {' + '.join(config.features)}"
        )
        if uses_block_features(config.features):
            text += f" ({config.pooling})"
        if config.timestamp_window is not None:
            text += f", {config.timestamp_window:g} ms timestamp windows"
        if config.timestamp_hop is not None:
            text += f" every {config.timestamp_hop:g} ms"
        return f"{text}, {self.embedding_sizes(config)[0]}-d embeddings"
