"""Every model by name: named configurations, parsed names, and building them.

A named configuration (:mod:`hear_mn.catalog`) has a HEAR module ``hear_mn.<name>``; other
names are read by the family whose grammar they follow (e.g. ``mn10_hop5_b5_b11_mel_avgs``,
see :mod:`hear_mn.models.efficientat.mobilenet_family`). Nothing here is specific to a family: they
register their checkpoints and builders (:mod:`hear_mn.config`) when :mod:`hear_mn.models`
is imported, which this module does.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import hear_mn.models  # noqa: F401 (registers every family)
from hear_mn.catalog import AUDIOMLP_CONFIGS, BEST_CONFIG, DEFAULT_CONFIG, NAMED, PAPER
from hear_mn.config import CHECKPOINTS, CONFIG_OPTIONS, FAMILIES, Checkpoint, ModelConfig
from hear_mn.run_options import RUN_OPTIONS, RunOptions
from hear_mn.threads import keep_threads

if TYPE_CHECKING:
    from hear_mn.model import EmbeddingModel

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
    "RUN_OPTIONS",
    "Checkpoint",
    "ModelConfig",
    "RunOptions",
    "create_model",
    "get_config",
    "named_configs",
]


def _named_config(name: str) -> ModelConfig:
    row = NAMED[name]
    checkpoint = CHECKPOINTS[row.checkpoint]
    config = FAMILIES[checkpoint.family].new_config(name, checkpoint)
    return config.with_options(
        features=row.features or None,
        pooling=row.pooling,
        timestamp_window=row.timestamp_window,
    )


def _parsed_config(name: str) -> tuple[ModelConfig, str | None, str | None]:
    for family in FAMILIES.values():
        parsed = family.parse_name(name)
        if parsed is not None:
            return parsed
    hints = " or ".join(family.name_examples() for family in FAMILIES.values())
    raise ValueError(f"unknown model {name!r}: names {hints} (e.g. {DEFAULT_CONFIG})")


def get_config(name: str, **options: object) -> ModelConfig:
    """The configuration ``name`` (a named one, or parsed), with options changed.

    ``features`` replaces the feature set the name implies; see :data:`CONFIG_OPTIONS`
    for all options (:meth:`ModelConfig.with_options` refuses others).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"model name must be a non-empty string, got {name!r}")
    if name in NAMED:
        return _named_config(name).with_options(**options)
    config, named_features, named_pooling = _parsed_config(name)
    if options.get("features") is None:
        if named_features is None and config.embedding_sizes[0] == 0:
            raise ValueError(f"model name {name!r} names no embedding features; e.g. {name}_e1_l")
        options["features"] = named_features
    if options.get("pooling") is None:
        options["pooling"] = named_pooling
    return config.with_options(**options)


def named_configs(group: str | None = None) -> list[ModelConfig]:
    """Every configuration that has a HEAR module (of one catalog group), in table order."""
    return [get_config(name) for name, row in NAMED.items() if group in (None, row.group)]


def create_model(
    name: str,
    *,
    pretrained: bool = True,
    weights: str | os.PathLike[str] | None = None,
    download: bool = True,
    progress: bool | None = None,
    run: RunOptions | None = None,
    **options: object,
) -> EmbeddingModel:
    """Build a configuration in eval mode.

    ``weights`` is a checkpoint file to load; without it the released weights are used
    (from ``$HEAR_MN_WEIGHTS_DIR``, the cache, or downloaded), or random ones with
    ``pretrained=False`` (for benchmarks and tests). ``options`` are configuration options
    (:data:`CONFIG_OPTIONS`: ``features``, ``pooling``, ``timestamp_window`` and
    ``timestamp_hop`` in ms, ``checkpoint``, e.g. "mn10_as_hop_5", and ``head``) and run
    options (:data:`RUN_OPTIONS`: ``device``, ``autocast``, ``backend``, ``threads``,
    ``window_batch_size``; see :class:`RunOptions`), which change ``run`` where given.
    """
    from hear_mn.hub.weights import fetch_weights
    from hear_mn.model import torch_device  # torch: only to build a model

    given = {key: options.pop(key) for key in RUN_OPTIONS if key in options}
    run = replace(run or RunOptions(), **given)  # checked before any work
    for flag, value in (("pretrained", pretrained), ("download", download)):
        if not isinstance(value, bool):
            raise TypeError(f"{flag} must be True or False, got {value!r}")
    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise TypeError(
            f"weights must be a checkpoint file name (str or os.PathLike), got {weights!r}"
        )
    config = get_config(name, **options)
    if run.threads is not None:
        import torch

        torch.set_num_threads(run.threads)  # process-wide, as torch has it
        keep_threads()
    model = config.build(run)
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
        model.weights_file = path.name if path is not None else config.weights.file_name
    model.eval()
    if run.device is not None:
        model.to(torch_device(run.device))
    from hear_mn.engines.ort import set_backend  # checks that the model runs with it

    return set_backend(model, run.backend)
