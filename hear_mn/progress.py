"""Progress over seconds of audio: one tqdm bar with the time left, on stderr.

Used by the commands that read many files (``hear-mn embed``, ``tag``, ``evaluate``) and by
:func:`hear_mn.evaluation.evaluate`; it can be turned off (``enabled=False``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

__all__ = ["AudioProgress"]


class AudioProgress:
    """A tqdm bar over the seconds of audio in ``files``, with the time left, on stderr.

    ``files``: ``(path, anything)`` pairs or paths. The total comes from the files' headers
    (read only when the bar is shown); a file counts with its header's duration when it is
    done, or with what was decoded when its header gave none.
    """

    def __init__(
        self,
        label: str,
        files: Iterable[tuple[Path, object] | str | os.PathLike[str]],
        enabled: bool,
    ) -> None:
        from tqdm import tqdm

        from hear_mn.audio_io import audio_duration

        paths = [Path(item[0] if isinstance(item, tuple) else item) for item in files]
        self._durations = {path: audio_duration(path) for path in paths} if enabled else {}
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
        """Count ``path`` as done (``seconds``: what was decoded of it)."""
        self._bar.update(self._durations.get(Path(path)) or seconds)

    def close(self) -> None:
        """End the bar."""
        self._bar.close()
