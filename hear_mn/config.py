"""What a model is, as data, and the registry that model families fill.

A family (:mod:`hear_mn.models`) registers itself with :func:`register_family`: its
released checkpoints (:class:`Checkpoint` rows: weights file, sample rate, the frontend and
head settings that come with the weights) and a :class:`Family` object that knows its names,
options, sizes and builder. A :class:`ModelConfig` is a checkpoint plus the embedding
settings; every question about it is answered by its family, so nothing here names one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hear_mn.catalog import NAMED
from hear_mn.hub.weights_spec import WeightsSpec
from hear_mn.run_options import RUN_OPTIONS, RunOptions

if TYPE_CHECKING:
    from hear_mn.export.graph import GraphSpec
    from hear_mn.model import EmbeddingModel


@dataclass(frozen=True)
class Checkpoint:
    """A released model: its family, architecture, sample rate and weights file.

    Families subclass it with the settings that come with their weights (a MobileNet's
    mel bands, STFT hop, head and strides).
    """

    name: str
    family: str
    arch: str
    weights: WeightsSpec
    sample_rate: int
    num_params: int = 0


@dataclass(frozen=True)
class ModelConfig:
    """A configuration: a checkpoint plus the embedding and its windows.

    ``features`` are the feature taps in concatenation order, ``pooling`` the pooling of
    block features, ``timestamp_window`` / ``timestamp_hop`` the timestamp windows in
    milliseconds (None: the family's defaults), under the names of the options that set
    them. A family with a fixed embedding leaves them empty. The sample rate is the
    checkpoint's.
    """

    name: str
    checkpoint: Checkpoint
    features: tuple[str, ...] = field(default=())
    pooling: str = ""
    timestamp_window: float | None = None
    timestamp_hop: float | None = None

    @property
    def family(self) -> Family:
        return family_of(self.checkpoint)

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
        return self.family.embedding_sizes(self)

    def describe(self) -> str:
        """One line: what the configuration computes, and its embedding size."""
        return self.family.describe(self)

    def with_options(self, **options: object) -> ModelConfig:
        """The configuration with options changed (see :data:`CONFIG_OPTIONS`); None keeps
        a setting. The only place an unknown option name is refused; the family checks
        the values."""
        unknown = sorted(set(options) - set(CONFIG_OPTIONS))
        if unknown:
            raise TypeError(
                f"unknown option(s) {', '.join(unknown)}; configuration options: "
                f"{', '.join(CONFIG_OPTIONS)}; run options: {', '.join(RUN_OPTIONS)}"
            )
        return self.family.with_options(self, **options)

    def build(self, run: RunOptions | None = None) -> EmbeddingModel:
        """The model with random weights, run as ``run`` says (default :class:`RunOptions`)."""
        return self.family.build(self, RunOptions() if run is None else run)


# The options of a configuration (ModelConfig.with_options), each the name of the
# ModelConfig field it sets where it has one; how the model runs is RunOptions. ``checkpoint``
# swaps the weights (the frontend, head and strides come with them), ``head`` only checks the
# checkpoint's, and the windows are in milliseconds.
CONFIG_OPTIONS: tuple[str, ...] = (
    "features",
    "pooling",
    "timestamp_window",
    "timestamp_hop",
    "checkpoint",
    "head",
)


class Family(ABC):
    """A model family: how its names read, which options it takes, its sizes, its builder
    and (optionally) its ONNX export."""

    name: str

    @abstractmethod
    def new_config(self, name: str, checkpoint: Checkpoint) -> ModelConfig:
        """A configuration ``name`` of ``checkpoint`` with this family's defaults."""

    @abstractmethod
    def parse_name(self, name: str) -> tuple[ModelConfig, str | None, str | None] | None:
        """A configuration name outside the catalog -> (configuration without features,
        the features it names, the pooling it names), None where the name is not this
        family's."""

    @abstractmethod
    def name_examples(self) -> str:
        """How this family's names look, for an error message about an unknown name."""

    @abstractmethod
    def with_options(self, config: ModelConfig, **options: object) -> ModelConfig:
        """``config`` with the options of :data:`CONFIG_OPTIONS` changed (None keeps one)."""

    @abstractmethod
    def embedding_sizes(self, config: ModelConfig) -> tuple[int, int]:
        """(scene, timestamp) embedding sizes, from the architecture definition."""

    @abstractmethod
    def describe(self, config: ModelConfig) -> str:
        """One line about ``config``."""

    @abstractmethod
    def build(self, config: ModelConfig, run: RunOptions) -> EmbeddingModel:
        """The model of ``config`` with random weights, run as ``run`` says (its device and
        backend are applied by :func:`hear_mn.registry.create_model`); its class names this
        family in :attr:`~hear_mn.model.EmbeddingModel.family`."""

    def option_value(self, option: str, value: object) -> object:
        """``value`` of configuration option ``option`` in the form a configuration holds
        (e.g. a feature list in concatenation order), to tell whether two spellings agree;
        default: as given."""
        return value

    def export_graph(self, model: EmbeddingModel, frontend: bool) -> GraphSpec:
        """The ONNX export of ``model`` (one of this family's), with or without its
        frontend (:mod:`hear_mn.export`); a family without an export keeps this refusal."""
        raise TypeError(
            f"{type(model).__name__} ({model.name}) cannot be exported to ONNX: the "
            f"{self.name} family has no export"
        )


FAMILIES: dict[str, Family] = {}
CHECKPOINTS: dict[str, Checkpoint] = {}


def register_family(family: Family, checkpoints: Iterable[Checkpoint]) -> None:
    """Make ``family`` and its checkpoints known (each name once)."""
    if family.name in FAMILIES:
        raise ValueError(f"model family {family.name!r} is registered twice")
    rows = list(checkpoints)
    for checkpoint in rows:
        if checkpoint.family != family.name:
            raise ValueError(f"checkpoint {checkpoint.name!r} is not of family {family.name!r}")
        if checkpoint.name in CHECKPOINTS:
            raise ValueError(f"checkpoint {checkpoint.name!r} is registered twice")
    FAMILIES[family.name] = family
    CHECKPOINTS.update((checkpoint.name, checkpoint) for checkpoint in rows)


def family_of(checkpoint: Checkpoint) -> Family:
    """The registered family of ``checkpoint``."""
    family = FAMILIES.get(checkpoint.family)
    if family is None:
        raise ValueError(
            f"checkpoint {checkpoint.name!r} is of unknown family {checkpoint.family!r}"
        )
    return family
