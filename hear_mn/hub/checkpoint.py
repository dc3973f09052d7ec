"""Reading a checkpoint file safely and fitting its state dict to a model.

Checkpoints are always read with ``weights_only=True`` (loading weights must never run code
from the file); a file refused for holding other Python objects is called unsafe and names
them, found by reading its pickle's opcodes (of any protocol), never by unpickling. A file is
read once, whole, and loaded from those bytes (:func:`load_state_dict_bytes`), so what
:mod:`hear_mn.hub.fetch` verified is what is loaded. A torch zip archive's CRC-32s are verified
before it is read, and a cut-off one is called truncated (:func:`archive_problem`). A state dict wrapped in a dict ("model_state_dict",
"state_dict", "model") is unwrapped, and the wrapper prefixes "module.", "model." and
"backbone." are removed before :func:`load_into` loads it strictly, explaining any key or
shape mismatch. No network or cache code here: see :mod:`hear_mn.hub.fetch`.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import pickletools
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

import torch

from hear_mn.hub.errors import BadFileError, FileError
from hear_mn.hub.locations import unreadable_error
from hear_mn.hub.regular_files import read_regular_file
from hear_mn.hub.weights_spec import WeightsSpec

__all__ = [
    "archive_problem",
    "load_into",
    "load_state_dict_bytes",
    "load_state_dict_file",
    "read_checkpoint",
]

logger = logging.getLogger(__name__)

_MAX_LISTED = 8  # how many keys of each kind an error message lists
_WRAPPER_KEYS = ("model_state_dict", "state_dict", "model")
# Prefixes that wrappers put before every key: DataParallel, training frameworks, and our
# own embedders (whose state_dict() holds the network under "backbone.").
_KNOWN_PREFIXES = ("module.", "model.", "backbone.")
_LEGACY_PICKLES = 4  # a pre-zip torch file: magic number, protocol, sys info, then the object
_ZIP_MAGIC = b"PK\x03\x04"
_TRUNCATED_ZIP = (
    "it is truncated: it starts as a torch zip checkpoint but its end (the zip directory) is "
    "missing, so it was cut short (an interrupted download or copy, or a full disk)"
)


def _starts_like_zip(data: bytes) -> bool:
    return data[:4] == _ZIP_MAGIC


def archive_problem(source: Path | bytes, *, require_zip: bool = False) -> str | None:
    """Why the torch zip checkpoint ``source`` (a path, or the file's bytes) is damaged (a
    CRC-32 fails, or it is truncated), or None.

    A file that is not a zip archive (a pre-1.6 torch file, or no checkpoint at all) has no
    CRCs to check: it is refused when ``require_zip``, else left to ``torch.load``.
    """
    if isinstance(source, Path):
        with open(source, "rb") as handle:
            return archive_problem(handle.read(), require_zip=require_zip)
    archive_file = io.BytesIO(source)
    if not zipfile.is_zipfile(archive_file):
        if _starts_like_zip(source):
            return _TRUNCATED_ZIP
        if require_zip:
            return "it is not a torch checkpoint (not a zip archive; an error page, perhaps)"
        return None
    try:
        with zipfile.ZipFile(archive_file) as archive:
            bad_entry = archive.testzip()
    except (zipfile.BadZipFile, EOFError, ValueError) as error:
        return f"it is truncated or damaged: its zip structure is broken ({error})"
    if bad_entry is not None:
        return (
            f"its entry {bad_entry!r} fails its CRC-32 check: the data changed after it was "
            "written (damaged in transfer or on disk)"
        )
    return None


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


def _globals_until_damage(stream: IO[bytes], count: int) -> list[str]:
    """The globals of up to ``count`` pickles in ``stream``, up to where it stops parsing
    (the end of a plain pickle, or damage): what was read before is still reported."""
    found: list[str] = []
    try:
        for name in _globals_in(stream, count):
            found.append(name)
    except Exception:  # noqa: BLE001  (any damage ends the scan; nothing was unpickled)
        pass
    return found


def _foreign_globals(data: bytes) -> list[str]:
    """The non-tensor globals a checkpoint's pickle refers to ([] if none or unreadable).

    A zip checkpoint's ``data.pkl``, else the file as pickles of any protocol: a pre-1.6
    torch file, or a plain pickle (whose first opcodes may be protocol 0's).
    """
    archive_file = io.BytesIO(data)
    try:
        if zipfile.is_zipfile(archive_file):
            with zipfile.ZipFile(archive_file) as archive:
                name = next(n for n in archive.namelist() if n.rpartition("/")[2] == "data.pkl")
                found = _globals_until_damage(io.BytesIO(archive.read(name)), 1)
        else:
            found = _globals_until_damage(io.BytesIO(data), _LEGACY_PICKLES)
    except (OSError, ValueError, StopIteration, EOFError, zipfile.BadZipFile):
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


def _damaged(path: Path, problem: str) -> str:
    return (
        f"weights file {path} is damaged: {problem}. If it is a downloaded weights file, "
        "delete it and download it again."
    )


def _describe_load_failure(path: Path, data: bytes, error: Exception) -> str:
    # A refusal of torch's safe unpickler is explained by reading the pickle's opcodes (the
    # globals it names), never by torch's message, which advises turning the check off.
    foreign = _foreign_globals(data) if isinstance(error, pickle.UnpicklingError) else []
    if foreign:
        listed = ", ".join(foreign[:_MAX_LISTED])
        return (
            f"weights file {path} is unsafe: it contains Python objects other than tensors "
            f"({listed}) and was refused for safety: loading them would run code from the "
            "file. It is not a plain state dict: use a checkpoint that holds only tensors "
            "(re-save model.state_dict() with torch.save) from a source you trust."
        )
    problem = archive_problem(data) if _starts_like_zip(data) else None
    if problem is not None:
        return _damaged(path, problem)
    text = str(error)
    return (
        f"weights file {path} is not a readable torch checkpoint (truncated, corrupt or "
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
            raise BadFileError(
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
        raise BadFileError(
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
        raise BadFileError(
            f"weights file {path} is not a state dict of tensors: {len(bad)} entries are not "
            f"str -> Tensor: {', '.join(bad[:_MAX_LISTED])}{more}; is it a checkpoint for "
            "this library (set WeightsSpec.state_dict_key if the state dict is nested)?"
        )
    return obj if isinstance(obj, dict) else dict(obj)


def load_state_dict_file(
    path: str | os.PathLike[str],
    spec: WeightsSpec | None = None,
    *,
    verified: bool = False,
) -> dict[str, torch.Tensor]:
    """Load a state dict from ``path`` safely (``weights_only=True``, on the CPU).

    The file is read once, whole (a directory, FIFO or device is refused, never read), and
    loaded by :func:`load_state_dict_bytes`. Raises :class:`BadFileError` when the file is
    corrupt, truncated, not a readable checkpoint, holds non-tensor objects, or is not a
    ``str -> Tensor`` mapping; :class:`FileAccessError` when it cannot be read;
    :class:`FileError` when it is missing or not a regular file.
    """
    path = Path(path)
    return load_state_dict_bytes(read_checkpoint(path), path, spec, verified=verified)


def read_checkpoint(path: Path) -> bytes:
    """The bytes of the checkpoint file the user named, read once, whole.

    Raises :class:`FileError` when it is missing or not a regular file,
    :class:`FileAccessError` when it cannot be read (it is left as it is).
    """
    try:
        return read_regular_file(path, "weights")
    except FileNotFoundError as error:
        raise FileError(
            f"weights file {path} does not exist; check the path, or pass no path to use "
            "the released weights"
        ) from error
    except OSError as error:
        raise unreadable_error(path, error, "weights") from error


def load_state_dict_bytes(
    data: bytes, path: Path, spec: WeightsSpec | None = None, *, verified: bool = False
) -> dict[str, torch.Tensor]:
    """Load a state dict from ``data``, the bytes of the checkpoint file ``path``, safely.

    A torch zip checkpoint's CRC-32s are verified first, unless ``verified`` (the caller
    already checked these bytes). Unwraps ``spec.state_dict_key`` when set, or else a lone
    ``"model_state_dict"`` / ``"state_dict"`` / ``"model"`` entry. Raises
    :class:`BadFileError` as :func:`load_state_dict_file` does.
    """
    problem = None if verified else archive_problem(data)
    if problem is not None:
        raise BadFileError(_damaged(path, problem))
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except Exception as error:  # torch raises many types for bad bytes; chain the original
        raise BadFileError(_describe_load_failure(path, data, error)) from error
    return _check_state_dict(_unwrap(obj, path, spec), path)


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
) -> BadFileError | None:
    """A short error when no key fits because the checkpoint's keys carry another prefix."""
    keys, expected = list(state_dict), list(module.state_dict())
    found = _common_prefix(keys)
    wanted = _common_prefix(expected)
    if found.endswith(wanted):
        found = found[: len(found) - len(wanted)]
    if not keys or not expected or not found or set(keys) & set(expected):
        return None
    return BadFileError(
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
    (usually the file name) prefixes the error message (a :class:`BadFileError`).
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
        raise BadFileError("\n".join(parts))
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        raise BadFileError(f"{source}: could not load the checkpoint: {error}") from error
