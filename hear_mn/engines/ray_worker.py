"""The actor side of the Ray Data engine (:mod:`hear_mn.engines.ray_data`): a model held
once per actor, batches of files decoded, embedded and written, rows returned as Arrow
tables whose column types are the same in every batch."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from hear_mn.audio_io import AudioReadError, load_audio, save_npz
from hear_mn.batch import decode_input, embed_clips, length_groups
from hear_mn.model import EmbeddingModel
from hear_mn.resume import with_input

# Row columns of the datasets this engine returns.
COLUMNS = ("path", "embedding", "timestamps", "seconds", "model", "output", "error")


class EmbeddingWorker:
    """A Ray Data callable class: holds the model once per actor and embeds batches of rows.

    A row is either a planned group (``paths`` and ``outputs``: files embedded together, each
    output written atomically when its name is not empty) or a single file (``path``, and
    ``bytes`` for datasets of file contents), in which case the files of one batch are
    grouped by length. Returns one row per file (:data:`COLUMNS`); files that cannot be
    read or embedded get an ``error`` and empty arrays instead of failing the job.
    """

    def __init__(
        self,
        model: EmbeddingModel,
        timestamps: bool,
        threads: int,
        metadata: dict[str, np.ndarray] | None = None,
        device: str = "cpu",
    ) -> None:
        import torch

        torch.set_num_threads(threads)
        self.model = model.to(device) if device != "cpu" else model
        self.timestamps = timestamps
        self.metadata = metadata or {}
        self.rate = int(model.sample_rate)

    def __call__(self, batch: dict[str, np.ndarray]) -> Any:
        rows: list[dict[str, object]] = []
        if "paths" in batch:
            for paths, outputs in zip(batch["paths"], batch["outputs"]):
                self._embed(list(zip(map(str, paths), map(str, outputs))), None, rows)
        else:
            contents = batch.get("bytes")
            files = [(str(path), "") for path in batch["path"]]
            self._embed(files, None if contents is None else list(contents), rows)
        return rows_table(rows, self.timestamps)

    def _embed(
        self, files: list[tuple[str, str]], contents: list[bytes] | None, rows: list[dict]
    ) -> None:
        decoded = []
        for index, (path, output) in enumerate(files):
            try:
                content = None if contents is None else contents[index]
                if output:  # an output records the identity of its input
                    audio, record = decode_input(Path(path), self.rate)
                else:
                    audio, record = self._decode(path, content), {}
            except AudioReadError as error:
                rows.append(self._row(path, output, 0.0, error=str(error)))
                continue
            decoded.append((path, output, audio, record))
        for group in length_groups(decoded, lambda item: len(item[2]), max(1, len(decoded))):
            results = embed_clips(self.model, [item[2] for item in group], self.timestamps)
            for (path, output, audio, record), result in zip(group, results):
                seconds = len(audio) / self.rate
                if isinstance(result, str):
                    rows.append(self._row(path, output, seconds, error=result))
                    continue
                try:
                    if output:
                        save_npz(output, **result, **with_input(self.metadata, record))
                except OSError as error:
                    rows.append(
                        self._row(path, output, seconds, error=f"cannot write {output}: {error}")
                    )
                    continue
                rows.append(self._row(path, output, seconds, **result))

    def _decode(self, path: str, content: bytes | None) -> np.ndarray:
        if content is None:
            return load_audio(path, self.rate)
        with tempfile.TemporaryDirectory(prefix="hear-mn-") as folder:
            copy = Path(folder) / Path(path).name
            copy.write_bytes(content)
            try:
                return load_audio(copy, self.rate)
            except AudioReadError as error:
                raise AudioReadError(str(error).replace(str(copy), path)) from None

    def _row(
        self,
        path: str,
        output: str,
        seconds: float,
        *,
        error: str = "",
        embedding: np.ndarray | None = None,
        timestamps: np.ndarray | None = None,
    ) -> dict[str, object]:
        no_embedding = np.zeros((0, 0) if self.timestamps else 0, dtype=np.float32)
        return {
            "path": path,
            "embedding": no_embedding if embedding is None else embedding,
            "timestamps": np.zeros(0, dtype=np.float32) if timestamps is None else timestamps,
            "seconds": seconds,
            "model": self.model.name,
            "output": output if not error else "",
            "error": error,
        }


def _lists(arrays: list[np.ndarray]) -> Any:
    """float32 arrays of one rank (1 or 2) as an Arrow list (of lists) column, without
    copying through Python lists."""
    import pyarrow as pa

    def offsets(counts: list[int]) -> Any:
        return pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))

    values = pa.array(
        np.concatenate([a.reshape(-1) for a in arrays]) if arrays else np.zeros(0, np.float32)
    )
    if arrays and arrays[0].ndim == 2:
        inner = [a.shape[1] for a in arrays for _ in range(a.shape[0])]
        values = pa.ListArray.from_arrays(offsets(inner), values)
    return pa.ListArray.from_arrays(offsets([a.shape[0] for a in arrays]), values)


def rows_table(rows: list[dict[str, object]], timestamps: bool) -> Any:
    """Rows as an Arrow table of :data:`COLUMNS` whose types are the same in every batch
    (so that the blocks of a dataset concatenate and write to Parquet): ``embedding`` a
    list of float32 (scene) or a list of lists (timestamps), ``timestamps`` a list of
    float32; a failed file has empty lists."""
    import pyarrow as pa

    embedding_type = pa.list_(pa.list_(pa.float32())) if timestamps else pa.list_(pa.float32())
    columns = {
        "path": pa.array([row["path"] for row in rows], pa.string()),
        "embedding": _lists([row["embedding"] for row in rows]).cast(embedding_type),
        "timestamps": _lists([row["timestamps"] for row in rows]).cast(pa.list_(pa.float32())),
        "seconds": pa.array([row["seconds"] for row in rows], pa.float64()),
        "model": pa.array([row["model"] for row in rows], pa.string()),
        "output": pa.array([row["output"] for row in rows], pa.string()),
        "error": pa.array([row["error"] for row in rows], pa.string()),
    }
    return pa.table(columns)
