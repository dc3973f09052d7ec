"""Embedding features of the MobileNets: two vocabularies, their order, sizes and taps.

A feature set is a tuple of feature names in one of two vocabularies:

* the paper's (*Low-complexity Audio Embedding Extractors*, first version): ``l``, ``e1``,
  ``mels``, ``clf``, ``block``, ``se``, ``all_se``;
* the newer one of the EfficientAT_HEAR wrapper: ``mel_avgs``, ``clf1``, ``clf2``,
  ``logits``, ``seK`` (squeeze-excitation bottleneck of feature component K) and ``bK``
  (the output map of feature component K, K = 0 ... 15, pooled by a pooling function).

The embedding concatenates the features in its vocabulary's fixed order (:data:`PAPER_ORDER`,
:data:`NEWER_ORDER`), whatever order they were written in. Sizes come from the backbone's
:func:`~hear_mn.models.efficientat.block_table.feature_info`, i.e. from its block table.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from hear_mn.models.efficientat.block_table import (
    BLOCKS,
    LAST_COMPONENT,
    BackbonePlan,
    FeatureInfo,
    Pooling,
    global_average,
)

if TYPE_CHECKING:
    import torch


PAPER_ORDER: tuple[str, ...] = ("l", "e1", "mels", "clf", "block", "se", "all_se")
SE_COMPONENTS: tuple[int, ...] = tuple(
    index for index, spec in enumerate(BLOCKS, start=1) if spec.squeeze_excite
)
NUM_BLOCK_FEATURES = 16  # b0 ... b15: the stem and the 15 inverted residual blocks
NEWER_ORDER: tuple[str, ...] = (
    ("mel_avgs", "clf1", "clf2", "logits")
    + tuple(f"se{index}" for index in SE_COMPONENTS)
    + tuple(f"b{index}" for index in range(NUM_BLOCK_FEATURES))
)
# The newer wrapper collects these components unless told to collect all: `all_b`.
DEFAULT_BLOCKS: tuple[int, ...] = (5, 11, 13, 15)
# Components pooled by the paper's `block`, and SE components of its `se`.
PAPER_BLOCK_COMPONENTS: tuple[int, ...] = (0, 5, 10, 16)
PAPER_SE_COMPONENTS: tuple[int, ...] = (12, 13, 14, 15)
# The same tap under its paper name and its newer name.
SYNONYMS = {"l": "logits", "e1": "clf1", "mels": "mel_avgs", "clf": "clf2"}


def _channel_mean_max(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x.mean((2, 3)), x.amax((2, 3))


def _channel_mean_plus_max(x: torch.Tensor) -> torch.Tensor:
    mean, peak = _channel_mean_max(x)
    return mean + peak


def _channel_mean_and_max(x: torch.Tensor) -> torch.Tensor:
    import torch  # this module is torch-free at import; only this pooling needs torch itself

    return torch.cat(_channel_mean_max(x), 1)


def _time_mean(x: torch.Tensor) -> torch.Tensor:
    return x.mean(3).reshape(x.shape[0], -1)


def _time_mean_plus_max(x: torch.Tensor) -> torch.Tensor:
    return _time_mean(x) + x.amax(3).reshape(x.shape[0], -1)


class PoolingFunction(NamedTuple):
    """One of the original's pooling functions of a block map (batch, C, F, T)."""

    pool: Pooling
    size: Callable[[int, int], int]  # output size from (C, F)


# Time pooling flattens channel-major: C blocks of F values.
POOLINGS: dict[str, PoolingFunction] = {
    "avg_ch_pool": PoolingFunction(global_average, lambda c, f: c),
    "max_ch_pool": PoolingFunction(lambda x: x.amax((2, 3)), lambda c, f: c),
    "add_avg_max_ch_pool": PoolingFunction(_channel_mean_plus_max, lambda c, f: c),
    "cat_avg_max_ch_pool": PoolingFunction(_channel_mean_and_max, lambda c, f: 2 * c),
    "avg_time_pool": PoolingFunction(_time_mean, lambda c, f: c * f),
    "avg_max_time_pool": PoolingFunction(_time_mean_plus_max, lambda c, f: c * f),
}
DEFAULT_POOLING = "avg_ch_pool"

_EXAMPLES = "e.g. 'e1_l_all_se' or ['b5', 'b11', 'mel_avgs']"


def check_pooling(name: object) -> str:
    """A pooling function's name, checked."""
    if not isinstance(name, str) or name not in POOLINGS:
        raise ValueError(f"unknown pooling function {name!r}; choose one of {', '.join(POOLINGS)}")
    return name


@dataclass(frozen=True)
class Tap:
    """Where one feature comes from in a forward pass (each feature uses one kind of source).

    ``components``: feature components whose output maps are pooled, by the configured
    pooling function when ``by_pooling`` (block features bK) and by the global average
    otherwise; ``squeeze_excite``: components whose SE bottleneck is taken; ``head``:
    "hidden" or "logits" of the classifier; ``mels``: the mean log-mel.
    """

    components: tuple[int, ...] = ()
    by_pooling: bool = False
    squeeze_excite: tuple[int, ...] = ()
    head: str = ""
    mels: bool = False


_LAST = (LAST_COMPONENT,)
TAPS: dict[str, Tap] = {
    "l": Tap(head="logits"),
    "e1": Tap(components=_LAST),
    "mels": Tap(mels=True),
    "clf": Tap(head="hidden"),
    "block": Tap(components=PAPER_BLOCK_COMPONENTS),
    "se": Tap(squeeze_excite=PAPER_SE_COMPONENTS),
    "all_se": Tap(squeeze_excite=SE_COMPONENTS),
    "mel_avgs": Tap(mels=True),
    "clf1": Tap(components=_LAST),
    "clf2": Tap(head="hidden"),
    "logits": Tap(head="logits"),
    **{f"se{index}": Tap(squeeze_excite=(index,)) for index in SE_COMPONENTS},
    **{f"b{index}": Tap((index,), by_pooling=True) for index in range(NUM_BLOCK_FEATURES)},
}


def _tokens(spec: str | tuple[str, ...] | list[str]) -> list[str]:
    """Split names on '_', ',' and spaces; rejoin all_se, mel_avgs, all_b, b4_5_6."""
    if isinstance(spec, str):
        spec_items = [spec]
    elif isinstance(spec, (tuple, list)) and all(isinstance(item, str) for item in spec):
        spec_items = list(spec)
    else:
        raise TypeError(
            f"features must be a string or a list of feature names ({_EXAMPLES}), got {spec!r}"
        )
    raw = [part for item in spec_items for part in re.split(r"[_,\s]+", item.strip())]
    names: list[str] = []
    position = 0
    while position < len(raw):
        token = raw[position]
        pair = "_".join(raw[position : position + 2])
        if pair in ("all_se", "mel_avgs", "all_b"):
            token, position = pair, position + 1
        elif token.isdigit() and names and _block_index(names[-1]) is not None:
            token = f"b{token}"  # b4_5_6_7: the block lists of the original's module names
        position += 1
        if token == "all_b":
            names.extend(f"b{index}" for index in DEFAULT_BLOCKS)
        else:
            names.append(token)
    return names


def parse_features(spec: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Feature names (a '_'-joined string or a list) -> names in concatenation order.

    'e1_l_all_se' -> ('l', 'e1', 'all_se'); ['b5', 'mel_avgs'] -> ('mel_avgs', 'b5');
    'all_b' is b5, b11, b13, b15 and 'b4_5_6_7' is b4 ... b7, as in the original's module
    names. The two vocabularies cannot be mixed (their orders differ).
    """
    names = _tokens(spec)
    if not names or names == [""]:
        raise ValueError(f"no embedding features given; {_EXAMPLES}")
    for name in names:
        if name not in TAPS:
            raise ValueError(_unknown(name, spec))
        if names.count(name) > 1:
            raise ValueError(f"embedding feature {name!r} appears twice in {spec!r}")
    paper = [name for name in names if name in PAPER_ORDER]
    newer = [name for name in names if name in NEWER_ORDER]
    if paper and newer:
        same = ", ".join(f"{a} = {b}" for a, b in SYNONYMS.items() if a in paper)
        raise ValueError(
            f"features {spec!r} mix the paper's names ({', '.join(paper)}) with the newer "
            f"ones ({', '.join(newer)}); use one vocabulary"
            + (f" (in the newer one: {same})" if same else "")
        )
    if "se" in names and "all_se" in names:
        raise ValueError("'se' is part of 'all_se'; use one of them")
    order = PAPER_ORDER if paper else NEWER_ORDER
    return tuple(name for name in order if name in names)


def _unknown(name: str, spec: object) -> str:
    if name.startswith("se") and name[2:].isdigit():
        return (
            f"feature {name!r} in {spec!r}: component {name[2:]} has no squeeze-excitation; "
            f"SE components are {', '.join(map(str, SE_COMPONENTS))}"
        )
    if _block_index(name) is not None:
        return f"feature {name!r} in {spec!r}: block features are b0 ... b{NUM_BLOCK_FEATURES - 1}"
    return (
        f"unknown embedding feature {name!r} in {spec!r}; the paper's features are "
        f"{', '.join(PAPER_ORDER)}; the newer ones mel_avgs, clf1, clf2, logits, seK, bK "
        f"({_EXAMPLES})"
    )


def _block_index(name: str) -> int | None:
    return int(name[1:]) if name[:1] == "b" and name[1:].isdigit() else None


def uses_block_features(features: tuple[str, ...]) -> bool:
    """Whether ``features`` has pooled block outputs (bK), the only taps a pooling acts on."""
    return any(TAPS[name].by_pooling for name in features)


def feature_sizes(features: tuple[str, ...], info: FeatureInfo, pooling: str) -> list[int]:
    """Size of each feature of ``features`` for a backbone described by ``info``."""
    pooled_size = POOLINGS[check_pooling(pooling)].size
    sizes = []
    for name in features:
        tap = TAPS[name]
        if tap.head == "hidden" and info.hidden is None:
            raise ValueError(
                f"feature {name!r}: the fully convolutional head has no hidden classifier "
                "layer; use clf1 (e1) or logits (l)"
            )
        size = sum(
            pooled_size(info.channels[k], info.freq_bins[k]) if tap.by_pooling else info.channels[k]
            for k in tap.components
        )
        size += sum(info.squeezed[k] for k in tap.squeeze_excite)
        size += {"hidden": info.hidden or 0, "logits": info.num_classes}.get(tap.head, 0)
        sizes.append(size + (info.n_mels if tap.mels else 0))
    return sizes


def embedding_size(features: tuple[str, ...], info: FeatureInfo, pooling: str) -> int:
    """Total embedding size of a feature set."""
    return sum(feature_sizes(features, info, pooling))


def backbone_plan(features: tuple[str, ...], pooling: str) -> BackbonePlan:
    """The least forward pass that yields ``features``: which maps to pool, where to stop.

    A feature set of mean log-mels alone runs no backbone at all; ``b4`` stops after
    component 4.
    """
    pool = POOLINGS[check_pooling(pooling)].pool
    pooled: dict[int, Pooling] = {}
    needed = [-1]
    for name in features:
        tap = TAPS[name]
        pooled.update(dict.fromkeys(tap.components, pool if tap.by_pooling else global_average))
        needed.extend(tap.squeeze_excite)
        needed.extend(_LAST if tap.head else ())
    classifier = any(TAPS[name].head for name in features)
    return BackbonePlan(pooled, classifier, max([*needed, *pooled]))
