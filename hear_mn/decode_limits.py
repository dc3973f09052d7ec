"""How much decoded audio one file may produce before its samples are allocated.

A file's header can declare any sample rate: 40 KB of WAV declaring 1 Hz is 5.5 hours at
32 kHz, 2.4 GiB of float32. Such a file must fail alone, with its name, instead of taking
the whole run down with the machine's memory. Two bounds apply, each checked against the
length the header announces and again as samples arrive:

* ``HEAR_MN_MAX_AUDIO_SECONDS``: the longest audio accepted, in seconds (unset: no limit);
* the memory available now: free RAM and swap (Linux ``MemAvailable`` + ``SwapFree``), the
  cgroup's memory limit, and the process's address-space limit (``RLIMIT_AS``), where the
  system reports them.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["MAX_SECONDS_VARIABLE", "DecodeLimit", "available_memory"]

MAX_SECONDS_VARIABLE = "HEAR_MN_MAX_AUDIO_SECONDS"
_BYTES_PER_SAMPLE = 4  # float32


def _meminfo_available() -> int | None:
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        kib = int(fields["MemAvailable"].split()[0]) + int(
            fields.get("SwapFree", "0 kB").split()[0]
        )
    except (OSError, KeyError, ValueError):
        return None
    return kib * 1024


def _cgroup_available() -> int | None:
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
    except (OSError, ValueError):
        return None
    return max(int(limit) - used, 0)


def _address_space_available() -> int | None:
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY:
            return None
        status = Path("/proc/self/status").read_text().splitlines()
        size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    except (ImportError, OSError, ValueError, StopIteration):
        return None
    return max(soft - size, 0)


def available_memory() -> int | None:
    """Bytes this process can still allocate, as far as the system says (None: unknown)."""
    known = [
        found
        for found in (_meminfo_available(), _cgroup_available(), _address_space_available())
        if found is not None
    ]
    return min(known) if known else None


def _configured_seconds() -> float | None:
    text = os.environ.get(MAX_SECONDS_VARIABLE, "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(
            f"{MAX_SECONDS_VARIABLE}={text!r}: give the longest audio to decode in seconds "
            "(a positive number), or unset it"
        )
    return seconds


class DecodeLimit:
    """The most samples one file may decode to at ``sample_rate``, read when made (memory
    changes, so make one per file); :meth:`refusal` says why a count is too many."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.seconds = _configured_seconds()
        memory = available_memory()
        self.memory_samples = None if memory is None else memory // _BYTES_PER_SAMPLE
        self.configured_samples = (
            None if self.seconds is None else math.floor(self.seconds * sample_rate)
        )

    def refusal(self, samples: int) -> str | None:
        """Why ``samples`` decoded samples are too many, with their size (None: they fit)."""
        if self.configured_samples is not None and samples > self.configured_samples:
            excess = (
                f"more than {MAX_SECONDS_VARIABLE}={self.seconds:g} s allows (raise it if the "
                "file is really that long)"
            )
        elif self.memory_samples is not None and samples > self.memory_samples:
            available = self.memory_samples * _BYTES_PER_SAMPLE / 2**30
            excess = f"more than the memory available ({available:.2f} GiB)"
        else:
            return None
        hours = samples / self.sample_rate / 3600
        gib = samples * _BYTES_PER_SAMPLE / 2**30
        return (
            f"{samples} samples at {self.sample_rate} Hz ({hours:.1f} hours, {gib:.2f} GiB as "
            f"float32), {excess}"
        )
