"""What a family's ONNX export provides (:class:`GraphSpec`), the fixed signals exports are
checked on, and traceable helpers any family's graph may use.

Nothing here knows a model: a family builds its :class:`GraphSpec` in its own folder
(``hear_mn/models/<family>/``) and hands it over through
:meth:`hear_mn.config.Family.export_graph`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

OUTPUT_NAME = "embeddings"
# Lengths (samples) of the fixed random signals an export is checked on: one sample, one
# shorter than the STFT's mirror padding, and a longer one.
VERIFY_LENGTHS = (1, 300, 20_000)
VERIFY_SEED = 20240613


@dataclass(frozen=True)
class GraphSpec:
    """A model's export: ``build()`` makes the module that maps the input ``input_name`` to
    the output, with the dynamic axes ``input_axes`` and ``output_axes`` (index: name);
    ``examples`` are inputs on which ``reference`` (the torch model itself) gives what the
    graph must give; ``metadata`` describes the file; ``tolerance``, where set, replaces the
    library's default verification tolerance for this family's files; ``output_name``: the
    graph's output (``embeddings``, or ``probabilities`` for a classifier)."""

    build: Callable[[], nn.Module]
    input_name: str
    input_axes: dict[int, str]
    output_axes: dict[int, str]
    examples: tuple[torch.Tensor, ...]
    reference: Callable[[torch.Tensor], torch.Tensor]
    metadata: dict[str, str]
    tolerance: float | None = None
    output_name: str = OUTPUT_NAME


def verify_audio(sample_rate: int) -> list[torch.Tensor]:
    """Fixed pseudo-random test signals (2, n) for each of :data:`VERIFY_LENGTHS`: noise
    plus a tone, within [-1, 1]."""
    generator = torch.Generator().manual_seed(VERIFY_SEED)
    signals = []
    for n in VERIFY_LENGTHS:
        t = torch.arange(n, dtype=torch.float32) / sample_rate
        tone = 0.5 * torch.sin(2 * torch.pi * 440.0 * t)
        signals.append(tone + 0.2 * torch.randn(2, n, generator=generator))
    return signals


def signal_length(x: torch.Tensor) -> torch.Tensor:
    """``x.shape[-1]`` as a 0-d int64 tensor, so that a trace keeps it dynamic."""
    length = x.shape[-1]
    if isinstance(length, torch.Tensor):  # while tracing, sizes are tensors
        return length
    return torch.tensor(length, dtype=torch.int64)
