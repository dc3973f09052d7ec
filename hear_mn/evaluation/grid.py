"""heareval's hyper-parameter grids, as data, and the grid points a task trains.

The grids are heareval 2021.1.3's (``default``, ``fast``, ``faster``), with its per-task
override (``dcase2016_task2`` validates every 10 epochs) and a task's own
``evaluation_params.task_specific_param_grid``. Points are enumerated as scikit-learn's
``ParameterGrid`` does (keys sorted, the last varying fastest), shuffled by
``random.Random(seed)`` (heareval seeds Python's generator with 42 and shuffles) and the
first ``grid_points`` are trained.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping
from dataclasses import dataclass, fields

__all__ = [
    "GRIDS",
    "TASK_SPECIFIC_PARAM_GRID",
    "HyperParameters",
    "grid_points",
    "task_grid",
]

DEFAULT_GRID: dict[str, list] = {
    "hidden_layers": [1, 2],
    "hidden_dim": [1024],
    "dropout": [0.1],
    "lr": [3.2e-3, 1e-3, 3.2e-4, 1e-4],
    "patience": [20],
    "max_epochs": [500],
    "check_val_every_n_epoch": [3],
    "batch_size": [1024],
    "hidden_norm": ["BatchNorm1d"],
    "norm_after_activation": [False],
    "embedding_norm": ["Identity"],
    "initialization": ["xavier_uniform_", "xavier_normal_"],
    "optim": ["Adam"],
}
GRIDS: dict[str, dict[str, list]] = {
    "default": DEFAULT_GRID,
    "fast": {**DEFAULT_GRID, "max_epochs": [10, 50], "check_val_every_n_epoch": [3, 10]},
    "faster": {
        **DEFAULT_GRID,
        "hidden_layers": [0, 1],
        "hidden_dim": [64, 128],
        "patience": [1, 3],
        "max_epochs": [10],
        "check_val_every_n_epoch": [1],
    },
}
TASK_SPECIFIC_PARAM_GRID: dict[str, dict[str, list]] = {
    "dcase2016_task2": {"check_val_every_n_epoch": [10]},
}
INITIALIZATIONS = ("xavier_uniform_", "xavier_normal_")


@dataclass(frozen=True)
class HyperParameters:
    """One grid point: the downstream MLP, its optimiser and its training schedule."""

    hidden_layers: int
    hidden_dim: int
    dropout: float
    lr: float
    patience: int
    max_epochs: int
    check_val_every_n_epoch: int
    batch_size: int
    hidden_norm: str
    norm_after_activation: bool
    embedding_norm: str
    initialization: str
    optim: str

    def __post_init__(self) -> None:
        supported = {
            "hidden_norm": ("BatchNorm1d",),
            "embedding_norm": ("Identity",),
            "initialization": INITIALIZATIONS,
            "optim": ("Adam",),
        }
        for name, choices in supported.items():
            if getattr(self, name) not in choices:
                raise ValueError(
                    f"{name} {getattr(self, name)!r} is not supported; use {', '.join(choices)}"
                )
        for name in (
            "hidden_dim",
            "patience",
            "max_epochs",
            "check_val_every_n_epoch",
            "batch_size",
        ):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        if self.hidden_layers < 0 or not 0.0 <= self.dropout < 1.0 or not self.lr > 0:
            raise ValueError(f"hidden_layers >= 0, 0 <= dropout < 1 and lr > 0 are needed: {self}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> HyperParameters:
        """A grid point from a mapping of all its fields (names as in heareval)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(
                f"unknown hyper-parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}"
            )
        missing = sorted(names - set(values))
        if missing:
            raise ValueError(f"hyper-parameter(s) {', '.join(missing)} missing")
        return cls(**values)  # type: ignore[arg-type]

    def structure(self) -> tuple:
        """What must be equal for grid points to train as one batched model."""
        return (
            self.hidden_layers,
            self.hidden_dim,
            self.dropout,
            self.batch_size,
            self.norm_after_activation,
        )

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def task_grid(metadata: Mapping[str, object], grid: str = "default") -> dict[str, list]:
    """The grid heareval trains for a task: ``grid`` (default, fast or faster), updated with
    heareval's per-task override and the task's ``task_specific_param_grid``."""
    if grid not in GRIDS:
        raise ValueError(f"unknown grid {grid!r}; choose {', '.join(GRIDS)}")
    final = dict(GRIDS[grid])
    final.update(TASK_SPECIFIC_PARAM_GRID.get(str(metadata.get("task_name")), {}))
    params = metadata.get("evaluation_params") or {}
    specific = params.get("task_specific_param_grid") if isinstance(params, Mapping) else None
    if specific:
        for key, values in specific.items():
            if key not in final:
                raise ValueError(
                    f"task_specific_param_grid names an unknown hyper-parameter {key!r}"
                )
            if not isinstance(values, list) or not values:
                raise ValueError(f"task_specific_param_grid[{key!r}] must be a non-empty list")
        final.update(specific)
    return final


def grid_points(
    metadata: Mapping[str, object], grid: str = "default", points: int = 8, seed: int = 42
) -> list[HyperParameters]:
    """The grid points a task trains, in heareval's order: enumerated, shuffled with
    ``random.Random(seed)``, the first ``points`` kept."""
    if isinstance(points, bool) or not isinstance(points, int) or points < 1:
        raise ValueError(f"grid_points must be a positive int, got {points!r}")
    final = task_grid(metadata, grid)
    keys = sorted(final)
    confs = [dict(zip(keys, values)) for values in itertools.product(*(final[k] for k in keys))]
    random.Random(seed).shuffle(confs)
    return [HyperParameters.from_mapping(conf) for conf in confs[:points]]
