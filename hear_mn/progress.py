"""Progress over seconds of audio: one tqdm bar with the time left, on stderr.

Used by the commands that read many files (``hear-mn embed``, ``tag``, ``evaluate``) and by
:func:`hear_mn.evaluation.evaluate`; it can be turned off (``enabled=False``).

The bar never passes its total: each file counts at most its header's duration (a file
whose header gives none adds what was decoded of it to the total when it is counted), the
total is never rounded, and the bar moves to the count, clamped, so no update can overshoot
(tqdm would print a warning into the bar, show more than 100 % and a negative time left).
A long file advances the bar while it is embedded (:meth:`AudioProgress.advance`).
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
    (read only when the bar is shown). :meth:`advance` moves it inside a file, :meth:`done`
    counts a file whole.
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
        self._expected = {path: audio_duration(path) for path in paths} if enabled else {}
        self._total = sum(seconds for seconds in self._expected.values() if seconds)
        self._counted: dict[Path, float] = {}  # seconds of each file counted so far
        self._done = 0.0
        self._bar = tqdm(
            total=self._total,
            desc=label,
            unit="s",
            disable=not enabled,
            file=sys.stderr,
            dynamic_ncols=True,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s of audio "
            "[{elapsed}<{remaining}, {rate_fmt}]",
        )

    @property
    def done_seconds(self) -> float:
        """Seconds of audio counted so far (never more than :attr:`total_seconds`)."""
        return min(self._done, self._total)

    @property
    def total_seconds(self) -> float:
        """Seconds of audio the bar runs to (grows by the files whose header gave none)."""
        return self._total

    def advance(self, path: str | os.PathLike[str], seconds: float) -> None:
        """``seconds`` of ``path`` are done so far (a long file, block by block)."""
        path = Path(path)
        expected = self._expected.get(path)
        self._count(path, min(seconds, expected) if expected else 0.0)

    def done(self, path: str | os.PathLike[str], seconds: float) -> None:
        """Count ``path`` as done (``seconds``: what was decoded of it)."""
        path = Path(path)
        expected = self._expected.get(path)
        if not expected and path not in self._counted:
            self._total += max(seconds, 0.0)  # its length is known only now
            self._bar.total = self._total
            expected = seconds
        self._count(path, expected or 0.0)

    def _count(self, path: Path, seconds: float) -> None:
        self._done += max(seconds, 0.0) - self._counted.get(path, 0.0)
        self._counted[path] = max(seconds, 0.0)
        if not self._bar.disable:
            self._bar.update(self.done_seconds - self._bar.n)  # redrawn at most every 0.1 s

    def close(self) -> None:
        """End the bar."""
        self._bar.close()
