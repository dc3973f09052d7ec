"""Pretrained weights: where they come from, where they are cached, and how they are checked.

Lookup order for a released checkpoint (:func:`find_weights`, :func:`resolve_weights`):

1. every directory listed in ``$HEAR_MN_WEIGHTS_DIR`` (``os.pathsep``-separated), for
   checkpoints the user downloaded by hand (machines without internet);
2. the checkpoints shipped inside the package (:data:`PACKAGED_DIR`: the two Audio-MLP
   files, CC BY-SA 4.0, see ``ATTRIBUTION.md`` there), so that they work offline;
3. the cache directory (:func:`cache_dir`): ``$HEAR_MN_HOME``, else
   ``$XDG_CACHE_HOME/hear_mn``, else ``~/.cache/hear_mn``;
4. a download into the cache, unless ``download=False`` or ``$HEAR_MN_OFFLINE`` is set.

Integrity: a file with a SHA-256 on record (``WeightsSpec.sha256``) is checked against it.
The others (the EfficientAT release lists none) are torch zip archives with a CRC-32 per
entry: the CRCs are verified before a download enters the cache and when a file is loaded,
and the SHA-256 of the first verified copy is recorded next to it (``<file>.sha256``) and
checked on later loads. Downloads go to a temporary file that is renamed into place only
after these checks, so an interrupted or corrupt download never leaves anything behind.

Only the cache is ever cleaned: a cached file proven bad (corrupt, unsafe, or refused by the
model) is removed with a message naming it. Files the user gave (a path or
``$HEAR_MN_WEIGHTS_DIR``) and shipped files are refused but never deleted, and a file that
cannot be read (permissions, I/O errors) is reported as such and left alone. Checkpoints are
always read with ``weights_only=True``: loading weights must never run code from the file.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import io
import logging
import os
import pickle
import pickletools
import secrets
import sys
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

import torch
from tqdm import tqdm

__all__ = [
    "PACKAGED_DIR",
    "BadWeightsError",
    "StateDictCheck",
    "WeightsAccessError",
    "WeightsError",
    "WeightsSpec",
    "WeightsUnavailableError",
    "cache_dir",
    "download_file",
    "fetch_weights",
    "find_weights",
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

# Checkpoints shipped with the package (looked up after $HEAR_MN_WEIGHTS_DIR).
PACKAGED_DIR = Path(__file__).parent / "checkpoints"

_BLOCK = 1 << 20  # 1 MiB, for hashing and for download chunks
_MAX_LISTED = 8  # how many keys of each kind an error message lists
_WRAPPER_KEYS = ("model_state_dict", "state_dict", "model")
# Prefixes that wrappers put before every key: DataParallel, training frameworks, and our
# own embedders (whose state_dict() holds the network under "backbone.").
_KNOWN_PREFIXES = ("module.", "model.", "backbone.")
_LEGACY_PICKLES = 4  # a pre-zip torch file: magic number, protocol, sys info, then the object
_TRUE = {"1", "true", "yes", "on"}

# Where a found file comes from; only files in the cache are ever deleted.
OFFLINE, SHIPPED, CACHED = "offline", "shipped", "cached"


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


class BadWeightsError(WeightsError):
    """A weights file was read and its contents are refused: corrupt, unsafe or the wrong model.

    The one kind of error that proves a cached file bad, so the only one that removes it.
    """


class WeightsAccessError(WeightsError):
    """A weights file or folder cannot be read or written (permissions, I/O errors).

    Says nothing about the file's contents, so the file is never deleted for it.
    """


class StateDictCheck(Protocol):
    """Loads a state dict into a model, raising :class:`WeightsError` when it does not fit."""

    def __call__(self, state_dict: dict[str, torch.Tensor], *, source: str) -> None: ...


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


def find_weights(file_name: str) -> tuple[str, Path] | None:
    """Where ``file_name`` is found locally, in lookup order, without checking or downloading.

    Returns ``("offline" | "shipped" | "cached", path)``, or None when it is nowhere.
    """
    candidates = [(OFFLINE, directory) for directory in offline_dirs()]
    candidates += [(SHIPPED, PACKAGED_DIR), (CACHED, cache_dir())]
    for origin, directory in candidates:
        if (directory / file_name).is_file():
            return origin, directory / file_name
    return None


# --------------------------------------------------------------------------- errors


def _reason(error: OSError) -> str:
    """An OSError as its errno text and name, e.g. "Permission denied [EACCES]"."""
    name = errno.errorcode.get(error.errno, "") if error.errno else ""
    return f"{error.strerror or error} [{name}]" if name else str(error.strerror or error)


def _unreadable(path: Path, error: OSError) -> WeightsAccessError:
    return WeightsAccessError(
        f"cannot read weights file {path}: {_reason(error)}. It was left as it is. Check that "
        "this process may read it (the permissions of the file and its folders, the disk or "
        f"network share), or use another copy: a directory listed in {ENV_WEIGHTS_DIR}, "
        f"another cache directory ({ENV_HOME}), or a path to the file."
    )


def _unwritable(directory: Path, error: OSError) -> WeightsAccessError:
    return WeightsAccessError(f"cannot write to directory {directory}: {_reason(error)}")


# --------------------------------------------------------------------------- integrity


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


def _archive_problem(path: Path, *, require_zip: bool = False) -> str | None:
    """Why the torch zip checkpoint at ``path`` is damaged (a CRC-32 fails), or None.

    A file that is not a zip archive (a pre-1.6 torch file, or no checkpoint at all) has no
    CRCs to check: it is refused when ``require_zip``, else left to ``torch.load``.
    """
    if not zipfile.is_zipfile(path):
        if require_zip:
            return "it is not a torch checkpoint (not a zip archive; an error page, perhaps)"
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            bad_entry = archive.testzip()
    except zipfile.BadZipFile as error:
        return f"its zip structure is damaged ({error})"
    if bad_entry is not None:
        return (
            f"its entry {bad_entry!r} fails its CRC-32 check: the data changed after it was "
            "written (damaged in transfer or on disk)"
        )
    return None


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _recorded_sha256(path: Path) -> str | None:
    record = _record_path(path)
    if not record.is_file():
        return None
    words = record.read_text(encoding="ascii", errors="replace").split()
    return words[0].lower() if words and len(words[0]) == 64 else None


def _record_sha256(path: Path) -> None:
    """Write ``<file>.sha256`` (``sha256sum`` format) for a verified file; best effort."""
    try:
        text = f"{sha256_of(path)}  {path.name}\n".encode("ascii")
        temp, handle = _new_temp_file(path.parent, _record_path(path).name)
        try:
            with handle:
                handle.write(text)
            os.replace(temp, _record_path(path))
        finally:
            temp.unlink(missing_ok=True)
    except OSError as error:
        logger.warning("could not record the sha256 of %s: %s", path, _reason(error))


def _integrity_problem(path: Path, spec: WeightsSpec, *, record: bool) -> str | None:
    """Why ``path`` is not an intact copy of ``spec``'s file, or None when it is.

    Size and SHA-256 when on record, else the SHA-256 recorded for the first verified copy
    (``record``: files in the cache), else the zip CRCs (then recorded when ``record``).
    Raises :class:`WeightsAccessError` when the file cannot be read.
    """
    try:
        problem = _check_local_file(path, spec)
        if problem is not None or spec.sha256:
            return problem
        recorded = _recorded_sha256(path) if record else None
        if recorded is not None:
            actual = sha256_of(path)
            if actual != recorded:
                return f"its sha256 is {actual}, not {recorded} as when it was first verified"
            return None
        problem = _archive_problem(path)
    except OSError as error:  # the file, or its recorded hash, cannot be read
        raise _unreadable(Path(error.filename or path), error) from error
    if problem is None and record:
        _record_sha256(path)
    return problem


# --------------------------------------------------------------------------- download


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


def _new_temp_file(directory: Path, name: str) -> tuple[Path, IO[bytes]]:
    """A new, empty ``.<name>.<random>.part`` in ``directory``, opened for writing.

    Created with mode 0o666 less the umask, like any file the user creates (tempfile's
    0o600 would leave cached weights unreadable to other users).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        path = directory / f".{name}.{secrets.token_hex(6)}.part"
        try:
            fd = os.open(path, flags, 0o666)
        except FileExistsError:
            continue
        return path, os.fdopen(fd, "wb")
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(directory))


def _receive(response: IO[bytes], url: str, sink: IO[bytes], bar: tqdm) -> tuple[int, str, int]:
    """Copy the response body to ``sink``: (bytes received, sha256, bytes announced or -1)."""
    expected = _content_length(response)
    digest = hashlib.sha256()
    received = 0
    while True:
        try:
            chunk = response.read(_BLOCK)
        except http.client.IncompleteRead as error:
            received += len(error.partial)
            if expected is None:
                expected = received + (error.expected or 0)
            break
        except (OSError, http.client.HTTPException) as error:
            raise WeightsUnavailableError(
                f"download of {url} was interrupted after {received} bytes: {error}; "
                "run again to retry"
            ) from error
        if not chunk:
            break
        sink.write(chunk)
        digest.update(chunk)
        received += len(chunk)
        bar.update(len(chunk))
    return received, digest.hexdigest(), -1 if expected is None else expected


def download_file(
    url: str,
    destination: Path,
    *,
    sha256: str | None = None,
    num_bytes: int | None = None,
    progress: bool | None = None,
    timeout: float = 60,
    check_archive: bool = False,
) -> Path:
    """Download ``url`` to ``destination`` atomically and return ``destination``.

    The body is streamed to a temporary file in the destination directory, fsynced, and
    checked against the server's Content-Length, ``num_bytes`` and ``sha256`` (when
    given) and, with ``check_archive``, the CRC-32s of a torch zip checkpoint, before it is
    moved into place with :func:`os.replace`. On failure the temporary file is removed and
    ``destination`` is not touched. A progress bar (tqdm, on stderr) is shown when
    ``progress`` is True, or when it is None, stderr is a terminal and ``$HEAR_MN_QUIET`` is
    unset.

    Raises :class:`WeightsUnavailableError` when the URL cannot be fetched (network or
    HTTP error), :class:`WeightsAccessError` when the destination directory cannot be
    written, and :class:`BadWeightsError` when the received data fails a check.
    """
    destination = Path(destination)
    directory = destination.parent
    request = urllib.request.Request(url, headers={"User-Agent": "hear_mn"})
    logger.info("downloading %s to %s", url, destination)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        temp, sink = _new_temp_file(directory, destination.name)
    except OSError as error:
        raise _unwritable(directory, error) from error
    try:
        with sink:
            try:
                response = urllib.request.urlopen(request, timeout=timeout)
            except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
                raise WeightsUnavailableError(f"could not download {url}: {error}") from error
            bar = tqdm(
                total=_content_length(response) or num_bytes,
                desc=destination.name,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
                disable=not _want_progress(progress),
            )
            with response, bar:
                received, digest, expected = _receive(response, url, sink, bar)
            sink.flush()
            os.fsync(sink.fileno())
        problem = _download_problem(received, expected, num_bytes, sha256, digest)
        if problem is None and check_archive:
            problem = _archive_problem(temp, require_zip=True)
        if problem is not None:
            raise BadWeightsError(
                f"download of {url} failed its checks: {problem}; run again to retry "
                "(nothing was saved)"
            )
        os.replace(temp, destination)
    except OSError as error:
        raise _unwritable(directory, error) from error
    finally:
        temp.unlink(missing_ok=True)
    _fsync_dir(directory)
    logger.info("saved %s (%d bytes)", destination, received)
    return destination


def _download_problem(
    received: int, expected: int, num_bytes: int | None, sha256: str | None, digest: str
) -> str | None:
    """What is wrong with a received body (length, size, hash), or None."""
    if expected >= 0 and received != expected:
        return f"it was truncated: got {received} of {expected} bytes"
    if num_bytes is not None and received != num_bytes:
        return (
            f"it has the wrong size: got {received} bytes, expected {num_bytes} (report it if "
            "this persists)"
        )
    if sha256 and not _same_hash(sha256, digest):
        return (
            f"it has the wrong sha256: expected {sha256.lower()}, got {digest}; the file may be "
            "corrupt or the release may have changed"
        )
    return None


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


def _remove_from_cache(path: Path) -> str:
    """Delete a cached file and its recorded hash; say what happened, for the message."""
    try:
        path.unlink(missing_ok=True)
        _record_path(path).unlink(missing_ok=True)
    except OSError as error:
        logger.warning("could not remove %s from the cache: %s", path, _reason(error))
        return f"could not remove {path} from the cache ({_reason(error)}): delete it by hand"
    logger.warning("removed %s from the cache", path)
    return f"removed {path} from the cache"


def _refuse_local(path: Path, origin: str, spec: WeightsSpec, problem: str) -> BadWeightsError:
    if origin == SHIPPED:
        advice = "the installation of hear-mn is damaged: reinstall it"
    else:
        advice = f"replace it with a fresh copy from {spec.url} or remove it from {ENV_WEIGHTS_DIR}"
    return BadWeightsError(
        f"weights file {path} is not a good copy of the release: {problem}. It was left as "
        f"it is; {advice}."
    )


def _locate(spec: WeightsSpec, *, download: bool, progress: bool | None) -> tuple[str, Path]:
    """The checked local copy of ``spec``'s file, downloading it when needed: (origin, path)."""
    found = find_weights(spec.file_name)
    stale_reason = ""
    if found is not None:
        origin, path = found
        problem = _integrity_problem(path, spec, record=origin == CACHED)
        if problem is None:
            logger.debug("using %s (%s)", path, origin)
            return found
        if origin != CACHED:
            raise _refuse_local(path, origin, spec, problem)
        logger.warning("cached weights file %s is corrupt: %s", path, problem)
        removal = _remove_from_cache(path)
        stale_reason = f"the cached copy {path} was corrupt ({problem}; {removal}), and "

    if not download:
        raise _unavailable(spec, stale_reason + "downloading was disabled (download=False)")
    if _env_flag(ENV_OFFLINE):
        raise _unavailable(
            spec, stale_reason + f"downloading is disabled because {ENV_OFFLINE} is set"
        )
    cached = cache_dir() / spec.file_name
    try:
        download_file(
            spec.url,
            cached,
            sha256=spec.sha256,
            num_bytes=spec.num_bytes,
            progress=progress,
            check_archive=not spec.sha256,
        )
    except WeightsAccessError as error:
        cause = error.__cause__
        reason = _reason(cause) if isinstance(cause, OSError) else str(error)
        raise WeightsAccessError(
            f"cannot write to the weights cache directory {cached.parent} ({reason}), so "
            f"{spec.file_name} cannot be downloaded. Set {ENV_HOME} to a writable folder, or "
            f"download {spec.url} yourself and put it in a directory listed in "
            f"{ENV_WEIGHTS_DIR}, or pass its path (load_model(path), create_model(..., "
            "weights=path))."
        ) from error
    except WeightsUnavailableError as error:
        raise _unavailable(spec, stale_reason + str(error)) from error
    if not spec.sha256:
        _record_sha256(cached)
    return CACHED, cached


def resolve_weights(
    spec: WeightsSpec, *, download: bool = True, progress: bool | None = None
) -> Path:
    """Return the local path of the checkpoint described by ``spec``, checked.

    Looks in :func:`offline_dirs`, the shipped checkpoints, then :func:`cache_dir`, and
    downloads into the cache when the file is absent and downloading is allowed
    (``download=True`` and ``$HEAR_MN_OFFLINE`` not set). A found file is checked (see the
    module's docstring): a bad file in an offline directory or the package raises
    :class:`BadWeightsError` and is left alone; a bad file in the cache is deleted and
    downloaded again.
    """
    return _locate(spec, download=download, progress=progress)[1]


# --------------------------------------------------------------------------- unsafe pickles


_STRING_OPCODES = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE"}
_STRING_OPCODES |= {"SHORT_BINUNICODE", "BINUNICODE8"}
_NO_PUSH_OPCODES = {"MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT", "FRAME", "PROTO"}


def _globals_in(stream: IO[bytes], count: int) -> Iterator[str]:
    """The globals ("module.name") that the next ``count`` pickles in ``stream`` refer to.

    Only reads opcodes (:func:`pickletools.genops`), never unpickles; raises ValueError on a
    stream that is no pickle.
    """
    for _ in range(count):
        pushed: list[object] = []  # what each opcode pushed, when it is a string
        memo: dict[object, object] = {}
        for opcode, argument, _ in pickletools.genops(stream):
            name = opcode.name
            if name == "GLOBAL" or name == "INST":
                yield str(argument).replace(" ", ".")
            elif name == "STACK_GLOBAL":
                module, qualname = pushed[-2:] if len(pushed) >= 2 else (None, None)
                yield f"{module}.{qualname}" if module and qualname else "<unknown global>"
            elif name == "MEMOIZE":
                memo[len(memo)] = pushed[-1] if pushed else None
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[argument] = pushed[-1] if pushed else None
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                pushed.append(memo.get(argument))
            elif name in _STRING_OPCODES:
                pushed.append(argument)
            elif name not in _NO_PUSH_OPCODES:
                pushed.append(None)


def _foreign_globals(path: Path) -> list[str]:
    """The non-tensor globals a checkpoint's pickle refers to ([] if none or unreadable)."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                name = next(n for n in archive.namelist() if n.rpartition("/")[2] == "data.pkl")
                stream: IO[bytes] = io.BytesIO(archive.read(name))
                found = list(_globals_in(stream, 1))
        else:
            with open(path, "rb") as stream:
                is_pickle = stream.read(1) == pickle.PROTO  # else garbage, no pickle at all
                stream.seek(0)
                found = list(_globals_in(stream, _LEGACY_PICKLES)) if is_pickle else []
    except (OSError, ValueError, StopIteration, zipfile.BadZipFile):
        return []
    return sorted({name for name in found if not _is_tensor_machinery(name)})


def _is_tensor_machinery(name: str) -> bool:
    """Whether a pickled global is what torch.save writes for tensors and state dicts."""
    if name == "collections.OrderedDict" or name.startswith("torch._utils._rebuild_"):
        return True
    module, _, attribute = name.rpartition(".")
    if module in ("torch", "torch.storage") and attribute.endswith("Storage"):
        return True
    value = getattr(torch, attribute, None) if module == "torch" else None
    return isinstance(value, torch.dtype) or value in (torch.Size, torch.device)


def _describe_load_failure(path: Path, error: Exception) -> str:
    foreign = _foreign_globals(path)  # found by reading the pickle, not torch's message
    if foreign:
        listed = ", ".join(foreign[:_MAX_LISTED])
        return (
            f"weights file {path} contains Python objects other than tensors ({listed}) and "
            "was refused for safety: loading them could run code from the file. It is not a "
            "plain state dict: use a checkpoint that holds only tensors (re-save "
            "model.state_dict() with torch.save) from a source you trust."
        )
    text = str(error)
    return (
        f"weights file {path} is not a readable torch checkpoint (corrupt, truncated or "
        f"not a checkpoint at all: {type(error).__name__}: "
        f"{text.splitlines()[0] if text else ''}). If it is a downloaded weights file, delete "
        "it and download it again."
    )


# --------------------------------------------------------------------------- loading


def _unwrap(obj: object, path: Path, spec: WeightsSpec | None) -> object:
    """The state dict inside a checkpoint: the spec's entry, a usual wrapper's, or itself."""
    key = spec.state_dict_key if spec is not None else None
    plain = isinstance(obj, Mapping) and all(isinstance(v, torch.Tensor) for v in obj.values())
    if key and not plain:  # a bare state dict (e.g. a model's own) is taken as it is
        if not isinstance(obj, Mapping) or key not in obj:
            found = sorted(map(str, obj.keys()))[:_MAX_LISTED] if isinstance(obj, Mapping) else []
            raise BadWeightsError(
                f"weights file {path} has no entry {key!r} holding the state dict "
                f"(found {type(obj).__name__} with keys {found}); is this the right file "
                f"for {spec.file_name if spec else 'this model'}?"
            )
        return obj[key]
    if isinstance(obj, Mapping) and not plain:
        wrappers = [k for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)]
        if len(wrappers) == 1:
            logger.debug("unwrapping %r from %s", wrappers[0], path)
            return obj[wrappers[0]]
    return obj


def _check_state_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping):
        raise BadWeightsError(
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
        raise BadWeightsError(
            f"weights file {path} is not a state dict of tensors: {len(bad)} entries are not "
            f"str -> Tensor: {', '.join(bad[:_MAX_LISTED])}{more}; is it a checkpoint for "
            "this library (set WeightsSpec.state_dict_key if the state dict is nested)?"
        )
    return obj if isinstance(obj, dict) else dict(obj)


def _load(path: Path, spec: WeightsSpec | None, *, checked: bool) -> dict[str, torch.Tensor]:
    """:func:`load_state_dict_file`; ``checked``: the file's integrity was already verified."""
    if not path.is_file():
        raise WeightsError(
            f"weights file {path} does not exist; check the path, or pass no path to use "
            "the released weights"
        )
    try:
        problem = None if checked else _archive_problem(path)
        if problem is not None:
            raise BadWeightsError(f"weights file {path} is corrupt: {problem}")
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except WeightsError:
        raise
    except OSError as error:
        raise _unreadable(path, error) from error
    except Exception as error:  # torch raises many types for bad files; chain the original
        raise BadWeightsError(_describe_load_failure(path, error)) from error
    return _check_state_dict(_unwrap(obj, path, spec), path)


def load_state_dict_file(path: Path, spec: WeightsSpec | None = None) -> dict[str, torch.Tensor]:
    """Load a state dict from ``path`` safely (``weights_only=True``, on the CPU).

    A torch zip checkpoint's CRC-32s are verified first. Unwraps ``spec.state_dict_key``
    when set, or else a lone ``"model_state_dict"`` / ``"state_dict"`` / ``"model"`` entry.
    Raises :class:`BadWeightsError` when the file is corrupt, not a readable checkpoint,
    holds non-tensor objects, or is not a ``str -> Tensor`` mapping;
    :class:`WeightsAccessError` when it cannot be read; :class:`WeightsError` when it is
    missing.
    """
    return _load(Path(path), spec, checked=False)


def _listing(title: str, items: list[str]) -> str:
    shown = "\n    ".join(items[:_MAX_LISTED])
    more = f"\n    ... and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else ""
    return f"  {len(items)} {title}:\n    {shown}{more}"


def _common_prefix(keys: list[str]) -> str:
    """The longest prefix ending in "." that every key starts with ("" when none)."""
    prefix = os.path.commonprefix(keys)
    return prefix[: prefix.rfind(".") + 1]


def _strip_known_prefixes(
    state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]
) -> Mapping[str, torch.Tensor]:
    """``state_dict`` without the wrapper prefixes (:data:`_KNOWN_PREFIXES`) on all its keys.

    A prefix is kept when the model's own keys all start with it too.
    """
    while state_dict.keys() != expected.keys():
        prefix = next(
            (
                p
                for p in _KNOWN_PREFIXES
                if all(k.startswith(p) for k in state_dict)
                and not all(k.startswith(p) for k in expected)
            ),
            None,
        )
        if prefix is None or not state_dict:
            break
        state_dict = {key[len(prefix) :]: value for key, value in state_dict.items()}
    return state_dict


def _prefix_mismatch(
    module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str
) -> BadWeightsError | None:
    """A short error when no key fits because the checkpoint's keys carry another prefix."""
    keys, expected = list(state_dict), list(module.state_dict())
    found = _common_prefix(keys)
    wanted = _common_prefix(expected)
    if found.endswith(wanted):
        found = found[: len(found) - len(wanted)]
    if not keys or not expected or not found or set(keys) & set(expected):
        return None
    return BadWeightsError(
        f"{source}: checkpoint does not fit {type(module).__name__}: none of its "
        f"{len(keys)} keys is a key of the model.\n"
        f"  checkpoint keys start with {found!r}, e.g. {keys[0]!r}\n"
        f"  the model expects keys like {expected[0]!r} ({len(expected)} keys)\n"
        f"  (the prefixes {', '.join(map(repr, _KNOWN_PREFIXES))} are removed automatically; "
        "is this a checkpoint for this model?)"
    )


def load_into(
    module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str
) -> None:
    """Load ``state_dict`` into ``module`` strictly, explaining any key or shape mismatch.

    Wrapper prefixes on every key ("module.", "model.", "backbone.") are removed first, so a
    DataParallel checkpoint or one of our embedders' own ``state_dict()`` loads. ``source``
    (usually the file name) prefixes the error message (a :class:`BadWeightsError`).
    """
    expected = module.state_dict()
    state_dict = _strip_known_prefixes(state_dict, expected)
    prefix_error = _prefix_mismatch(module, state_dict, source)
    if prefix_error is not None:
        raise prefix_error
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
        raise BadWeightsError("\n".join(parts))
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        raise BadWeightsError(f"{source}: could not load the checkpoint: {error}") from error


# --------------------------------------------------------------------------- fetch


def _load_verified(
    path: Path, spec: WeightsSpec, verify: StateDictCheck | None, *, checked: bool
) -> dict[str, torch.Tensor]:
    """Load ``path`` and hand it to ``verify``; any refusal becomes a :class:`BadWeightsError`."""
    state = _load(path, spec, checked=checked)
    if verify is not None:
        try:
            verify(state, source=str(path))
        except (BadWeightsError, WeightsAccessError):
            raise
        except WeightsError as error:
            raise BadWeightsError(str(error)) from error
    return state


def fetch_weights(
    spec: WeightsSpec,
    path: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    progress: bool | None = None,
    verify: StateDictCheck | None = None,
) -> dict[str, torch.Tensor]:
    """Return the state dict for ``spec``, from ``path`` when given, else the release.

    ``verify(state_dict, source=path)`` (e.g. a model's ``load_checkpoint``) is called with
    the loaded state dict and raises :class:`WeightsError` when it does not fit. A cached
    file that fails to load or is refused by ``verify`` is removed from the cache (the error
    names it); files the user gave and shipped files are never deleted. A user-supplied
    ``path`` is not required to match ``spec.sha256``; a warning is logged when it has the
    release's file name but a different hash.
    """
    if path is not None and os.fspath(path) != "":
        local = Path(path).expanduser()
        state = _load_verified(local, spec, verify, checked=False)
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
    origin, resolved = _locate(spec, download=download, progress=progress)
    try:
        return _load_verified(resolved, spec, verify, checked=True)
    except BadWeightsError as error:
        if origin != CACHED or spec.sha256:
            raise  # the user's or the package's file, or the release itself: keep it
        removal = _remove_from_cache(resolved)
        raise BadWeightsError(
            f"{error}\nhear_mn {removal}; the next call downloads it again (if this error "
            f"comes back, the file at {spec.url} is not a checkpoint for this model)."
        ) from error
