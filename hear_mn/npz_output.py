"""``.npz`` outputs written whole and atomically, with Ctrl-C held until the file is in place
(:mod:`hear_mn.atomic`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hear_mn.atomic import atomic_write, deferred_interrupts

__all__ = ["save_npz"]


def _interrupted(error: BaseException) -> bool:
    """Whether ``error`` was raised while handling a KeyboardInterrupt (zipfile turns Ctrl-C
    inside an archive member into "Can't close the ZIP file while there is an open writing
    handle")."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__context__
    return False


def save_npz(path: str | os.PathLike[str], **arrays: object) -> Path:
    """Write ``arrays`` to the ``.npz`` file ``path`` atomically and return ``path``.

    The archive streams into :func:`atomic_write`'s temporary file (no second copy of the
    arrays in memory); Ctrl-C is held until the file is in place, and one that arrives in the
    archive anyway (raised by other code) is a KeyboardInterrupt, not zipfile's error about
    an open handle."""
    with deferred_interrupts():
        try:
            return atomic_write(path, lambda handle: np.savez(handle, **arrays))
        except Exception as error:
            if _interrupted(error):
                raise KeyboardInterrupt from None
            raise
