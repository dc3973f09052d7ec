"""How a model runs, as one typed, validated object: device, precision, engine, threads and
how much goes through the network at once.

:class:`RunOptions` is what ``create_model``, a HEAR module's ``load_model``, the command line
and the engines pass to a family's builder (``Family.build(config, run)``). Each option has
one name and is checked once, here, when the object is made. What a model computes is the
configuration (:class:`hear_mn.config.ModelConfig`); these options change how fast and where,
never the numbers (``autocast`` aside, which is fp16 on CUDA only). Torch-free: a device is
checked with torch only when one is given.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

# The engines that can run a model's network (hear_mn.engines): a model class lists those
# it supports in EmbeddingModel.backends.
BACKENDS: tuple[str, ...] = ("auto", "torch", "onnxruntime")


def check_backend(backend: object) -> str:
    """``backend`` when it is one of :data:`BACKENDS`, else a clear ValueError."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend


def _optional_count(value: object, what: str) -> None:
    """Refuse a ``value`` that is neither None nor an int of at least 1 (bools refused)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class RunOptions:
    """How a model runs (not what it computes).

    ``device``: "cpu", "cuda", "cuda:N", ... (None: the CPU, where a model is built).
    ``autocast``: fp16 autocast on CUDA, as the EfficientAT reference ran; outputs stay float32.
    ``backend``: the engine of the network, one of :data:`BACKENDS`.
    ``threads``: torch threads for the process (torch's setting is process-wide; the ONNX
    Runtime session takes as many); None leaves torch's setting.
    ``window_batch_size``: how many windows (EfficientAT: 160 ms windows' worth of samples;
    Audio-MLP: 1 s chunks) go through the network at once; None: the family's default.
    """

    device: object = None
    autocast: bool = False
    backend: str = "auto"
    threads: int | None = None
    window_batch_size: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.autocast, bool):
            raise TypeError(f"autocast must be True or False, got {self.autocast!r}")
        check_backend(self.backend)
        _optional_count(self.threads, "threads")
        _optional_count(self.window_batch_size, "window_batch_size")
        if self.device is not None:
            from hear_mn.model import torch_device  # torch: only when a device is named

            torch_device(self.device)


# Every run option by name, in declaration order (create_model and load_model take them as
# keywords).
RUN_OPTIONS: tuple[str, ...] = tuple(field.name for field in fields(RunOptions))
