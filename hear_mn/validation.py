"""The checks of hear-validator on a HEAR module, without TensorFlow (``hear-mn validate``).

:func:`validate_module` imports a module (by name or from a .py file) and checks what
hear-validator checks: it has ``load_model``, ``get_scene_embeddings`` and
``get_timestamp_embeddings``; its model's ``sample_rate`` is one of HEAR's rates and its
embedding sizes are positive ints; on random audio of two lengths the outputs are float32
tensors of the right shapes, timestamps are evenly spaced within the audio, and results do
not depend on the batch size. The results are data (:class:`CheckResult`); reporting them
is the caller's job::

    from hear_mn.validation import validate_module

    results = validate_module("hear_mn.kwmlp")
    assert all(result.status != "FAIL" for result in results)
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

__all__ = ["FAIL", "HEAR_SAMPLE_RATES", "PASS", "SKIP", "CheckResult", "validate_module"]

HEAR_SAMPLE_RATES = (16000, 22050, 32000, 44100, 48000)
PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"


@dataclass(frozen=True)
class CheckResult:
    """One check: its ``name``, ``status`` (PASS, FAIL or SKIP) and ``detail``.

    ``detail``: for PASS what was found ("" when there is nothing to add), for FAIL and SKIP
    why. ``traceback``: when the module under test raised an unexpected exception, its
    formatted traceback ("" otherwise).
    """

    name: str
    status: str
    detail: str = ""
    traceback: str = ""


class _CheckError(Exception):
    pass


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise _CheckError(message)


class _Checks:
    """Runs named checks and collects their results, handing each to ``on_result`` at once."""

    def __init__(self, on_result: Callable[[CheckResult], None] | None) -> None:
        self.results: list[CheckResult] = []
        self._on_result = on_result

    def _add(self, result: CheckResult) -> bool:
        self.results.append(result)
        if self._on_result is not None:
            self._on_result(result)
        return result.status == PASS

    def run(self, name: str, check: Callable[[], object]) -> bool:
        try:
            detail = check()
        except _CheckError as error:
            return self._add(CheckResult(name, FAIL, str(error)))
        except Exception as error:  # the module under test may raise anything
            text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            reason = f"raised {type(error).__name__}: {error}"
            return self._add(CheckResult(name, FAIL, reason, text))
        return self._add(CheckResult(name, PASS, f"{detail}" if detail else ""))

    def skip(self, names: Iterable[str], reason: str) -> None:
        for name in names:
            self._add(CheckResult(name, SKIP, reason))


def _import_module(target: str) -> ModuleType:
    if target.endswith(".py") or os.sep in target:
        path = Path(target)
        _expect(path.is_file(), f"no such file {target}")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        _expect(spec is not None and spec.loader is not None, f"cannot import {target}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as error:
        # A bare configuration name (kwmlp, mn10_e1_l): the hear_mn module of that name.
        if error.name != target or "." in target:
            raise
        try:
            return importlib.import_module(f"hear_mn.{target}")
        except ModuleNotFoundError:
            raise error from None


def _as_cpu(value: object, what: str) -> object:
    import torch

    _expect(isinstance(value, torch.Tensor), f"{what} is a {type(value).__name__}, not a Tensor")
    _expect(value.dtype == torch.float32, f"{what} has dtype {value.dtype}, not torch.float32")
    return value.detach().cpu()


def _close(a: object, b: object) -> bool:
    scale = float(b.abs().max()) if b.numel() else 0.0
    return bool((a - b).abs().max() <= 1e-4 * scale + 1e-6) if b.numel() else True


def _attributes(model: object) -> str:
    rate = getattr(model, "sample_rate", None)
    _expect(
        isinstance(rate, int) and not isinstance(rate, bool),
        f"sample_rate must be an int, got {rate!r}",
    )
    _expect(
        rate in HEAR_SAMPLE_RATES,
        f"sample_rate {rate} is not one of HEAR's {', '.join(map(str, HEAR_SAMPLE_RATES))}",
    )
    sizes = []
    for name in ("scene_embedding_size", "timestamp_embedding_size"):
        size = getattr(model, name, None)
        _expect(
            isinstance(size, int) and not isinstance(size, bool) and size > 0,
            f"{name} must be a positive int, got {size!r}",
        )
        sizes.append(f"{name}={size}")
    return f"sample_rate={rate}, " + ", ".join(sizes)


def validate_module(
    target: str,
    *,
    model_file: str = "",
    random_weights: bool = False,
    on_result: Callable[[CheckResult], None] | None = None,
) -> list[CheckResult]:
    """Check the HEAR module ``target`` (a module name or a path to a .py file).

    ``model_file`` is passed to ``load_model`` (default: no argument); ``random_weights``
    calls ``load_model(pretrained=False)`` (hear-mn modules: no weights file needed).
    ``on_result`` gets each result as soon as its check ends. Checks after a failed import,
    API check, ``load_model`` or attribute check are skipped (status SKIP).
    """
    import torch

    checks = _Checks(on_result)
    state: dict[str, object] = {}
    api = ("load_model", "get_scene_embeddings", "get_timestamp_embeddings")
    later = ["load_model", "model attributes", "embeddings"]

    def do_import() -> str:
        state["module"] = _import_module(target)
        return ""

    if not checks.run(f"import {target}", do_import):
        checks.skip(later, "the module did not import")
        return checks.results
    module = state["module"]

    def has_api() -> str:
        missing = [name for name in api if not callable(getattr(module, name, None))]
        _expect(not missing, f"missing callable(s): {', '.join(missing)}")
        return ", ".join(api)

    if not checks.run("HEAR API functions", has_api):
        checks.skip(later, "the HEAR API is incomplete")
        return checks.results

    options = {"pretrained": False} if random_weights else {}
    positional = (model_file,) if model_file else ()

    def load() -> str:
        state["model"] = module.load_model(*positional, **options)
        return type(state["model"]).__name__

    arguments = [repr(a) for a in positional] + [f"{k}={v!r}" for k, v in options.items()]
    if not checks.run(f"load_model({', '.join(arguments)})", load):
        checks.skip(later[1:], "load_model failed")
        return checks.results
    model = state["model"]

    if not checks.run("model attributes", lambda: _attributes(model)):
        checks.skip(["embeddings"], "the model attributes are wrong")
        return checks.results
    _embedding_checks(checks, module, model, torch.Generator().manual_seed(0))
    return checks.results


def _embedding_checks(checks: _Checks, module: object, model: object, generator: object) -> None:
    """Timestamp and scene embeddings of random audio of two lengths, then batch consistency."""
    import torch

    rate = model.sample_rate
    scene_size = model.scene_embedding_size
    stamp_size = model.timestamp_embedding_size
    outputs: dict[float, tuple[object, object, object, object]] = {}

    for seconds in (1.0, 2.3):
        n_samples = round(seconds * rate)
        audio = torch.rand(2, n_samples, generator=generator) * 2 - 1
        duration_ms = 1000.0 * n_samples / rate

        def timestamp_check(audio: object = audio, duration_ms: float = duration_ms) -> str:
            result = module.get_timestamp_embeddings(audio, model)
            _expect(
                isinstance(result, tuple) and len(result) == 2,
                f"must return (embeddings, timestamps), got {type(result).__name__}",
            )
            embeddings = _as_cpu(result[0], "embeddings")
            stamps = _as_cpu(result[1], "timestamps")
            _expect(
                embeddings.ndim == 3 and embeddings.shape[0] == 2,
                f"embeddings shape {tuple(embeddings.shape)}, expected (2, n_timestamps, "
                f"{stamp_size})",
            )
            n_stamps = embeddings.shape[1]
            _expect(
                tuple(embeddings.shape) == (2, n_stamps, stamp_size),
                f"embeddings shape {tuple(embeddings.shape)}, expected (2, {n_stamps}, "
                f"{stamp_size}) (timestamp_embedding_size={stamp_size})",
            )
            _expect(
                tuple(stamps.shape) == (2, n_stamps),
                f"timestamps shape {tuple(stamps.shape)}, expected (2, {n_stamps})",
            )
            _expect(n_stamps > 0, "no timestamps")
            _expect(bool(torch.isfinite(embeddings).all()), "embeddings hold NaN or Inf")
            _expect(bool((stamps == stamps[:1]).all()), "timestamps differ between sounds")
            _expect(
                float(stamps.min()) >= 0 and float(stamps.max()) <= duration_ms + 1e-3,
                f"timestamps span {float(stamps.min()):.2f}..{float(stamps.max()):.2f} ms, "
                f"outside the audio's 0..{duration_ms:.2f} ms",
            )
            spacing = ""
            if n_stamps > 1:
                steps = stamps[0, 1:] - stamps[0, :-1]
                _expect(float(steps.min()) > 0, "timestamps do not increase")
                _expect(
                    float(steps.max() - steps.min()) <= 1e-3 * max(1.0, float(steps.mean())),
                    f"timestamp spacing is not constant ({float(steps.min()):.3f}.."
                    f"{float(steps.max()):.3f} ms)",
                )
                spacing = f", every {float(steps.mean()):.2f} ms"
            outputs.setdefault(duration_ms, (audio, embeddings, stamps, None))
            return f"{tuple(embeddings.shape)}{spacing}"

        def scene_check(audio: object = audio, duration_ms: float = duration_ms) -> str:
            result = _as_cpu(module.get_scene_embeddings(audio, model), "scene embeddings")
            _expect(
                tuple(result.shape) == (2, scene_size),
                f"scene embeddings shape {tuple(result.shape)}, expected (2, {scene_size})",
            )
            _expect(bool(torch.isfinite(result).all()), "scene embeddings hold NaN or Inf")
            if duration_ms in outputs:
                entry = outputs[duration_ms]
                outputs[duration_ms] = (entry[0], entry[1], entry[2], result)
            return str(tuple(result.shape))

        checks.run(f"timestamp embeddings, 2 x {seconds:g} s", timestamp_check)
        checks.run(f"scene embeddings, 2 x {seconds:g} s", scene_check)

    complete = [entry for entry in outputs.values() if entry[3] is not None]

    def consistency() -> str:
        _expect(bool(complete), "needs passing timestamp and scene checks")
        audio, embeddings, stamps, scene = complete[0]
        alone, alone_stamps = module.get_timestamp_embeddings(audio[1:], model)
        alone = _as_cpu(alone, "embeddings")
        alone_stamps = _as_cpu(alone_stamps, "timestamps")
        _expect(
            tuple(alone.shape) == tuple(embeddings[1:].shape),
            f"alone: shape {tuple(alone.shape)}, in a batch: {tuple(embeddings[1:].shape)}",
        )
        _expect(_close(alone, embeddings[1:]), "timestamp embeddings change with the batch size")
        _expect(bool((alone_stamps == stamps[1:]).all()), "timestamps change with the batch size")
        alone_scene = _as_cpu(module.get_scene_embeddings(audio[1:], model), "scene embeddings")
        _expect(_close(alone_scene, scene[1:]), "scene embeddings change with the batch size")
        return "batch of 1 matches batch of 2"

    checks.run("consistent across batch sizes", consistency)
