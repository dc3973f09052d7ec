"""Pretrained weights: the released checkpoint files, found, checked and loaded.

A checkpoint is a published file like any other (:mod:`hear_mn.hub.fetch`): it is looked for in
the directories of ``$HEAR_MN_WEIGHTS_DIR``, then among the checkpoints shipped inside the
package (the two Audio-MLP files, CC BY-SA 4.0, see ``ATTRIBUTION.md`` there), then in the
cache directory, and else downloaded into the cache (from ``$HEAR_MN_WEIGHTS_MIRROR`` when
set) unless ``download=False`` or ``$HEAR_MN_OFFLINE`` is set. It is read once, whole, and
the bytes checked are the bytes loaded, safely, by :mod:`hear_mn.hub.checkpoint`
(``weights_only=True``: loading weights must never run code from the file).

Integrity (:mod:`hear_mn.hub.integrity`): a file with a SHA-256 on record
(``WeightsSpec.sha256``, the Audio-MLP files) is pinned: checked against it. The EfficientAT
release lists no hashes: a download of one of its files is checked against the digest its
GitHub release publishes when there is one (:mod:`hear_mn.hub.published`), else trusted on
first use with a warning. Either way they are torch zip archives with a CRC-32 per entry, verified (with their
completeness) before a download enters the cache and when a file is loaded, and the SHA-256
of the first verified copy is recorded next to it (``<file>.sha256``, with its trust level)
and checked on later loads.

Only the cache is ever cleaned: a cached file proven bad (corrupt, unsafe, or refused by the
model) is removed with a message naming it. Files the user gave (a path or
``$HEAR_MN_WEIGHTS_DIR``) and shipped files are refused but never deleted, and a file that
cannot be read (permissions, I/O errors) is reported as such and left alone.

Loading one file walks down the package once: :func:`fetch_weights` asks
:mod:`hear_mn.hub.fetch` for the checked bytes (which uses ``locations``, ``regular_files``,
``integrity``, ``published`` and ``download``), then :mod:`hear_mn.hub.checkpoint` loads them;
nothing below calls back up. Errors are :mod:`hear_mn.hub.errors`' (:class:`FileError` and
its subclasses).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Protocol

import torch

from hear_mn.hub.checkpoint import archive_problem, load_state_dict_bytes, read_checkpoint
from hear_mn.hub.download import same_sha256
from hear_mn.hub.errors import BadFileError, FileAccessError, FileError
from hear_mn.hub.fetch import evict, fetch_content
from hear_mn.hub.integrity import PINNED, PUBLISHED
from hear_mn.hub.locations import ENV_OFFLINE, env_flag
from hear_mn.hub.weights_spec import WeightsSpec

__all__ = ["StateDictCheck", "fetch_weights", "resolve_weights"]

logger = logging.getLogger(__name__)


class StateDictCheck(Protocol):
    """Loads a state dict into a model, raising :class:`FileError` when it does not fit."""

    def __call__(self, state_dict: dict[str, torch.Tensor], *, source: str) -> None: ...


def _check_archive(data: bytes, path: Path, *, downloaded: bool) -> str | None:
    """hub's check for checkpoints: the zip CRCs, and no truncation; a download (or the
    cache's copy of one) must be a zip archive (a legacy torch file may be found locally,
    but an error page must not enter the cache)."""
    return archive_problem(data, require_zip=downloaded)


def resolve_weights(
    spec: WeightsSpec, *, download: bool = True, progress: bool | None = None
) -> Path:
    """Return the local path of the checkpoint described by ``spec``, checked.

    Looks in the ``$HEAR_MN_WEIGHTS_DIR`` folders, the shipped checkpoints, then the cache, and
    downloads into the cache when the file is absent and downloading is allowed
    (``download=True`` and ``$HEAR_MN_OFFLINE`` not set). A found file is checked (see the
    module's docstring): a bad file in an offline directory or the package raises
    :class:`BadFileError` and is left alone; a bad file in the cache is deleted and
    downloaded again. To load it, use :func:`fetch_weights`, which loads the very bytes
    that were checked.
    """
    return fetch_content(spec, download=download, progress=progress, check=_check_archive).path


def _load_verified(
    data: bytes, path: Path, spec: WeightsSpec, verify: StateDictCheck | None, *, verified: bool
) -> dict[str, torch.Tensor]:
    """Load ``data`` (read from ``path``) and hand it to ``verify``; any refusal becomes a
    :class:`BadFileError`."""
    state = load_state_dict_bytes(data, path, spec, verified=verified)
    if verify is not None:
        try:
            verify(state, source=str(path))
        except (BadFileError, FileAccessError):
            raise
        except FileError as error:
            raise BadFileError(str(error)) from error
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

    The file is read once: the bytes checked are the bytes loaded. ``verify(state_dict,
    source=path)`` (e.g. a model's ``load_checkpoint``) is called with the loaded state dict
    and raises :class:`FileError` when it does not fit. A cached copy that fails to load
    or is refused by ``verify`` is removed from the cache (the error names it) and, when it
    was not just downloaded, downloaded again once; files the user gave and shipped files
    are never deleted. A user-supplied ``path`` is not required to match ``spec.sha256``; a
    warning is logged when it has the release's file name but a different hash.
    """
    if path is not None and os.fspath(path) != "":
        local = Path(path).expanduser()
        data = read_checkpoint(local)
        state = _load_verified(data, local, spec, verify, verified=False)
        if spec.sha256 and local.name == spec.file_name:
            actual = hashlib.sha256(data).hexdigest()
            if not same_sha256(spec.sha256, actual):
                logger.warning(
                    "%s has the release file name but its sha256 is %s, not %s; using it anyway",
                    local,
                    actual,
                    spec.sha256.lower(),
                )
        return state
    fetched = fetch_content(spec, download=download, progress=progress, check=_check_archive)
    try:
        return _load_verified(fetched.data, fetched.path, spec, verify, verified=True)
    except BadFileError as error:
        # Only a cached copy is removed (never the user's or the package's), and never the
        # release itself: its SHA-256 matched (pinned or published), so a new download
        # would be the same file.
        released = fetched.trust in (PINNED, PUBLISHED)
        removal = None if released else evict(fetched.origin, fetched.path)
        if removal is None:
            raise
        if not fetched.downloaded and download and not env_flag(ENV_OFFLINE):
            logger.warning("%s; downloading it again", error)
            return fetch_weights(spec, download=download, progress=progress, verify=verify)
        raise BadFileError(
            f"{error}\nhear_mn {removal}; the next call downloads it again (if this error "
            f"comes back, the file at {spec.url} is not a checkpoint for this model)."
        ) from error
