"""Per-window prediction on Ray: each actor of a pool holds the classifier (embedding model
and head) once and runs :meth:`~hear_mn.classifier.classifier.Classifier.predict_file` on
its files, the same code as ``hear-mn predict --window`` runs locally, so the windows and
their probabilities are the local ones. A file that cannot be read gets its error in its
row instead of failing the job.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hear_mn.audio_io import AudioReadError
from hear_mn.classifier.classifier import Classifier, FilePrediction

__all__ = ["WindowWorker", "window_rows"]


class WindowWorker:
    """A Ray Data callable class: per ``path`` of a batch, the file's window bounds and
    probabilities (flattened, with the number of classes to reshape them) or its error."""

    def __init__(
        self, classifier: Classifier, window: float, batch_size: int, threads: int, device: str
    ) -> None:
        import torch

        torch.set_num_threads(threads)
        if device != "cpu":
            classifier = Classifier(
                classifier.model.to(device), classifier.head, classifier.card, classifier.folder
            )
        self.classifier = classifier
        self.window = window
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> Any:
        import pyarrow as pa

        rows = [self._row(str(path)) for path in batch["path"]]
        return pa.table(
            {
                "path": pa.array([row[0] for row in rows], pa.string()),
                "seconds": pa.array([row[1] for row in rows], pa.float64()),
                "bounds": pa.array([row[2] for row in rows], pa.list_(pa.float64())),
                "probabilities": pa.array([row[3] for row in rows], pa.list_(pa.float32())),
                "error": pa.array([row[4] for row in rows], pa.string()),
            }
        )

    def _row(self, path: str) -> tuple[str, float, np.ndarray, np.ndarray, str]:
        empty = np.zeros(0)
        try:
            prediction = self.classifier.predict_file(
                path, window=self.window, batch_size=self.batch_size
            )
        except AudioReadError as error:
            return path, 0.0, empty, empty.astype(np.float32), str(error)
        except Exception as error:  # one bad file must not end the job
            why = f"prediction failed: {type(error).__name__}: {error}"
            return path, 0.0, empty, empty.astype(np.float32), why
        return (
            path,
            prediction.duration,
            prediction.bounds.reshape(-1).astype(np.float64),
            prediction.probabilities.reshape(-1).astype(np.float32),
            "",
        )


def window_rows(
    classifier: Classifier,
    paths: Sequence[Path],
    options: object,
    *,
    window: float,
    batch_size: int,
) -> Iterator[FilePrediction | tuple[Path, str]]:
    """Per file (in the order the rows arrive) its windows' prediction, or (path, why it
    failed), computed by a pool of :class:`WindowWorker` actors (``options``: a
    :class:`~hear_mn.engines.ray_data.RayOptions`)."""
    from hear_mn.engines.ray_data import connect, pool_size

    ray = connect(options)  # type: ignore[arg-type]
    items = [{"path": str(path)} for path in paths]
    if not items:
        return
    dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        WindowWorker,
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=pool_size(ray, options)),
        num_cpus=options.threads_per_actor,  # type: ignore[attr-defined]
        num_gpus=options.gpus_per_actor,  # type: ignore[attr-defined]
        fn_constructor_kwargs={
            "classifier": classifier,
            "window": window,
            "batch_size": batch_size,
            "threads": options.threads_per_actor,  # type: ignore[attr-defined]
            "device": "cuda" if options.gpus_per_actor > 0 else "cpu",  # type: ignore[attr-defined]
        },
    )
    classes = len(classifier.labels)
    for row in dataset.iter_rows():
        path = Path(row["path"])
        if row["error"]:
            yield path, str(row["error"])
            continue
        bounds = np.asarray(row["bounds"], dtype=np.float64).reshape(-1, 2)
        probabilities = np.asarray(row["probabilities"], dtype=np.float32).reshape(-1, classes)
        yield FilePrediction(path, float(row["seconds"]), bounds, probabilities)
