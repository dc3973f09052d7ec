"""The one place that knows every model: released checkpoints and named configurations.

A configuration name is ``<arch>[_as][_ext][_mels_256]_<features>`` for the MobileNets
(``mn40_ext_e1_l`` = the mn40_as_ext checkpoint with features e1 and l), or ``kwmlp`` /
``audiomae`` for Audio-MLP. HEAR modules, the model table and the CLI all derive from here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from hear_mn.hear import EmbeddingModel
from hear_mn.taps import embedding_size, parse_features
from hear_mn.weights import WeightsSpec, fetch_weights

EFFICIENTAT_RELEASE = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/"
AUDIOMLP_CHECKPOINTS = (
    "https://raw.githubusercontent.com/mashrurmorshed/HEAR-2021-Audio-MLP/"
    "292c77c92468beff9292e9892742e9b1fcecfcab/checkpoints/"
)
EFFICIENTAT_LICENSE = "MIT (EfficientAT release)"
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


def _efficientat(
    arch: str, map_percent: int, num_params: int, variant: str = "", n_mels: int = 128
) -> Checkpoint:
    name = f"{arch}_as{variant}"
    file_name = f"{name}_mAP_{map_percent}.pt"
    weights = WeightsSpec(
        file_name=file_name,
        url=EFFICIENTAT_RELEASE + file_name,
        license=EFFICIENTAT_LICENSE,
        meta={"audioset_map": map_percent / 1000},
    )
    return Checkpoint(name, "mobilenet", arch, weights, 32000, n_mels, num_params)


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
        _efficientat("mn40", 487, 68_427_303, variant="_ext"),
        _efficientat("mn10", 474, 4_876_831, variant="_mels_256", n_mels=256),
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
    """A named configuration: a checkpoint plus, for MobileNets, the embedding feature taps."""

    name: str
    checkpoint: Checkpoint
    features: tuple[str, ...] = field(default=())

    @property
    def sample_rate(self) -> int:
        return self.checkpoint.sample_rate

    @property
    def weights(self) -> WeightsSpec:
        return self.checkpoint.weights

    @property
    def embedding_sizes(self) -> tuple[int, int]:
        """(scene_embedding_size, timestamp_embedding_size)."""
        if self.checkpoint.family == "mobilenet":
            size = embedding_size(
                self.features, WIDTHS[self.checkpoint.arch], self.checkpoint.n_mels
            )
            return size, size
        from hear_mn.audiomlp import ARCHS

        arch = ARCHS[self.checkpoint.arch]
        return arch.scene_dim, arch.timestamp_dim

    def with_features(self, features: str | tuple[str, ...] | list[str] | None) -> ModelConfig:
        """The same checkpoint with another feature set (MobileNets only)."""
        if features is None:
            return self
        if self.checkpoint.family != "mobilenet":
            raise ValueError(f"{self.name} has no selectable features; drop the features option")
        return replace(self, features=parse_features(features))

    def build(self, **options: object) -> EmbeddingModel:
        """The model with random weights; ``options`` go to the family's model class."""
        if self.checkpoint.family == "mobilenet":
            from hear_mn.efficientat import MobileNetEmbedder

            return MobileNetEmbedder(
                name=self.name,
                width=WIDTHS[self.checkpoint.arch],
                n_mels=self.checkpoint.n_mels,
                features=self.features,
                **options,
            )
        from hear_mn.audiomlp import ARCHS, AudioMLPModel

        return AudioMLPModel(ARCHS[self.checkpoint.arch], name=self.name, **options)


# The configurations of the paper "Low-complexity Audio Embedding Extractors".
PAPER_CONFIGS: tuple[str, ...] = (
    "mn04_e1_l",
    "mn10_e1_l",
    "mn10_mels_256_e1_l",
    "mn40_e1_l",
    "mn40_ext_e1",
    "mn40_ext_e1_l",
    "mn40_ext_clf_l",
    "mn40_ext_e1_l_se",
    "mn40_ext_e1_l_all_se",
    "mn40_ext_e1_l_block",
    "mn40_ext_e1_l_se_block",
    "mn40_ext_e1_l_mels",
    "mn40_ext_e1_all_se_mels",
    "mn40_ext_clf_all_se_mels",
)
AUDIOMLP_CONFIGS: tuple[str, ...] = ("kwmlp", "audiomae")
DEFAULT_CONFIG = "mn40_ext_e1_l"
BEST_CONFIG = "mn40_ext_e1_l_all_se"
# Every name that has its own HEAR module, hear_mn.<name>.
NAMED_CONFIGS: tuple[str, ...] = PAPER_CONFIGS + ("mn40_as_ext_e1_l_all_se",) + AUDIOMLP_CONFIGS


def get_config(
    name: str, *, features: str | tuple[str, ...] | list[str] | None = None
) -> ModelConfig:
    """Parse a configuration name; ``features`` overrides the feature set it names."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"model name must be a non-empty string, got {name!r}")
    if name in CHECKPOINTS and CHECKPOINTS[name].family == "audiomlp":
        return ModelConfig(name, CHECKPOINTS[name]).with_features(features)
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
    variant = ""
    if rest[:1] == ["ext"]:
        variant, rest = "_ext", rest[1:]
    if rest[:2] == ["mels", "256"]:
        variant, rest = variant + "_mels_256", rest[2:]
    elif rest[:1] == ["mels256"]:
        variant, rest = variant + "_mels_256", rest[1:]
    checkpoint_name = f"{arch}_as{variant}"
    if checkpoint_name not in CHECKPOINTS:
        known = ", ".join(k for k, c in CHECKPOINTS.items() if c.family == "mobilenet")
        raise ValueError(f"no released checkpoint {checkpoint_name!r} for {name!r}; known: {known}")
    if features is None:
        if not rest:
            raise ValueError(f"model name {name!r} names no embedding features; e.g. {name}_e1_l")
        features = "_".join(rest)
    return ModelConfig(name, CHECKPOINTS[checkpoint_name], parse_features(features))


def named_configs() -> list[ModelConfig]:
    """Every configuration that has a HEAR module, in table order."""
    return [get_config(name) for name in NAMED_CONFIGS]


def create_model(
    name: str,
    *,
    pretrained: bool = True,
    weights: str | os.PathLike[str] | None = None,
    features: str | tuple[str, ...] | list[str] | None = None,
    device: str | None = None,
    download: bool = True,
    progress: bool | None = None,
    **options: object,
) -> EmbeddingModel:
    """Build a configuration in eval mode.

    ``weights`` is a checkpoint file to load; without it the released weights are used
    (from ``$HEAR_MN_WEIGHTS_DIR``, the cache, or downloaded), or random ones with
    ``pretrained=False`` (for benchmarks and tests). Other ``options`` (``autocast``,
    ``window_batch_size``) go to the model class.
    """
    config = get_config(name, features=features)
    model = config.build(**options)
    if weights is not None and str(weights) != "":
        state_dict = fetch_weights(config.weights, Path(weights))
        model.load_checkpoint(state_dict, source=str(weights))
    elif pretrained:
        state_dict = fetch_weights(config.weights, download=download, progress=progress)
        model.load_checkpoint(state_dict, source=config.weights.file_name)
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
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use device='cpu'")
    return resolved
