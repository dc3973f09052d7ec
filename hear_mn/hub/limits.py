"""How much a download may receive and how slowly: :class:`DownloadLimits`, from the
environment.

A body may not exceed the size expected (the known or published size, else
``$HEAR_MN_DOWNLOAD_MAX_BYTES``, 1 GiB by default), whether or not the server announced a
length; and it must arrive at ``$HEAR_MN_DOWNLOAD_MIN_RATE`` bytes per second at least (1024
by default; 0: no minimum), measured over windows of ``$HEAR_MN_DOWNLOAD_RATE_WINDOW``
seconds (30 by default, also the longest wait for any one read), so a server that trickles
or stalls is cut off.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from hear_mn.hub.errors import FileUnavailableError

__all__ = ["ENV_MAX_BYTES", "ENV_MIN_RATE", "ENV_RATE_WINDOW", "DownloadLimits", "too_slow"]

ENV_MAX_BYTES = "HEAR_MN_DOWNLOAD_MAX_BYTES"
ENV_MIN_RATE = "HEAR_MN_DOWNLOAD_MIN_RATE"
ENV_RATE_WINDOW = "HEAR_MN_DOWNLOAD_RATE_WINDOW"


def _env_number(name: str, default: float, *, integer: bool = False) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        value = -1
    if not value >= 0 or value == float("inf"):
        kind = "a whole number" if integer else "a number"
        raise ValueError(f"{name} must be {kind} >= 0, got {raw!r}")
    return value


@dataclass(frozen=True)
class DownloadLimits:
    """How much a download may receive and how slowly (see the module's docstring).

    ``max_bytes`` caps a body of no known size; ``min_rate`` (bytes per second, 0: no
    minimum) is averaged over ``window`` seconds, which also bounds any one read's wait.
    """

    max_bytes: int = 1 << 30
    min_rate: float = 1024.0
    window: float = 30.0

    @classmethod
    def from_env(cls) -> DownloadLimits:
        """The limits set by the environment, the defaults for those not set."""
        default = cls()
        window = _env_number(ENV_RATE_WINDOW, default.window) or default.window
        return cls(
            max_bytes=int(_env_number(ENV_MAX_BYTES, default.max_bytes, integer=True)),
            min_rate=_env_number(ENV_MIN_RATE, default.min_rate),
            window=window,
        )


def too_slow(url: str, limits: DownloadLimits, got: int, seconds: float) -> FileUnavailableError:
    """The error for a download of ``url`` that received ``got`` bytes in ``seconds``."""
    return FileUnavailableError(
        f"download of {url} was stopped: it was too slow ({got} bytes in the last "
        f"{seconds:.1f} s, less than {ENV_MIN_RATE}={limits.min_rate:g} bytes/s over "
        f"{ENV_RATE_WINDOW}={limits.window:g} s); try again later, from another network, or "
        "lower the minimum rate (nothing was saved)"
    )
