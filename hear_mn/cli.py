"""The ``hear-mn`` command line: ``list``, ``embed``, ``tag`` and ``validate``.

Run ``hear-mn --help`` (or ``python -m hear_mn --help``) for the commands and
``hear-mn COMMAND --help`` for each command's options and examples. Exit codes: 0 success,
1 some inputs failed (or a validation check failed), 2 nothing was done because of a usage
error (bad flag, unknown model, missing input, weights not available).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import math
import os
import sys
import textwrap
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

# Only torch-free modules at import time: `hear-mn --help` and `--version` stay fast.
from hear_mn.catalog import AUDIOMLP_CONFIGS, DEFAULT_CONFIG, GROUP_TITLES

if TYPE_CHECKING:
    from hear_mn.audio_io import AudioInputs
    from hear_mn.registry import ModelConfig

__all__ = ["main", "weights_location"]

PROG = "hear-mn"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # as a shell reports a process ended by Ctrl-C (SIGINT)
HEAR_SAMPLE_RATES = (16000, 22050, 32000, 44100, 48000)

logger = logging.getLogger(__name__)


class CLIError(Exception):
    """A one-line error that ends the command with ``code``."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and no exit from :func:`main`."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CLIError(f"{self.prog}: error: {message} (see {self.prog} --help)")


# --------------------------------------------------------------------------- output helpers


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _is_tty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, OSError, ValueError):
        return False


class _AudioProgress:
    """A tqdm bar over the seconds of audio in ``files``, with the time left, on stderr.

    The total comes from the files' headers (read only when the bar is shown); a file
    counts with its header's duration when it is done, or with what was decoded when its
    header gave none.
    """

    def __init__(self, label: str, files: Sequence[tuple[Path, Path]], enabled: bool) -> None:
        from tqdm import tqdm

        from hear_mn.audio_io import audio_duration

        self._durations = {path: audio_duration(path) for path, _ in files} if enabled else {}
        self._bar = tqdm(
            total=round(sum(d for d in self._durations.values() if d), 1),
            desc=label,
            unit="s",
            disable=not enabled,
            file=sys.stderr,
            dynamic_ncols=True,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s of audio "
            "[{elapsed}<{remaining}, {rate_fmt}]",
        )

    def done(self, path: Path, seconds: float) -> None:
        self._bar.update(self._durations.get(path) or seconds)

    def close(self) -> None:
        self._bar.close()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _si(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f}"


# --------------------------------------------------------------------------- model helpers


def _config(name: str, features: str | None = None) -> ModelConfig:
    from hear_mn.registry import get_config

    try:
        return get_config(name, features=features)
    except ValueError as error:
        raise CLIError(str(error)) from None


def default_threads() -> int:
    """Torch threads for a run: the CPU cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _passive_waiting() -> None:
    """Let OpenMP threads sleep, not spin, while they wait (unless the user chose otherwise).

    Torch's threads meet at a barrier after every operation. On a shared machine one of
    them is often descheduled, and the default policy's spinning partner then burns the
    CPU the descheduled one needs: beside 2 busy processes on 2 cores, 2 threads took 1.6x
    to 9.5x the time of 1 thread, and with passive waiting 0.67x to 0.90x, for a few
    per cent on an idle machine (``benchmarks/bench_threads.py``). OpenMP reads this once,
    when torch loads, so it is set before any command imports torch.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _set_threads(threads: int | None) -> int:
    """Use ``threads`` torch threads (None: :func:`default_threads`)."""
    import torch

    chosen = threads or default_threads()
    torch.set_num_threads(chosen)
    logger.info("using %d torch thread(s)", chosen)
    return chosen


def _load_model(args: argparse.Namespace, features: str | None) -> object:
    from hear_mn.registry import create_model
    from hear_mn.weights import WeightsError

    _set_threads(args.threads)

    progress = False if args.quiet else None
    try:
        return create_model(
            args.model,
            weights=args.weights,
            features=features,
            device=args.device,
            progress=progress,
        )
    except (ValueError, WeightsError) as error:
        raise CLIError(str(error)) from None


def _find_inputs(inputs: Sequence[str]) -> AudioInputs:
    """The files to read and the other files found in the folders (listed at the end, not
    skipped silently); a missing input or two inputs of the same name end the command."""
    from hear_mn.audio_io import InputNameError, scan_audio_inputs

    try:
        scan = scan_audio_inputs(inputs)
    except (FileNotFoundError, InputNameError) as error:
        raise CLIError(str(error)) from None
    if not scan.files:
        raise CLIError(f"no audio or video files found in {' '.join(map(str, inputs))}")
    return scan


def _report_ignored(ignored: list[tuple[Path, str]], quiet: bool) -> None:
    if ignored and not quiet:
        _err(f"{PROG}: ignored {len(ignored)} file(s) in the input folders, not read as audio:")
        for path, reason in ignored:
            _err(f"  {path}: {reason}")


def weights_location(config: ModelConfig) -> tuple[str, Path | None]:
    """Where the released weights file is: ("offline"|"shipped"|"cached"|"missing", path)."""
    from hear_mn.weights import find_weights

    found = find_weights(config.weights.file_name)
    return found if found is not None else ("missing", None)


# --------------------------------------------------------------------------- list


def _cmd_list(args: argparse.Namespace) -> int:
    from hear_mn.complexity import known_complexity
    from hear_mn.registry import named_configs

    rows = []
    for config in named_configs(args.group):
        params, macs = known_complexity(config)
        scene, stamp = config.embedding_sizes
        status, path = weights_location(config)
        rows.append(
            {
                "name": config.name,
                "group": config.group,
                "family": config.checkpoint.family,
                "checkpoint": config.checkpoint.name,
                "features": list(config.features),
                "pooling": config.pooling if config.checkpoint.family == "mobilenet" else None,
                "sample_rate": config.sample_rate,
                "scene_embedding_size": scene,
                "timestamp_embedding_size": stamp,
                "parameters": params,
                "macs_10s": macs,
                "weights_file": config.weights.file_name,
                "weights_status": status,
                "weights_path": str(path) if path else None,
            }
        )
    if args.json:
        _out(json.dumps(rows, indent=2))
        return EXIT_OK
    header = ("model", "rate", "scene", "stamp", "params", "MACs/10s", "weights file", "weights")
    table = [header] + [
        (
            row["name"],
            str(row["sample_rate"]),
            str(row["scene_embedding_size"]),
            str(row["timestamp_embedding_size"]),
            _si(row["parameters"]),
            _si(row["macs_10s"]),
            row["weights_file"],
            row["weights_status"],
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    right = {1, 2, 3, 4, 5}
    lines = [
        "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ).rstrip()
        for line in table
    ]
    _out(lines[0])
    group = None
    for row, line in zip(rows, lines[1:]):
        if row["group"] != group:
            group = row["group"]
            count = sum(r["group"] == group for r in rows)
            _out(f"\n# {GROUP_TITLES[group]}: {count} module(s), hear_mn.<model>")
        _out(line)
    return EXIT_OK


# --------------------------------------------------------------------------- embed


def _report_failures(failures: list[tuple[Path, str]], verb: str) -> None:
    if not failures:
        return
    _err(f"{PROG}: {verb} failed for {len(failures)} file(s):")
    for path, reason in failures:
        prefix = f"{path}: "
        _err("  " + (reason if reason.startswith(prefix) else prefix + reason))


def _cmd_embed(args: argparse.Namespace) -> int:
    from hear_mn.batch import (
        EmbeddingInterrupted,
        OutputConflictError,
        OutputFolderError,
        check_writable,
        embed_files,
    )

    _config(args.model, args.features)
    scan = _find_inputs(args.inputs)
    try:
        check_writable(args.out)
    except OutputFolderError as error:
        raise CLIError(str(error)) from None
    model = _load_model(args, args.features)
    progress = _AudioProgress("embed", scan.files, _is_tty(sys.stderr) and not args.quiet)
    try:
        report = embed_files(
            scan,
            model,
            args.out,
            timestamps=args.timestamps,
            overwrite=args.overwrite,
            batch_size=args.batch_size,
            progress=progress.done,
        )
    except OutputConflictError as error:
        raise CLIError(str(error)) from None
    except EmbeddingInterrupted as stop:
        progress.close()
        _err(
            f"{PROG}: interrupted; {len(stop.report.written)} output(s) were saved in "
            f"{args.out}; run the same command again to resume"
        )
        return EXIT_INTERRUPTED
    finally:
        progress.close()
    if not args.quiet:
        _out(f"embedded {len(report.written)} file(s) with {args.model} into {args.out}")
        if report.resumed:
            _out(
                f"skipped {len(report.resumed)} file(s) whose output already exists in "
                f"{args.out} with the same settings (--overwrite recomputes them)"
            )
    _report_ignored(scan.ignored, args.quiet)
    _report_failures(report.failures, "embedding")
    return EXIT_FAILED if report.failures else EXIT_OK


# --------------------------------------------------------------------------- tag


def _segments(n_samples: int, window: int | None) -> list[tuple[int, int]]:
    if window is None or window >= n_samples:
        return [(0, n_samples)]
    return [(start, min(start + window, n_samples)) for start in range(0, n_samples, window)]


def _tag_file(
    model: object, audio: np.ndarray, window: int | None, batch_size: int
) -> list[tuple[int, int, np.ndarray]]:
    """(start, stop, probabilities) per segment; equal-length windows share forward passes."""
    import torch

    bounds = _segments(len(audio), window)
    scores: list[np.ndarray | None] = [None] * len(bounds)
    by_length: dict[int, list[int]] = {}
    for i, (start, stop) in enumerate(bounds):
        by_length.setdefault(stop - start, []).append(i)
    for indices in by_length.values():
        for first in range(0, len(indices), batch_size):
            chunk = indices[first : first + batch_size]
            batch = np.stack([audio[bounds[i][0] : bounds[i][1]] for i in chunk])
            logits = model.scene_embeddings(torch.from_numpy(batch))
            probs = torch.sigmoid(logits).cpu().numpy()
            for i, row in zip(chunk, probs):
                scores[i] = row
    return [(start, stop, row) for (start, stop), row in zip(bounds, scores)]


def _cmd_tag(args: argparse.Namespace) -> int:
    from hear_mn.audio_io import AudioReadError, load_audio
    from hear_mn.labels import LabelsError, load_labels

    config = _config(args.model)
    if config.checkpoint.family != "mobilenet":
        raise CLIError(
            f"{args.model} has no AudioSet classifier (Audio-MLP models give embeddings only); "
            f"tag with a MobileNet, e.g. --model {DEFAULT_CONFIG}"
        )
    scan = _find_inputs(args.inputs)
    files = scan.files
    try:
        labels = load_labels(args.labels, progress=False if args.quiet else None)
    except LabelsError as error:
        raise CLIError(str(error)) from None
    model = _load_model(args, "l")
    sample_rate = int(model.sample_rate)
    window = max(1, round(args.window * sample_rate)) if args.window else None
    top_k = min(args.top_k, len(labels))
    failures: list[tuple[Path, str]] = []
    results = []
    show = _is_tty(sys.stderr) and not args.quiet and args.json
    progress = _AudioProgress("tag", files, show)
    try:
        for path, _ in files:
            try:
                audio = load_audio(path, sample_rate)
                segments = _tag_file(model, audio, window, args.batch_size)
            except AudioReadError as error:
                failures.append((path, str(error)))
                progress.done(path, 0.0)
                continue
            except Exception as error:  # one bad file must not end the run
                failures.append((path, f"tagging failed: {type(error).__name__}: {error}"))
                progress.done(path, 0.0)
                continue
            entry = {
                "file": str(path),
                "duration_s": round(len(audio) / sample_rate, 3),
                "segments": [],
            }
            for start, stop, probs in segments:
                order = np.argsort(-probs, kind="stable")[:top_k]
                entry["segments"].append(
                    {
                        "start_s": round(start / sample_rate, 3),
                        "end_s": round(stop / sample_rate, 3),
                        "tags": [
                            {
                                "index": int(i),
                                "mid": labels[i].mid,
                                "label": labels[i].name,
                                "score": round(float(probs[i]), 4),
                            }
                            for i in order
                        ],
                    }
                )
            results.append(entry)
            progress.done(path, len(audio) / sample_rate)
            if not args.json:
                _print_tags(entry)
    finally:
        progress.close()
    if args.json:
        report = {
            "model": args.model,
            "top_k": top_k,
            "window_s": args.window,
            "files": results,
            "failures": [{"file": str(p), "error": reason} for p, reason in failures],
        }
        _out(json.dumps(report, indent=2))
    _report_ignored(scan.ignored, args.quiet)
    _report_failures(failures, "tagging")
    return EXIT_FAILED if failures else EXIT_OK


def _print_tags(entry: dict) -> None:
    _out(f"{entry['file']}  ({entry['duration_s']:.2f} s)")
    for segment in entry["segments"]:
        span = f"{segment['start_s']:7.2f}-{segment['end_s']:.2f} s"
        for rank, tag in enumerate(segment["tags"]):
            lead = span if rank == 0 else " " * len(span)
            _out(f"  {lead}  {tag['score']:.3f}  {tag['label']}")
    _out()


# --------------------------------------------------------------------------- validate


class _CheckError(Exception):
    pass


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise _CheckError(message)


class _Checks:
    """Runs named checks, printing PASS/FAIL lines, and counts them."""

    def __init__(self, verbose: bool) -> None:
        self.passed = 0
        self.failed = 0
        self.verbose = verbose

    def run(self, name: str, check: Callable[[], object]) -> bool:
        try:
            detail = check()
        except _CheckError as error:
            return self._fail(name, str(error))
        except Exception as error:  # the module under test may raise anything
            if self.verbose:
                traceback.print_exc()
            return self._fail(name, f"raised {type(error).__name__}: {error}")
        self.passed += 1
        _out(f"PASS  {name}" + (f": {detail}" if detail else ""))
        return True

    def _fail(self, name: str, reason: str) -> bool:
        self.failed += 1
        _out(f"FAIL  {name}: {reason}")
        return False

    @staticmethod
    def skip(names: Iterable[str], reason: str) -> None:
        for name in names:
            _out(f"SKIP  {name}: {reason}")


def _import_module(target: str) -> object:
    if target.endswith(".py") or os.sep in target:
        path = Path(target)
        _expect(path.is_file(), f"no such file {target}")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        _expect(spec is not None and spec.loader is not None, f"cannot import {target}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(target)


def _as_cpu(value: object, what: str) -> object:
    import torch

    _expect(isinstance(value, torch.Tensor), f"{what} is a {type(value).__name__}, not a Tensor")
    _expect(value.dtype == torch.float32, f"{what} has dtype {value.dtype}, not torch.float32")
    return value.detach().cpu()


def _close(a: object, b: object) -> bool:
    scale = float(b.abs().max()) if b.numel() else 0.0
    return bool((a - b).abs().max() <= 1e-4 * scale + 1e-6) if b.numel() else True


def _cmd_validate(args: argparse.Namespace) -> int:
    import torch

    checks = _Checks(args.verbose > 0)
    state: dict[str, object] = {}
    api = ("load_model", "get_scene_embeddings", "get_timestamp_embeddings")
    later = ["load_model", "model attributes", "embeddings"]

    def do_import() -> str:
        state["module"] = _import_module(args.module)
        return ""

    if not checks.run(f"import {args.module}", do_import):
        checks.skip(later, "the module did not import")
        return _summary(checks)
    module = state["module"]

    def has_api() -> str:
        missing = [name for name in api if not callable(getattr(module, name, None))]
        _expect(not missing, f"missing callable(s): {', '.join(missing)}")
        return ", ".join(api)

    if not checks.run("HEAR API functions", has_api):
        checks.skip(later, "the HEAR API is incomplete")
        return _summary(checks)

    options = {"pretrained": False} if args.random_weights else {}
    positional = (args.model_file,) if args.model_file else ()

    def load() -> str:
        state["model"] = module.load_model(*positional, **options)
        return type(state["model"]).__name__

    arguments = [repr(a) for a in positional] + [f"{k}={v!r}" for k, v in options.items()]
    call = f"load_model({', '.join(arguments)})"
    if not checks.run(call, load):
        checks.skip(later[1:], "load_model failed")
        return _summary(checks)
    model = state["model"]

    def attributes() -> str:
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

    if not checks.run("model attributes", attributes):
        checks.skip(["embeddings"], "the model attributes are wrong")
        return _summary(checks)
    rate = model.sample_rate
    scene_size = model.scene_embedding_size
    stamp_size = model.timestamp_embedding_size
    generator = torch.Generator().manual_seed(0)
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
    return _summary(checks)


def _summary(checks: _Checks) -> int:
    verdict = "passed" if checks.failed == 0 else "FAILED"
    _out(f"validate {verdict}: {checks.passed} passed, {checks.failed} failed")
    return EXIT_OK if checks.failed == 0 else EXIT_FAILED


# --------------------------------------------------------------------------- parser

_LIST_EXAMPLES = """examples:
  hear-mn list                 table of every named configuration, by group
  hear-mn list --group efficientat_hear    only the EfficientAT_HEAR package's modules
  hear-mn list --json          the same as JSON (exact parameter and MAC counts)
"""

_EMBED_EXAMPLES = f"""examples:
  hear-mn embed song.wav --model mn10_e1_l
  hear-mn embed recordings/ --model {DEFAULT_CONFIG} --out embeddings/
  hear-mn embed a.flac b.mp3 --model mn04_e1_l --timestamps --batch-size 16
  hear-mn embed clips/ --model mn40_ext_e1_l --features e1_l_all_se --device cuda
  hear-mn embed clips/ --model mn04_e1_l --weights my_finetuned.pt --overwrite
  hear-mn embed train/ test/ --model kwmlp        # OUT/train/..., OUT/test/...

Each input file gets OUT/<its path relative to the input directory>.npz (a file named
directly: OUT/<its name>.npz; with several inputs, each directory's files go under its own
name), e.g. recordings/birds/a.wav -> embeddings/birds/a.wav.npz, holding `embedding` ((D,)
scene, or (T, D) with --timestamps), `timestamps` ((T,) ms, with --timestamps), `model`,
`features`, `sample_rate` and `settings` (JSON). Load one with numpy.load.
Outputs written with the same settings (model, features, mode, weights) are skipped, so an
interrupted run resumes; outputs of other settings stop the run before any work, and
--overwrite recomputes them. Files that cannot be read are listed at the end (exit code
1), as are files in the folders that are not audio or video. Ctrl-C says how many outputs
were saved (exit code 130).
"""

_TAG_EXAMPLES = f"""examples:
  hear-mn tag dog.wav --model mn10_e1_l
  hear-mn tag recordings/ --model {DEFAULT_CONFIG} --top-k 3 --window 5
  hear-mn tag street.flac --model mn04_e1_l --json > tags.json

Scores are the sigmoid of the model's 527 AudioSet logits. Class names come from AudioSet's
class_labels_indices.csv, downloaded once into the weights cache (or found in
$HEAR_MN_WEIGHTS_DIR; or give it with --labels). Only MobileNet models can tag
({", ".join(AUDIOMLP_CONFIGS)} have no classifier).
"""

_VALIDATE_EXAMPLES = """examples:
  hear-mn validate hear_mn.mn04_e1_l
  hear-mn validate hear_mn.mn40_ext_e1_l -m ~/weights/mn40_as_ext_mAP_487.pt
  hear-mn validate path/to/my_module.py
  hear-mn validate hear_mn.mn10_all_b_mel_avgs_hop5 --random-weights   # no weights needed

Checks what hear-validator checks, without TensorFlow: the module imports and has
load_model, get_scene_embeddings and get_timestamp_embeddings; the model's sample_rate
is one of HEAR's rates and its embedding sizes are positive ints; on random audio of two
lengths the outputs are float32 tensors of the right shapes, timestamps are evenly spaced
within the audio, and results do not depend on the batch size. Exit code 0 when all pass.
"""


def _wrap(text: str) -> str:
    return textwrap.fill(text, 79)


def _add_model_options(parser: argparse.ArgumentParser, *, features: bool) -> None:
    parser.add_argument(
        "--model",
        default=DEFAULT_CONFIG,
        metavar="NAME",
        help=f"configuration name (see `hear-mn list`; default {DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "--weights",
        metavar="FILE",
        help="checkpoint file to load instead of the released weights",
    )
    if features:
        parser.add_argument(
            "--features",
            metavar="F",
            help="another feature set for the model's checkpoint, e.g. e1_l_all_se (MobileNets)",
        )
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=8,
        metavar="N",
        help="clips of equal length per forward pass (default 8)",
    )
    parser.add_argument(
        "--threads",
        type=_positive_int,
        metavar="N",
        help="torch threads (default: every CPU core this process may use; OpenMP threads "
        "wait passively unless OMP_WAIT_POLICY is set, so a busy machine slows them little)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``hear-mn`` (exposed for documentation tools)."""
    from hear_mn import __version__

    formatter = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog=PROG,
        description=_wrap(
            "Audio embeddings (EfficientAT MobileNets, Audio-MLP) from audio files, "
            "AudioSet tags, and a HEAR API validator."
        ),
        epilog=(
            "examples:\n"
            "  hear-mn list\n"
            "  hear-mn embed recordings/ --model mn10_e1_l --out embeddings/\n"
            "  hear-mn tag dog.wav --model mn10_e1_l\n"
            "  hear-mn validate hear_mn.mn04_e1_l\n\n"
            "Run `hear-mn COMMAND --help` for a command's options."
        ),
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log more (-vv: debug) and show tracebacks of errors",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    listing = commands.add_parser(
        "list",
        help="named configurations: sizes, parameters, MACs, weights",
        description=_wrap(
            "Every named configuration (each has a HEAR module hear_mn.<model>), by group: "
            "sample rate, embedding sizes, parameters and multiply-accumulates for 10 s of "
            "audio (both counted from the model; MACs only of the layers the features need), and "
            "whether its weights file is in $HEAR_MN_WEIGHTS_DIR ('offline'), in the cache "
            "('cached') or still to be downloaded ('missing')."
        ),
        epilog=_LIST_EXAMPLES,
        formatter_class=formatter,
    )
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.add_argument(
        "--group",
        choices=sorted(GROUP_TITLES),
        help="only one group: "
        + "; ".join(f"{name}: {title}" for name, title in GROUP_TITLES.items()),
    )
    listing.set_defaults(handler=_cmd_list)

    embed = commands.add_parser(
        "embed",
        help="audio files -> .npz embeddings",
        description=_wrap(
            "Embed audio files (any format soundfile reads: wav, flac, ogg, mp3, ...; else "
            "FFmpeg through PyAV: m4a, aac, opus, webm, and the audio of video files; any "
            "sample rate, resampled with soxr; any number of channels, mixed to mono). "
            "Directories are searched recursively."
        ),
        epilog=_EMBED_EXAMPLES,
        formatter_class=formatter,
    )
    embed.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files or directories")
    _add_model_options(embed, features=True)
    embed.add_argument(
        "--timestamps",
        action="store_true",
        help="timestamp embeddings (T, D) and their times instead of one scene embedding",
    )
    embed.add_argument(
        "--out", default="embeddings", metavar="DIR", help="output directory (default embeddings)"
    )
    embed.add_argument(
        "--overwrite", action="store_true", help="recompute outputs that already exist"
    )
    embed.set_defaults(handler=_cmd_embed)

    tag = commands.add_parser(
        "tag",
        help="AudioSet tags of audio files",
        description=_wrap("The top AudioSet classes of each file, or of each window of a file."),
        epilog=_TAG_EXAMPLES,
        formatter_class=formatter,
    )
    tag.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files or directories")
    _add_model_options(tag, features=False)
    tag.add_argument(
        "--top-k", type=_positive_int, default=5, metavar="K", help="classes shown (default 5)"
    )
    tag.add_argument(
        "--window",
        type=_positive_float,
        metavar="SECONDS",
        help="tag consecutive windows of this length instead of whole files",
    )
    tag.add_argument("--json", action="store_true", help="print JSON instead of a table")
    tag.add_argument(
        "--labels",
        metavar="CSV",
        help="AudioSet class_labels_indices.csv to use (default: downloaded and cached)",
    )
    tag.set_defaults(handler=_cmd_tag)

    validate = commands.add_parser(
        "validate",
        help="check a HEAR module the way hear-validator does",
        description=_wrap("Check that a Python module implements the HEAR API correctly."),
        epilog=_VALIDATE_EXAMPLES,
        formatter_class=formatter,
    )
    validate.add_argument(
        "module", metavar="MODULE", help="module name (hear_mn.mn04_e1_l) or path to a .py file"
    )
    validate.add_argument(
        "-m",
        "--model",
        dest="model_file",
        metavar="WEIGHTS",
        default="",
        help="file passed to load_model (default: load_model() with no argument)",
    )
    validate.add_argument(
        "--random-weights",
        action="store_true",
        help="load_model(pretrained=False): check the API without any weights file "
        "(hear-mn modules)",
    )
    validate.set_defaults(handler=_cmd_validate)
    return parser


# --------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hear-mn`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except CLIError as error:
        _err(str(error))
        return error.code
    except SystemExit as exit_:  # --help and --version
        return exit_.code if isinstance(exit_.code, int) else EXIT_OK

    _passive_waiting()
    package_logger = logging.getLogger("hear_mn")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(message)s"))
    level = logging.WARNING if args.verbose == 0 else logging.INFO
    if args.verbose > 1:
        level = logging.DEBUG
    previous_level = package_logger.level
    package_logger.addHandler(handler)
    package_logger.setLevel(level)
    try:
        return int(args.handler(args))
    except CLIError as error:
        if args.verbose:
            traceback.print_exc()
        _err(f"{PROG} {args.command}: error: {error}")
        return error.code
    except KeyboardInterrupt:
        _err(f"{PROG}: interrupted")
        return EXIT_INTERRUPTED
    except Exception as error:  # anything unexpected: one line, the traceback with -v
        if args.verbose:
            traceback.print_exc()
        _err(
            f"{PROG} {args.command}: error: {type(error).__name__}: {error}"
            + ("" if args.verbose else " (run with -v for the traceback)")
        )
        return EXIT_FAILED
    finally:
        package_logger.removeHandler(handler)
        package_logger.setLevel(previous_level)
