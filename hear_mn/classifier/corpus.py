"""A classifier over many files: one at a time in this process, or on Ray for a corpus.

Both yield, per input file in turn, its :class:`~hear_mn.classifier.classifier.FilePrediction`
or why it failed; a file that cannot be read never ends the run. For whole files the Ray
engine embeds the files with the library's Ray engine
(:func:`hear_mn.engines.ray_data.dataset_of_inputs`: the same batches and numbers as
locally) and applies the head here, on each row as it arrives, so only one row's embedding
is held at a time; per window, each actor holds the whole classifier and runs the local
code on its files (:mod:`hear_mn.classifier.ray_windows`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from hear_mn.audio_io import AudioReadError
from hear_mn.classifier.classifier import Classifier, FilePrediction

__all__ = ["Outcome", "predict_files", "predict_on_ray"]

# Per file: its prediction, or (path, why it failed).
Outcome = FilePrediction | tuple[Path, str]


def predict_files(
    classifier: Classifier,
    paths: Sequence[Path],
    *,
    window: float | None = None,
    batch_size: int = 8,
    progress: Callable[[Path, float], None] | None = None,
) -> Iterator[Outcome]:
    """Each file's probabilities (whole, or per ``window`` seconds), or why it failed;
    every file's embeddings from one engine (a batch job: ``start_batch_job``)."""
    classifier.model.start_batch_job()
    for path in paths:
        try:
            prediction = classifier.predict_file(path, window=window, batch_size=batch_size)
        except AudioReadError as error:
            outcome: Outcome = (path, str(error))
        except Exception as error:  # one bad file must not end the run
            outcome = (path, f"prediction failed: {type(error).__name__}: {error}")
        else:
            outcome = prediction
        if progress is not None:
            progress(path, outcome.duration if isinstance(outcome, FilePrediction) else 0.0)
        yield outcome


def predict_on_ray(
    classifier: Classifier,
    paths: Sequence[Path],
    options: object,
    *,
    window: float | None = None,
    batch_size: int = 8,
    progress: Callable[[Path, float], None] | None = None,
) -> Iterator[Outcome]:
    """The probabilities of ``paths`` (whole, or per ``window`` seconds) computed by a pool
    of Ray actors (``options``: a :class:`~hear_mn.engines.ray_data.RayOptions`), in the
    order the rows arrive: the same numbers as :func:`predict_files`."""
    from hear_mn.engines.ray_data import dataset_of_inputs

    classifier.model.start_batch_job()  # the actors get the model as it is now

    if window is not None:
        from hear_mn.classifier.ray_windows import window_rows

        for outcome in window_rows(
            classifier, paths, options, window=window, batch_size=batch_size
        ):
            if progress is not None:
                done = outcome.duration if isinstance(outcome, FilePrediction) else 0.0
                progress(outcome.path if isinstance(outcome, FilePrediction) else outcome[0], done)
            yield outcome
        return
    rows = dataset_of_inputs(
        [str(path) for path in paths],
        classifier.model,
        options,  # type: ignore[arg-type]
        timestamps=False,
        batch_size=batch_size,
    )
    for row in rows.iter_rows():
        path, seconds = Path(row["path"]), float(row["seconds"] or 0.0)
        if row["error"]:
            outcome: Outcome = (path, str(row["error"]))
        else:
            embedding = torch.from_numpy(np.asarray(row["embedding"], dtype=np.float32)[None])
            probabilities = classifier.probabilities(embedding).cpu().numpy()
            bounds = np.array([[0.0, seconds]])
            outcome = FilePrediction(path, seconds, bounds, probabilities)
        if progress is not None:
            progress(path, seconds)
        yield outcome
