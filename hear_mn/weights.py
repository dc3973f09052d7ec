"""Pretrained weights: where they come from, where they are cached, and how they are checked.

Lookup order for a released checkpoint (:func:`resolve_weights`):

1. every directory listed in ``$HEAR_MN_WEIGHTS_DIR`` (``os.pathsep``-separated), for
   checkpoints the user downloaded by hand (machines without internet);
2. the cache directory (:func:`cache_dir`): ``$HEAR_MN_HOME``, else
   ``$XDG_CACHE_HOME/hear_mn``, else ``~/.cache/hear_mn``;
3. a download into the cache, unless ``download=False`` or ``$HEAR_MN_OFFLINE`` is set.

Downloads go to a temporary file next to the destination and are moved into place only
after their length and SHA-256 have been checked, so an interrupted download never leaves
a partial checkpoint behind. Checkpoints are always read with ``weights_only=True``: loading
weights must never run code from the file.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import torch

__all__ = [
    "WeightsError",
    "WeightsSpec",
    "WeightsUnavailableError",
    "cache_dir",
    "download_file",
    "fetch_weights",
    "load_into",
    "load_state_dict_file",
    "offline_dirs",
    "resolve_weights",
    "sha256_of",
]

logger = logging.getLogger(__name__)

ENV_HOME = "HEAR_MN_HOME"
ENV_WEIGHTS_DIR = "HEAR_MN_WEIGHTS_DIR"
ENV_OFFLINE = "HEAR_MN_OFFLINE"
ENV_QUIET = "HEAR_MN_QUIET"

_BLOCK = 1 << 20  # 1 MiB, for hashing and for download chunks
_MAX_LISTED = 8  # how many keys of each kind an error message lists
_WRAPPER_KEYS = ("model_state_dict", "state_dict")
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class WeightsSpec:
    """A released checkpoint file, described as data.

    ``state_dict_key`` names the entry that holds the state dict when the file is a dict
    wrapping it (Audio-MLP's ``{"model_state_dict": ...}``); ``None`` means the file is the
    state dict itself (EfficientAT). ``sha256`` and ``num_bytes`` are checked when known.
    """

    file_name: str
    url: str
    sha256: str | None = None
    num_bytes: int | None = None
    state_dict_key: str | None = None
    license: str = ""
    meta: dict = field(default_factory=dict, compare=False, hash=False)


class WeightsError(RuntimeError):
    """A weights file is unusable: corrupt, truncated, wrong hash, foreign or mismatched."""


class WeightsUnavailableError(WeightsError):
    """A weights file is not present locally and cannot be downloaded."""


# --------------------------------------------------------------------------- locations


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def cache_dir() -> Path:
    """Directory where downloaded checkpoints are kept (read from the environment now)."""
    home = os.environ.get(ENV_HOME, "").strip()
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "hear_mn"


def offline_dirs() -> list[Path]:
    """Directories from ``$HEAR_MN_WEIGHTS_DIR`` holding checkpoints, searched before the cache."""
    raw = os.environ.get(ENV_WEIGHTS_DIR, "")
    return [Path(part).expanduser() for part in raw.split(os.pathsep) if part.strip()]


# --------------------------------------------------------------------------- hashing


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _same_hash(expected: str, actual: str) -> bool:
    return expected.strip().lower() == actual.lower()


def _check_local_file(path: Path, spec: WeightsSpec) -> str | None:
    """Return why ``path`` does not match ``spec`` (size or hash), or None when it does."""
    if spec.num_bytes is not None:
        size = path.stat().st_size
        if size != spec.num_bytes:
            return f"it has {size} bytes, expected {spec.num_bytes}"
    if spec.sha256:
        actual = sha256_of(path)
        if not _same_hash(spec.sha256, actual):
            return f"its sha256 is {actual}, expected {spec.sha256.lower()}"
    return None


# --------------------------------------------------------------------------- progress


def _human(num: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if num < 1024 or unit == "GiB":
            return f"{num:.0f} {unit}" if unit == "B" else f"{num:.1f} {unit}"
        num /= 1024
    raise AssertionError("unreachable")


class _ProgressBar:
    """Minimal one-line progress display on stderr (``\\r`` updates)."""

    _WIDTH = 30

    def __init__(self, label: str, total: int | None, stream: IO[str]) -> None:
        self.label = label
        self.total = total if total and total > 0 else None
        self.stream = stream
        self.done = 0
        self._last = 0.0

    def update(self, num_bytes: int) -> None:
        self.done += num_bytes
        now = time.monotonic()
        if now - self._last >= 0.1:
            self._last = now
            self._draw()

    def close(self) -> None:
        self._draw()
        self.stream.write("\n")
        self.stream.flush()

    def _draw(self) -> None:
        if self.total:
            frac = min(self.done / self.total, 1.0)
            filled = int(frac * self._WIDTH)
            bar = "#" * filled + "-" * (self._WIDTH - filled)
            text = (
                f"\r{self.label} [{bar}] {_human(self.done)} / {_human(self.total)}"
                f" {frac * 100:3.0f}%"
            )
        else:
            text = f"\r{self.label} {_human(self.done)}"
        self.stream.write(text)
        self.stream.flush()


def _want_progress(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    if os.environ.get(ENV_QUIET, "").strip():
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):
        return False


# --------------------------------------------------------------------------- download


def _content_length(response: object) -> int | None:
    headers = getattr(response, "headers", None)
    value = headers.get("Content-Length") if headers is not None else None
    try:
        length = int(value) if value is not None else None
    except ValueError:
        return None
    return length if length is not None and length >= 0 else None


def _fsync_dir(directory: Path) -> None:
    """Best effort: make the rename durable (not possible on every platform)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def download_file(
    url: str,
    destination: Path,
    *,
    sha256: str | None = None,
    num_bytes: int | None = None,
    progress: bool | None = None,
    timeout: float = 60,
) -> Path:
    """Download ``url`` to ``destination`` atomically and return ``destination``.

    The body is streamed to a temporary file in the destination directory, fsynced, and
    checked against the server's Content-Length, ``num_bytes`` and ``sha256`` (when
    given) before it is moved into place with :func:`os.replace`. On failure the
    temporary file is removed and ``destination`` is not touched.

    Raises :class:`WeightsUnavailableError` when the URL cannot be fetched (network or
    HTTP error) and :class:`WeightsError` when the received data fails a check.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    request = urllib.request.Request(url, headers={"User-Agent": "hear_mn"})
    logger.info("downloading %s to %s", url, destination)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise WeightsUnavailableError(f"could not download {url}: {exc}") from exc

    tmp_path: Path | None = None
    bar: _ProgressBar | None = None
    received = 0
    try:
        with (
            response,
            tempfile.NamedTemporaryFile(
                dir=destination.parent, prefix=f".{destination.name}.", suffix=".part", delete=False
            ) as tmp,
        ):
            tmp_path = Path(tmp.name)
            expected_len = _content_length(response)
            if _want_progress(progress):
                bar = _ProgressBar(destination.name, expected_len or num_bytes, sys.stderr)
            digest = hashlib.sha256()
            try:
                while chunk := response.read(_BLOCK):
                    tmp.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            except http.client.IncompleteRead as exc:
                received += len(exc.partial)
                if expected_len is None:
                    expected_len = received + (exc.expected or 0)
            except (OSError, http.client.HTTPException) as exc:
                raise WeightsUnavailableError(
                    f"download of {url} was interrupted after {received} bytes: {exc}; "
                    "run again to retry"
                ) from exc
            tmp.flush()
            os.fsync(tmp.fileno())
        if bar is not None:
            bar.close()
            bar = None

        if expected_len is not None and received != expected_len:
            raise WeightsError(
                f"download of {url} was truncated: got {received} of {expected_len} bytes; "
                "run again to retry (nothing was saved)"
            )
        if num_bytes is not None and received != num_bytes:
            raise WeightsError(
                f"download of {url} has the wrong size: got {received} bytes, expected "
                f"{num_bytes}; run again to retry, and report it if it persists "
                "(nothing was saved)"
            )
        if sha256 and not _same_hash(sha256, digest.hexdigest()):
            raise WeightsError(
                f"download of {url} has the wrong sha256: expected {sha256.lower()}, got "
                f"{digest.hexdigest()}; the file may be corrupt or the release may have "
                "changed; run again to retry (nothing was saved)"
            )
        os.replace(tmp_path, destination)
    except BaseException:
        if bar is not None:
            try:
                bar.close()
            except (OSError, ValueError):
                pass
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)
        raise
    _fsync_dir(destination.parent)
    logger.info("saved %s (%d bytes)", destination, received)
    return destination


# --------------------------------------------------------------------------- resolve


def _unavailable(spec: WeightsSpec, reason: str) -> WeightsUnavailableError:
    dirs = offline_dirs()
    listed = os.pathsep.join(str(d) for d in dirs) if dirs else "not set"
    return WeightsUnavailableError(
        f"weights file {spec.file_name!r} is not available: {reason}. "
        f"Download it from {spec.url} and put it in the cache directory {cache_dir()} "
        f"(i.e. {cache_dir() / spec.file_name}; set {ENV_HOME} to use another directory), "
        f"or in a directory listed in {ENV_WEIGHTS_DIR} "
        f"({os.pathsep!r}-separated; currently {listed})."
    )


def resolve_weights(
    spec: WeightsSpec, *, download: bool = True, progress: bool | None = None
) -> Path:
    """Return the local path of the checkpoint described by ``spec``.

    Looks in :func:`offline_dirs` first, then in :func:`cache_dir`, and downloads into
    the cache when the file is absent and downloading is allowed (``download=True`` and
    ``$HEAR_MN_OFFLINE`` not set). A found file is checked against ``spec.num_bytes`` and
    ``spec.sha256``: a bad file in an offline directory raises :class:`WeightsError` (it is
    left alone); a bad file in the cache is deleted and downloaded again.
    """
    for directory in offline_dirs():
        candidate = directory / spec.file_name
        if candidate.is_file():
            problem = _check_local_file(candidate, spec)
            if problem is not None:
                raise WeightsError(
                    f"weights file {candidate} does not match the release: {problem}. "
                    f"Replace it with a fresh copy from {spec.url} or remove it from "
                    f"{ENV_WEIGHTS_DIR}."
                )
            logger.debug("using %s from %s", spec.file_name, directory)
            return candidate

    cached = cache_dir() / spec.file_name
    stale_reason = ""
    if cached.is_file():
        problem = _check_local_file(cached, spec)
        if problem is None:
            logger.debug("using cached %s", cached)
            return cached
        logger.warning("removing corrupt cached weights file %s: %s", cached, problem)
        cached.unlink(missing_ok=True)
        stale_reason = f"the cached copy {cached} was corrupt ({problem}) and was removed, and "

    if not download:
        raise _unavailable(spec, stale_reason + "downloading was disabled (download=False)")
    if _env_flag(ENV_OFFLINE):
        raise _unavailable(
            spec, stale_reason + f"downloading is disabled because {ENV_OFFLINE} is set"
        )
    try:
        return download_file(
            spec.url,
            cached,
            sha256=spec.sha256,
            num_bytes=spec.num_bytes,
            progress=progress,
        )
    except WeightsUnavailableError as exc:
        raise _unavailable(spec, stale_reason + str(exc)) from exc


# --------------------------------------------------------------------------- loading


def _describe_load_failure(path: Path, exc: Exception) -> str:
    text = str(exc)
    if "Unsupported global" in text:
        match = re.search(r"GLOBAL (\S+)", text)
        what = f" ({match.group(1)})" if match else ""
        return (
            f"weights file {path} contains Python objects other than tensors{what}, which "
            "are refused because loading a checkpoint must never run code; it is not a "
            "plain state dict. Use a checkpoint that holds only tensors (re-save "
            "model.state_dict() with torch.save)."
        )
    return (
        f"weights file {path} is not a readable torch checkpoint (corrupt, truncated or "
        f"not a checkpoint at all: {type(exc).__name__}: {text.splitlines()[0] if text else ''}"
        "). If it is a downloaded weights file, delete it and download it again."
    )


def _unwrap(obj: object, path: Path, spec: WeightsSpec | None) -> object:
    key = spec.state_dict_key if spec is not None else None
    if key:
        if not isinstance(obj, Mapping) or key not in obj:
            found = sorted(map(str, obj.keys()))[:_MAX_LISTED] if isinstance(obj, Mapping) else []
            raise WeightsError(
                f"weights file {path} has no entry {key!r} holding the state dict "
                f"(found {type(obj).__name__} with keys {found}); is this the right file "
                f"for {spec.file_name if spec else 'this model'}?"
            )
        return obj[key]
    if isinstance(obj, Mapping) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        wrappers = [k for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)]
        if len(wrappers) == 1:
            logger.debug("unwrapping %r from %s", wrappers[0], path)
            return obj[wrappers[0]]
    return obj


def _check_state_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping):
        raise WeightsError(
            f"weights file {path} holds a {type(obj).__name__}, not a state dict (a mapping of "
            "parameter names to tensors); is it a checkpoint for this library?"
        )
    bad = [
        f"{k!r}: {type(v).__name__}"
        for k, v in obj.items()
        if not isinstance(k, str) or not isinstance(v, torch.Tensor)
    ]
    if bad:
        more = f" (and {len(bad) - _MAX_LISTED} more)" if len(bad) > _MAX_LISTED else ""
        raise WeightsError(
            f"weights file {path} is not a state dict of tensors: {len(bad)} entries are not "
            f"str -> Tensor: {', '.join(bad[:_MAX_LISTED])}{more}; is it a checkpoint for "
            "this library (set WeightsSpec.state_dict_key if the state dict is nested)?"
        )
    return obj if isinstance(obj, dict) else dict(obj)


def load_state_dict_file(path: Path, spec: WeightsSpec | None = None) -> dict[str, torch.Tensor]:
    """Load a state dict from ``path`` safely (``weights_only=True``, on the CPU).

    Unwraps ``spec.state_dict_key`` when set, or else a lone ``"model_state_dict"`` /
    ``"state_dict"`` entry. Raises :class:`WeightsError` when the file is missing, is not
    a readable checkpoint, holds non-tensor objects, or is not a ``str -> Tensor`` mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(
            f"weights file {path} does not exist; check the path, or pass no path to use "
            "the released weights"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad files; chain the original
        raise WeightsError(_describe_load_failure(path, exc)) from exc
    return _check_state_dict(_unwrap(obj, path, spec), path)


def _listing(title: str, items: list[str]) -> str:
    shown = "\n    ".join(items[:_MAX_LISTED])
    more = f"\n    ... and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else ""
    return f"  {len(items)} {title}:\n    {shown}{more}"


def load_into(
    module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str
) -> None:
    """Load ``state_dict`` into ``module`` strictly, explaining any key or shape mismatch.

    ``source`` (usually the file name) prefixes the error message.
    """
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = []
    for key, value in state_dict.items():
        if key in expected:
            got = tuple(getattr(value, "shape", ()))
            want = tuple(expected[key].shape)
            if got != want:
                mismatched.append(f"{key}: checkpoint {got} vs model {want}")
    if missing or unexpected or mismatched:
        parts = [
            (
                f"{source}: checkpoint does not fit {type(module).__name__} "
                "(is this a checkpoint for a different model or width?)"
            )
        ]
        if missing:
            parts.append(_listing("missing keys (in the model, not in the checkpoint)", missing))
        if unexpected:
            parts.append(
                _listing("unexpected keys (in the checkpoint, not in the model)", unexpected)
            )
        if mismatched:
            parts.append(_listing("shape mismatches", mismatched))
        raise WeightsError("\n".join(parts))
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{source}: could not load the checkpoint: {exc}") from exc


def fetch_weights(
    spec: WeightsSpec,
    path: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    progress: bool | None = None,
) -> dict[str, torch.Tensor]:
    """Return the state dict for ``spec``, from ``path`` when given, else the release.

    A user-supplied ``path`` is not required to match ``spec.sha256``; a warning is logged
    when it has the release's file name but a different hash.
    """
    if path is not None and os.fspath(path) != "":
        local = Path(path).expanduser()
        state = load_state_dict_file(local, spec)
        if spec.sha256 and local.name == spec.file_name:
            actual = sha256_of(local)
            if not _same_hash(spec.sha256, actual):
                logger.warning(
                    "%s has the release file name but its sha256 is %s, not %s; using it anyway",
                    local,
                    actual,
                    spec.sha256.lower(),
                )
        return state
    resolved = resolve_weights(spec, download=download, progress=progress)
    try:
        return load_state_dict_file(resolved, spec)
    except WeightsError:
        if resolved.parent == cache_dir():
            logger.warning("removing %s from the cache: it is not a usable checkpoint", resolved)
            resolved.unlink(missing_ok=True)
        raise
