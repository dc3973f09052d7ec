"""Embedding feature taps of the paper "Low-complexity Audio Embedding Extractors".

A feature set is a tuple of tap names; the embedding is their concatenation in the fixed
order of :data:`FEATURE_ORDER`, whatever order the user wrote them in.
"""

from __future__ import annotations

import torch

from hear_mn.mobilenet import (
    BLOCK_TAPS,
    BLOCKS,
    HIDDEN_CHANNELS,
    LAST_CONV_FACTOR,
    NUM_CLASSES,
    SE_TAPS,
    STEM_CHANNELS,
    BackboneOutputs,
    make_divisible,
)

FEATURE_ORDER: tuple[str, ...] = ("l", "e1", "mels", "clf", "block", "se", "all_se")
FEATURE_HELP = {
    "e1": "global average of the last conv layer",
    "l": "the 527 AudioSet logits",
    "clf": "classifier hidden layer, after its Hardswish",
    "se": "squeeze-excitation bottlenecks of the last four SE blocks",
    "all_se": "squeeze-excitation bottlenecks of all eight SE blocks",
    "block": "global averages of features 0, 5, 10 and 16",
    "mels": "mean log-mel over time",
}
ALL_SE_TAPS: tuple[int, ...] = tuple(
    index for index, spec in enumerate(BLOCKS, start=1) if spec.squeeze_excite
)


def parse_features(text: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """'e1_l_all_se' (or a list of names) -> taps in concatenation order, e.g. ('l', 'e1', 'all_se')."""
    tokens = (
        text.split("_") if isinstance(text, str) else [t for name in text for t in name.split("_")]
    )
    names: list[str] = []
    position = 0
    while position < len(tokens):
        token = tokens[position]
        if token == "all" and position + 1 < len(tokens) and tokens[position + 1] == "se":
            token, position = "all_se", position + 1
        if token not in FEATURE_ORDER:
            raise ValueError(
                f"unknown embedding feature {token!r} in {text!r}; "
                f"choose from {', '.join(FEATURE_ORDER)} joined with '_', e.g. 'e1_l_all_se'"
            )
        if token in names:
            raise ValueError(f"embedding feature {token!r} appears twice in {text!r}")
        names.append(token)
        position += 1
    if not names:
        raise ValueError("no embedding features given; e.g. features='e1_l'")
    if "se" in names and "all_se" in names:
        raise ValueError("'se' is part of 'all_se'; use one of them")
    return tuple(name for name in FEATURE_ORDER if name in names)


def feature_sizes(width: float, n_mels: int) -> dict[str, int]:
    """Size of every tap at a width, derived from the block table."""
    specs = [spec.scaled(width) for spec in BLOCKS]
    channels_after = [make_divisible(STEM_CHANNELS * width)] + [s.out_channels for s in specs]
    last_conv = LAST_CONV_FACTOR * specs[-1].out_channels
    channels_after.append(last_conv)

    def squeezed(block_index: int) -> int:
        return make_divisible(specs[block_index - 1].expanded // 4)

    return {
        "l": NUM_CLASSES,
        "e1": last_conv,
        "mels": n_mels,
        "clf": make_divisible(HIDDEN_CHANNELS * width),
        "block": sum(channels_after[index] for index in BLOCK_TAPS),
        "se": sum(squeezed(index) for index in SE_TAPS),
        "all_se": sum(squeezed(index) for index in ALL_SE_TAPS),
    }


def embedding_size(features: tuple[str, ...], width: float, n_mels: int) -> int:
    """Total embedding size of a feature set."""
    sizes = feature_sizes(width, n_mels)
    return sum(sizes[name] for name in features)


def concatenate_taps(
    features: tuple[str, ...], outputs: BackboneOutputs, mels: torch.Tensor
) -> torch.Tensor:
    """Concatenate the requested taps of one forward pass; ``mels`` is (batch, n_mels, frames)."""
    parts: list[torch.Tensor] = []
    for name in features:
        if name == "l":
            parts.append(outputs.logits)
        elif name == "e1":
            parts.append(outputs.pooled)
        elif name == "mels":
            parts.append(mels.mean(-1))
        elif name == "clf":
            parts.append(outputs.hidden)
        elif name == "block":
            parts.extend(outputs.block_means)
        else:
            taps = SE_TAPS if name == "se" else ALL_SE_TAPS
            parts.extend(outputs.se_bottlenecks[index] for index in taps)
    return torch.cat(parts, dim=1)
