"""Streaming audio embeddings on a device, from an exported hear-mn ONNX file.

A minimal program to copy into an app. It needs only numpy, soundfile and onnxruntime (no
torch, no hear_mn)::

    python examples/edge_stream.py mn04.onnx input.wav [--threads 1] [--quiet] [--json out.json]

It reads the model's sample rate, timestamp window and hop (in samples) from the file's
metadata, reads the WAV file (channels mixed to mono), and plays it through as a microphone
would, only without waiting between blocks: blocks of 10 ms go into a ring buffer, and
every hop (50 ms) a complete window (160 ms) is cut from the buffer and run through the
model alone (batch 1). For each window it prints the window index, its centre time, the embedding size and first values, and how
long that one run took; at the end the number of windows, the median and 95th percentile
latency, and the real-time factor (time spent in the model / duration of the audio). The
session runs once on silence when it is created, as an app would at start-up, so that no
window pays for its one-time setup.

The file must be a MobileNet exported with its frontend (``hear-mn export NAME --out
FILE``): input ``audio`` (batch, samples) float32 at the model's sample rate, output
``embeddings`` (batch, D); the model computes log-mels itself. The WAV file must already be
at that rate (32 kHz): an app resamples upstream (Android's and iOS's audio APIs can record
at 32 kHz or convert), and this example refuses other rates with a message rather than
resample badly.

Framing, and how it matches hear-mn's offline timestamp embeddings. Offline,
``get_timestamp_embeddings`` reflect-pads the clip by ``pad = window // 2`` samples at both
ends; window ``i`` covers samples ``[i * hop - pad, i * hop - pad + window)`` of the clip
(negative positions and positions past the end are the mirrored padding) and its timestamp
is its centre, ``i * hop`` samples. A live stream cannot see the future, and padding on the
left would mean inventing audio, so this example emits only windows that lie wholly inside
the audio heard so far, on the same grid:

* the first window is ``i0 = ceil(pad / hop)`` (2 for 160 ms windows every 50 ms: it covers
  samples 640 to 5760, centre 100 ms), emitted once its last sample has arrived;
* window ``i`` is emitted as soon as ``i * hop - pad + window`` samples are in, i.e. half a
  window (80 ms) after its centre, which is the least delay the model's framing allows;
* the stream never ends, so windows reaching past the end of the audio (offline's last
  few, which see the mirrored right padding) are not emitted when the file runs out.

Every window it emits therefore equals hear-mn's offline timestamp embedding with the same
index (to float32 rounding), and its centre time equals the offline timestamp.

``--classifier``: the file is a classifier (``hear-mn export --classifier DIR --out FILE``):
output ``probabilities`` (batch, classes), the labels in its metadata. Windows are then the
classifier's (``classifier_window`` samples, default the median length of its training
examples, or ``--window`` seconds), consecutive, from the first sample: window ``i`` covers
``[i * window, (i + 1) * window)`` and is classified once its last sample has arrived, as
hear-mn's ``classifier.stream()`` does (the last, shorter window of a file is not emitted: a
live stream does not end). Each line shows the window's start and its most probable class.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import soundfile as sf

BLOCK_MS = 10.0  # what a microphone callback delivers at a time
PREVIEW_VALUES = 4  # embedding values printed per window


class EdgeExampleError(Exception):
    """A problem with the inputs, reported as one line and a non-zero exit."""


class ModelInfo:
    """The facts about an exported file the stream needs, from its metadata."""

    def __init__(
        self, metadata: dict[str, str], path: Path, classifier: float | bool = False
    ) -> None:
        if classifier:
            self._classifier(metadata, path, classifier)
            return
        self.labels: list[str] = []
        try:
            self.sample_rate = int(metadata["sample_rate"])
            self.window = int(metadata["timestamp_window_samples"])
            self.hop = int(metadata["timestamp_hop_samples"])
            self.embedding_size = int(metadata["embedding_size"])
        except (KeyError, ValueError) as error:
            raise EdgeExampleError(
                f"{path} has no hear-mn metadata ({error}); export it with `hear-mn export`"
            ) from error
        if metadata.get("family") != "mobilenet" or metadata.get("frontend") != "true":
            raise EdgeExampleError(
                f"{path} is not a MobileNet exported with its frontend (family "
                f"{metadata.get('family')!r}, frontend {metadata.get('frontend')!r}); this "
                "example needs `hear-mn export <mobilenet> --out FILE` without --no-frontend"
            )
        self.name = metadata.get("model", "?")
        self.input_name = metadata.get("input_name", "audio")
        self.output_name = metadata.get("output_name", "embeddings")
        self.pad = self.window // 2  # hear-mn pads by half a window
        self.first_index = -(-self.pad // self.hop)  # ceil: the first window inside the audio

    def _classifier(self, metadata: dict[str, str], path: Path, window: float | bool) -> None:
        """A classifier's file: consecutive windows from the first sample."""
        if metadata.get("classifier") != "true":
            raise EdgeExampleError(
                f"{path} is not a classifier; export one with `hear-mn export --classifier DIR "
                "--out FILE` (or leave out --classifier for an embedding model)"
            )
        self.sample_rate = int(metadata["sample_rate"])
        self.labels = json.loads(metadata["labels"])
        self.window = int(metadata["classifier_window"])
        if window is not True:
            self.window = max(1, round(float(window) * self.sample_rate))
        self.hop, self.pad, self.first_index = self.window, 0, 0
        self.embedding_size = len(self.labels)
        self.name = f"{metadata.get('model', '?')} classifier"
        self.input_name = metadata.get("input_name", "audio")
        self.output_name = metadata.get("output_name", "probabilities")

    def window_end(self, index: int) -> int:
        """One past the last sample of window ``index``, in samples of the audio."""
        return index * self.hop - self.pad + self.window

    def centre_ms(self, index: int) -> float:
        """The centre of window ``index`` (hear-mn's timestamp), in milliseconds."""
        return 1000.0 * index * self.hop / self.sample_rate


class RingBuffer:
    """The last ``capacity`` samples of a stream, written in blocks, read by position."""

    def __init__(self, capacity: int) -> None:
        self.data = np.zeros(capacity, dtype=np.float32)
        self.written = 0  # samples written since the start of the stream

    def write(self, block: np.ndarray) -> None:
        """Append ``block`` (at most ``capacity`` samples), overwriting the oldest samples."""
        capacity = self.data.shape[0]
        if block.shape[0] > capacity:
            raise ValueError(f"a block of {block.shape[0]} samples exceeds the ring buffer")
        start = self.written % capacity
        first = min(block.shape[0], capacity - start)
        self.data[start : start + first] = block[:first]
        self.data[: block.shape[0] - first] = block[first:]
        self.written += block.shape[0]

    def read(self, stop: int, length: int) -> np.ndarray:
        """Samples ``[stop - length, stop)`` of the stream (they must still be held)."""
        capacity = self.data.shape[0]
        oldest = max(0, self.written - capacity)
        if stop > self.written or stop - length < oldest:
            raise ValueError(f"samples [{stop - length}, {stop}) are not in the buffer")
        positions = np.arange(stop - length, stop) % capacity
        return self.data[positions]


def open_session(
    path: Path, threads: int, classifier: float | bool = False
) -> tuple[ort.InferenceSession, ModelInfo]:
    """An onnxruntime CPU session of ``path`` with ``threads`` intra-op threads that do not
    spin while idle (a phone's battery), and what its metadata says (``classifier``: True,
    or a window in seconds, for a classifier's file)."""
    if not path.is_file():
        raise EdgeExampleError(f"model file not found: {path}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types
        raise EdgeExampleError(f"cannot load {path} as an ONNX model: {error}") from error
    info = ModelInfo(session.get_modelmeta().custom_metadata_map, path, classifier)
    # One run at start-up, as an app would, so that the first window's latency is not the
    # session's one-time setup.
    session.run([info.output_name], {info.input_name: np.zeros((1, info.window), np.float32)})
    return session, info


def read_audio(path: Path, sample_rate: int) -> np.ndarray:
    """The WAV file ``path`` as mono float32 samples; its rate must be ``sample_rate``."""
    if not path.is_file():
        raise EdgeExampleError(f"audio file not found: {path}")
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, ValueError) as error:  # soundfile's errors are RuntimeErrors
        raise EdgeExampleError(f"cannot read {path} as audio: {error}") from error
    if rate != sample_rate:
        raise EdgeExampleError(
            f"{path} is sampled at {rate} Hz but the model expects {sample_rate} Hz; "
            f"resample it first (an app records or converts to {sample_rate} Hz upstream), "
            f"e.g. `sox {path.name} -r {sample_rate} out.wav`"
        )
    return audio.mean(axis=1, dtype=np.float32)


def stream(
    session: ort.InferenceSession,
    info: ModelInfo,
    audio: np.ndarray,
    *,
    quiet: bool = False,
) -> dict[str, list]:
    """Feed ``audio`` in 10 ms blocks, embedding each window as soon as it is complete.

    Returns the window ``indices``, ``timestamps_ms`` (centres), ``latencies_ms`` (one
    ``session.run`` each) and ``embeddings`` (lists of floats; a classifier's probabilities).
    """
    block = max(1, round(info.sample_rate * BLOCK_MS / 1000.0))
    ring = RingBuffer(info.window + block)  # a full window plus the block that completed it
    result: dict[str, list] = {
        "indices": [],
        "timestamps_ms": [],
        "latencies_ms": [],
        "embeddings": [],
    }
    index = info.first_index
    for start in range(0, audio.shape[0], block):
        ring.write(audio[start : start + block])  # the microphone callback
        while info.window_end(index) <= ring.written:
            window = ring.read(info.window_end(index), info.window)[None]  # (1, samples)
            began = time.perf_counter()
            (embedding,) = session.run([info.output_name], {info.input_name: window})
            latency = 1000.0 * (time.perf_counter() - began)
            values = embedding[0]
            result["indices"].append(index)
            result["timestamps_ms"].append(info.centre_ms(index))
            result["latencies_ms"].append(latency)
            result["embeddings"].append(values.tolist())
            if not quiet and info.labels:
                best = int(np.argmax(values))
                print(
                    f"window {index:5d}  start={1000.0 * index * info.hop / info.sample_rate:8.1f} "
                    f"ms  {info.labels[best]} {values[best]:.3f}  {latency:7.2f} ms"
                )
            elif not quiet:
                preview = " ".join(f"{v:+.4f}" for v in values[:PREVIEW_VALUES])
                print(
                    f"window {index:5d}  t={info.centre_ms(index):8.1f} ms  "
                    f"D={values.shape[0]}  [{preview} ...]  {latency:7.2f} ms"
                )
            index += 1
    return result


def summary(result: dict[str, list], duration_s: float) -> dict[str, float | None]:
    """Windows, median and 95th percentile latency (ms), and the real-time factor (None
    without windows)."""
    latencies = np.asarray(result["latencies_ms"], dtype=np.float64)
    if latencies.size == 0:
        return {"windows": 0, "median_ms": None, "p95_ms": None, "real_time_factor": None}
    return {
        "windows": int(latencies.size),
        "median_ms": float(np.median(latencies)),
        "p95_ms": float(np.percentile(latencies, 95)),
        "real_time_factor": float(latencies.sum() / 1000.0 / duration_s),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description="Embed a WAV file as a live stream with an exported hear-mn ONNX model."
    )
    parser.add_argument("model", type=Path, help="ONNX file from `hear-mn export`")
    parser.add_argument("audio", type=Path, help="WAV file at the model's sample rate")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        metavar="N",
        help="onnxruntime intra-op threads (default 1)",
    )
    parser.add_argument("--quiet", action="store_true", help="print the summary only")
    parser.add_argument(
        "--json",
        type=Path,
        metavar="OUT",
        help="write indices, timestamps, latencies and embeddings to OUT",
    )
    parser.add_argument(
        "--classifier",
        nargs="?",
        const=True,
        default=False,
        type=float,
        metavar="SECONDS",
        help="the file is a classifier (hear-mn export --classifier): classify consecutive "
        "windows (default: its own window; or SECONDS long)",
    )
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the example; returns the exit status (0 ok, 1 bad input)."""
    args = parse_args(argv)
    try:
        session, info = open_session(args.model, args.threads, args.classifier)
        audio = read_audio(args.audio, info.sample_rate)
    except EdgeExampleError as error:
        print(f"edge_stream: error: {error}", file=sys.stderr)
        return 1
    duration_s = audio.shape[0] / info.sample_rate
    if not args.quiet:
        outputs = f"classes {', '.join(info.labels)}" if info.labels else f"{info.embedding_size}-d"
        print(
            f"{info.name}: {info.sample_rate} Hz, window {info.window} samples every "
            f"{info.hop}, {outputs}; {args.audio} is {duration_s:.2f} s"
        )
    result = stream(session, info, audio, quiet=args.quiet)
    stats = summary(result, duration_s)
    if stats["windows"] == 0:
        print(
            f"no window: the audio is shorter than {info.window_end(info.first_index)} "
            f"samples, the end of the first window"
        )
    else:
        print(
            f"{stats['windows']} windows, latency median {stats['median_ms']:.2f} ms, "
            f"p95 {stats['p95_ms']:.2f} ms, real-time factor {stats['real_time_factor']:.4f} "
            f"({args.threads} thread{'s' if args.threads > 1 else ''})"
        )
    if args.json is not None:
        record = {
            "model": info.name,
            "sample_rate": info.sample_rate,
            "window": info.window,
            "hop": info.hop,
            "threads": args.threads,
            "labels": info.labels,
            "duration_s": duration_s,
            "summary": stats,
            **result,
        }
        args.json.write_text(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
