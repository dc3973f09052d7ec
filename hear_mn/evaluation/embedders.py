"""What computes the embeddings of a task: a hear-mn model, or any HEAR-API module by name.

:func:`make_embedder` takes what a user names: a hear-mn configuration (``mn04_e1_l``,
``hear_mn.kwmlp``, ``dymn10_all_b_mel_avgs``, ...), an :class:`~hear_mn.model.EmbeddingModel`,
or the import name of any module with the HEAR API (``load_model``,
``get_scene_embeddings``, ``get_timestamp_embeddings``), so that the evaluator is not ours
alone. Each embedder names its folder as heareval's embeddings runner would
(``<module>[-key=value...]``) and says what its outputs depend on (the resume rule).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hear_mn.batch import embed_clips, output_settings, weights_fingerprint
from hear_mn.model import EmbeddingModel

__all__ = [
    "Embedder",
    "LibraryEmbedder",
    "ModuleEmbedder",
    "UnknownModelError",
    "check_model_name",
    "make_embedder",
]

PACKAGE_PREFIX = "hear_mn."


class UnknownModelError(ValueError):
    """The name is neither a hear-mn configuration nor an importable HEAR module."""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def options_suffix(options: Mapping[str, object]) -> str:
    """``-key=value`` per option, the way heareval's embeddings runner names its folders."""
    return "".join(f"-{_slug(str(k))}={_slug(str(v))}" for k, v in options.items())


@dataclass
class Embedder:
    """Embeds clips for one model: ``folder`` (its name in the embeddings layout),
    ``sample_rate``, ``description`` (for reports) and :meth:`embed`."""

    folder: str
    sample_rate: int
    description: str
    _settings: dict = field(default_factory=dict, init=False, repr=False)

    def settings(self, event: bool) -> dict[str, object]:
        """Everything a task's outputs depend on (outputs of other settings are not
        reused); computed once per kind of task, since it hashes the weights."""
        if event not in self._settings:
            self._settings[event] = self._compute_settings(event)
        return dict(self._settings[event])

    def _compute_settings(self, event: bool) -> dict[str, object]:
        raise NotImplementedError

    def embed(self, clips: list[np.ndarray], event: bool) -> list[dict[str, np.ndarray] | str]:
        """Per clip (equal lengths): ``{"embedding", "timestamps"?}`` or why it failed."""
        raise NotImplementedError

    def expected_width(self, event: bool) -> int | None:
        """The embedding width, when known before computing."""
        return None

    def start_job(self) -> None:
        """Before embedding a task's clips (a hear-mn model fixes its engines for the job,
        :meth:`hear_mn.model.EmbeddingModel.start_batch_job`)."""


@dataclass
class LibraryEmbedder(Embedder):
    """A hear-mn model: batched, exact, with the library's failure handling."""

    model: EmbeddingModel = field(default=None, repr=False)  # type: ignore[assignment]

    def _compute_settings(self, event: bool) -> dict[str, object]:
        settings = output_settings(self.model, event)
        settings.pop("hear_mn_version", None)
        return {"embedder": "hear_mn", **settings}

    def embed(self, clips: list[np.ndarray], event: bool) -> list[dict[str, np.ndarray] | str]:
        return embed_clips(self.model, clips, event)

    def start_job(self) -> None:
        self.model.start_batch_job()

    def expected_width(self, event: bool) -> int | None:
        if event:
            return int(self.model.timestamp_embedding_size)
        return int(self.model.scene_embedding_size)


@dataclass
class ModuleEmbedder(Embedder):
    """Any module with the HEAR API, called as heareval calls it (a tensor on the model's
    device, no gradients)."""

    module: Any = field(default=None, repr=False)
    model: Any = field(default=None, repr=False)
    model_file: str | None = None
    options: dict = field(default_factory=dict)
    device: str = "cpu"

    def _compute_settings(self, event: bool) -> dict[str, object]:
        if isinstance(self.model, torch.nn.Module):
            weights = weights_fingerprint(self.model)
        elif self.model_file:
            weights = hashlib.sha256(Path(self.model_file).read_bytes()).hexdigest()
        else:
            weights = ""
        return {
            "embedder": "hear_module",
            "module": self.module.__name__,
            "options": {k: repr(v) for k, v in self.options.items()},
            "weights_sha256": weights,
            "timestamps": bool(event),
        }

    def embed(self, clips: list[np.ndarray], event: bool) -> list[dict[str, np.ndarray] | str]:
        audio = torch.from_numpy(np.stack(clips)).to(self.device)
        try:
            with torch.no_grad():
                if event:
                    embeddings, stamps = self.module.get_timestamp_embeddings(audio, self.model)
                    embeddings, stamps = embeddings.cpu().numpy(), stamps.cpu().numpy()
                    return [
                        self._finite({"embedding": e, "timestamps": t})
                        for e, t in zip(embeddings, stamps)
                    ]
                embeddings = self.module.get_scene_embeddings(audio, self.model).cpu().numpy()
        except Exception as error:  # a foreign module: its failure is the clip's
            if len(clips) > 1:
                return [self.embed([clip], event)[0] for clip in clips]
            return [f"{self.module.__name__} failed: {type(error).__name__}: {error}"]
        return [self._finite({"embedding": e}) for e in embeddings]

    def _finite(self, result: dict[str, np.ndarray]) -> dict[str, np.ndarray] | str:
        """The clip's result, or why it is not one: NaN or infinite values (heareval asserts
        there are none; hear-mn models never return them)."""
        if all(np.isfinite(value).all() for value in result.values()):
            return result
        return f"{self.module.__name__} returned NaN or infinite values"

    def expected_width(self, event: bool) -> int | None:
        attribute = "timestamp_embedding_size" if event else "scene_embedding_size"
        value = getattr(self.model, attribute, None)
        return int(value) if isinstance(value, int) else None


def _auto_device(device: str | None) -> str:
    if device is not None:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def _library_embedder(
    name: str, weights: str | os.PathLike[str] | None, options: dict, device: str
) -> LibraryEmbedder:
    from hear_mn.registry import create_model

    model = create_model(name, weights=weights, device=device, **options)
    folder = PACKAGE_PREFIX + name + options_suffix(options)
    description = name + (f" ({Path(weights).name})" if weights else "")
    return LibraryEmbedder(folder, int(model.sample_rate), description, model)


def _module_embedder(
    name: str, weights: str | os.PathLike[str] | None, options: dict, device: str
) -> ModuleEmbedder:
    module = importlib.import_module(name)
    missing = [
        attr
        for attr in ("load_model", "get_scene_embeddings", "get_timestamp_embeddings")
        if not callable(getattr(module, attr, None))
    ]
    if missing:
        raise UnknownModelError(
            f"module {name} lacks the HEAR API function(s) {', '.join(missing)}"
        )
    model = module.load_model(str(weights), **options) if weights else module.load_model(**options)
    if isinstance(model, torch.nn.Module):
        model.to(device)
    rate = getattr(model, "sample_rate", None)
    if not isinstance(rate, int) or rate <= 0:
        raise UnknownModelError(f"{name}.load_model() returned a model without an int sample_rate")
    folder = name + options_suffix(options)
    return ModuleEmbedder(
        folder, rate, name, module, model, str(weights) if weights else None, dict(options), device
    )


def _is_library_name(name: str) -> bool:
    from hear_mn.registry import get_config

    try:
        get_config(name)
    except (ValueError, TypeError):
        return False
    return True


def _resolve(model: str) -> tuple[str, bool]:
    """``(name, is_library)``: the hear-mn configuration (``hear_mn.`` prefix dropped) or
    the module a name stands for; :class:`UnknownModelError` when it is neither."""
    short = model[len(PACKAGE_PREFIX) :] if model.startswith(PACKAGE_PREFIX) else model
    if _is_library_name(short):
        return short, True
    try:
        found = importlib.util.find_spec(model) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise UnknownModelError(
            f"unknown model {model!r}: neither a hear-mn configuration (see `hear-mn list`) "
            "nor an importable module with the HEAR API"
        )
    return model, False


def check_model_name(model: str) -> None:
    """Raise :class:`UnknownModelError` now when ``model`` names neither a hear-mn
    configuration nor an importable module (nothing is loaded: for checking every name of
    a run before the first model is evaluated)."""
    _resolve(model)


def make_embedder(
    model: str | EmbeddingModel,
    *,
    weights: str | os.PathLike[str] | None = None,
    options: Mapping[str, object] | None = None,
    device: str | None = None,
) -> Embedder:
    """The embedder of ``model``: a hear-mn configuration name (``hear_mn.`` prefix
    optional), a built :class:`EmbeddingModel`, or a HEAR module's import name.
    ``weights``: a checkpoint file; ``options``: ``load_model`` keyword arguments (hear-mn:
    e.g. ``features``); ``device``: default CUDA when torch sees it, else the CPU."""
    options = dict(options or {})
    device = _auto_device(device)
    if isinstance(model, EmbeddingModel):
        if weights is not None or options:
            raise ValueError("weights and options apply to a model name, not to a built model")
        model.to(device)
        folder = PACKAGE_PREFIX + str(model.name)
        return LibraryEmbedder(folder, int(model.sample_rate), str(model.name), model)
    if not isinstance(model, str) or not model:
        raise TypeError(f"model must be a name or an EmbeddingModel, got {model!r}")
    name, library = _resolve(model)
    if library:
        return _library_embedder(name, weights, options, device)
    return _module_embedder(name, weights, options, device)
