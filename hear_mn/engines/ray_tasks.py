"""Ray tasks of the Ray Data engine that need no torch: a worker process that runs them
imports this module, and only numpy and the audio decoders come with it."""

from __future__ import annotations

import numpy as np

from hear_mn.audio_io import AudioReadError, load_audio


def audio_lengths(batch: dict[str, np.ndarray], sample_rate: int) -> dict[str, list]:
    """Samples of each file of ``batch["path"]`` at ``sample_rate``, decoded as the local
    engine decodes it (-1, and the reason in ``error``, when it cannot be read)."""
    samples, errors = [], []
    for path in batch["path"]:
        try:
            samples.append(len(load_audio(str(path), sample_rate)))
            errors.append("")
        except AudioReadError as error:
            samples.append(-1)
            errors.append(str(error))
    return {"path": [str(path) for path in batch["path"]], "samples": samples, "error": errors}
