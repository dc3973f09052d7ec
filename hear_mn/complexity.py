"""Parameters and multiply-accumulates (MACs) of a configuration, counted from the model.

:func:`model_complexity` counts by running the model; :func:`known_complexity` reads the
table of every named configuration that ``scripts/update_complexity_table.py`` derives
with it once (``hear-mn list`` shows that table; a test checks it against the counter).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from hear_mn.complexity_table import COMPLEXITY_10S
from hear_mn.registry import ModelConfig, get_config

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["known_complexity", "model_complexity"]


def model_complexity(config: ModelConfig, seconds: float = 10.0) -> tuple[int, int]:
    """(parameters, multiply-accumulates) of ``config`` for one clip of ``seconds``.

    The model makes one plain (not folded) scene pass over a silent clip, and every
    convolution and linear layer that runs adds ``output elements x inputs per output``:
    the model's own code path, so a feature set that needs only the first blocks counts
    only those. The model is built and run on PyTorch's ``meta`` device (shapes, no
    arithmetic, no weights), which counts mn40 in a fraction of a second; a family whose
    frontend cannot run there is counted on the CPU. Bias, normalisation, activations and
    the frontend's FFT are not counted, as usual. A family's own layers that compute like a
    convolution (DyMN's dynamic convolutions) say how many MACs each output element costs
    in an int attribute ``macs_per_output``; forming their per-sample kernels is not counted.
    """
    import torch  # counting runs the model; reading the table (known_complexity) needs none
    from torch import nn

    for device in ("meta", "cpu"):
        with torch.device(device):
            model = config.build()
        model.eval()
        total = 0

        def count(layer: nn.Module, _: object, output: torch.Tensor) -> None:
            nonlocal total
            if isinstance(layer, nn.Linear):
                per_output = layer.in_features
            elif isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                per_output = (layer.in_channels // layer.groups) * math.prod(layer.kernel_size)
            else:
                per_output = layer.macs_per_output
            total += output.numel() * per_output

        for layer in model.modules():
            if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)) or isinstance(
                getattr(layer, "macs_per_output", None), int
            ):
                layer.register_forward_hook(count)
        audio = torch.zeros(1, max(1, round(seconds * model.sample_rate)), device=device)
        try:
            # With autograd on, a model runs its modules as built (whose layers count),
            # not a copy rewritten for inference.
            with torch.enable_grad():
                model(audio)
        except (NotImplementedError, RuntimeError):
            if device == "cpu":
                raise
            continue
        return sum(p.numel() for p in model.parameters()), total
    raise AssertionError("unreachable")


def known_complexity(config: ModelConfig) -> tuple[int, int]:
    """(parameters, MACs per 10 s) of a named configuration from the table, else counted."""
    known = COMPLEXITY_10S.get(config.name)
    if known is not None and config == get_config(config.name):
        return known
    return model_complexity(config, 10.0)
