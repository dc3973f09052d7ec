"""Quantisation study: fp16 and int8 variants of a MobileNet's exported graph, on this CPU.

    python benchmarks/studies/bench_quantization.py          # mn04_e1_l, mn10_e1_l; writes results
    python benchmarks/studies/bench_quantization.py --quick  # short audio, 3 repeats
    python benchmarks/studies/bench_quantization.py --smoke --json /tmp/q.json   # 1 repeat

The graph is the model's own export from log-mels on (``onnx_bytes(model, frontend=False)``:
backbone and feature taps); the DFT-convolution frontend stays float and the log-mels come
from the model's torch frontend. Variants:

* ``fp32``: the exported graph as shipped (the baseline);
* ``fp16``: every float tensor converted to float16, inputs and outputs kept float32
  (``onnxruntime.transformers.float16``, ``keep_io_types=True``);
* ``int8 QDQ``: ``quantize_static`` (QDQ format, per-channel int8 weights, MinMax
  calibration) with int8 or uint8 activations, uint8 also with 7-bit weights
  (``reduce_range``) and with ONNX Runtime's U8U8 precision mode (``session.x64quantprecision``);
* ``int8 dynamic``: ``quantize_dynamic`` (int8 or uint8 weights, activations quantised per
  call).

Calibration and held-out audio are synthesised on the fly into a temporary folder: speech
with espeak-ng and music with FluidSynth (a General MIDI sound font and small MIDI files
written here), resampled to 32 kHz with soxr; held-out clips use other texts, voices,
melodies and instruments than calibration. A missing tool falls back to a numpy
synthesiser, and the output says so.

Weights: the released ones cannot be downloaded on the machine this was written on, so the
weights are random, in three setups (:data:`SETUPS`): BatchNorm statistics randomised
(running_mean ~ N(0, 0.1), running_var ~ U(0.5, 1.5)), which makes the embeddings nearly
constant over inputs, so drift there is uninformative; and statistics fitted on audio, once
on 160 ms windows and once on whole clips (a random network fitted on one length is not
normalised for the other), which keeps the embeddings input-dependent. int8 is calibrated
and drift evaluated on the input length the statistics were fitted on. A yardstick row
gives the fp32 model's own change under 0.1 % noise on its log-mels.

For every variant: file size; latency (:data:`LATENCIES`) of one 160 ms window (batch 1,
1 thread), of every held-out window in one batch (2 threads) and of 4 clips of 10 s
(2 threads), all variants of a model timed in alternation in one process (medians; ONNX
Runtime sessions with ``session.intra_op.allow_spinning=0``); and drift against the fp32
torch model on the held-out audio: mean and min cosine similarity, min centred cosine, and
max |q - ref| / max |ref|.
"""

from __future__ import annotations

import collections
import logging
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import soundfile
import soxr
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the harness
import harness  # noqa: E402
from onnxruntime.quantization import (  # noqa: E402
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process  # noqa: E402
from onnxruntime.transformers.float16 import convert_float_to_float16  # noqa: E402

import hear_mn  # noqa: E402
from hear_mn.export import onnx_bytes  # noqa: E402
from hear_mn.models.efficientat.efficientat_embedder import MobileNetEmbedder  # noqa: E402

MODELS = ("mn04_e1_l", "mn10_e1_l")
SAMPLE_RATE = 32_000
WINDOW = 5_120  # 160 ms at 32 kHz: one timestamp window
WINDOW_CALLS = 20  # one timed sample of the window latency = this many consecutive calls
RESULTS = harness.RESULTS
SOUND_FONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2")
WEIGHTS_NOTE = (
    "random weights (fixed seeds) with BatchNorm statistics randomised (running_mean ~ "
    "N(0, 0.1), running_var ~ U(0.5, 1.5)) or fitted on audio (see the drift table): the "
    "released EfficientAT weights cannot be downloaded on this machine, so drift with the "
    "pretrained weights is not measured here"
)

# ---------------------------------------------------------------------------------------
# Audio: speech (espeak-ng), music (FluidSynth), or numpy stand-ins when a tool is missing.

CALIBRATION_SPEECH = (
    (
        "en-us",
        165,
        "The quick brown fox jumps over the lazy dog, while seven musicians "
        "rehearse a quiet song in the old hall near the river.",
    ),
)
HELD_OUT_SPEECH = (
    (
        "en-gb",
        150,
        "Please call Stella and ask her to bring these things with her from the "
        "store: six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a "
        "snack for her brother Bob. We also need a small plastic snake and a big toy frog.",
    ),
    (
        "en-us+f3",
        185,
        "Weather report for Tuesday morning: heavy rain along the northern "
        "coast, strong winds over the mountains, and temperatures near twelve degrees. "
        "Drivers should expect delays on the highway until noon, when the storm moves east.",
    ),
)


@dataclass(frozen=True)
class Tune:
    """A small MIDI piece: General MIDI programs per channel, a scale and a seed."""

    programs: dict[int, int]  # channel -> program (channel 9: drums)
    root: int  # MIDI pitch of the scale's root
    scale: tuple[int, ...]
    bpm: int
    seed: int
    drums: bool = False


CALIBRATION_MUSIC = (Tune({0: 0, 1: 32}, 60, (0, 2, 4, 5, 7, 9, 11), 100, 1),)  # piano, bass
HELD_OUT_MUSIC = (
    Tune({0: 48, 1: 73}, 57, (0, 2, 3, 5, 7, 8, 10), 72, 2),  # strings and flute, A minor
    Tune({0: 25, 1: 33}, 64, (0, 2, 4, 7, 9), 124, 3, drums=True),  # guitar, bass, drums
)


def _variable_length(value: int) -> bytes:
    """A MIDI variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def write_midi(path: Path, tune: Tune, seconds: float) -> None:
    """Write a format-0 MIDI file of ``tune`` lasting about ``seconds``.

    Channel 0 plays a random walk over the scale in eighth notes, channel 1 a bass note per
    beat, channel 9 (if ``drums``) kick, snare and hi-hat.
    """
    ticks = 480  # per quarter note
    rng = np.random.default_rng(tune.seed)
    beats = int(seconds * tune.bpm / 60) + 1
    notes: list[tuple[int, int, int, int, int]] = []  # start, length, channel, pitch, velocity
    degree = 0
    for eighth in range(2 * beats):
        degree = int(np.clip(degree + rng.integers(-2, 3), -3, 10))
        octave, step = divmod(degree, len(tune.scale))
        pitch = tune.root + 12 + 12 * octave + tune.scale[step]
        notes.append((eighth * ticks // 2, ticks // 2, 0, pitch, int(rng.integers(70, 110))))
    for beat in range(beats):
        bass = tune.root - 12 + tune.scale[(beat // 4 * 3) % len(tune.scale)]
        notes.append((beat * ticks, ticks, 1, bass, 90))
        if tune.drums:
            notes.append((beat * ticks, ticks // 4, 9, 36 if beat % 2 == 0 else 38, 100))
            for half in range(2):
                notes.append((beat * ticks + half * ticks // 2, ticks // 4, 9, 42, 70))
    events: list[tuple[int, int, bytes]] = []  # tick, order (offs first), message
    for start, length, channel, pitch, velocity in notes:
        events.append((start, 1, bytes([0x90 | channel, pitch, velocity])))
        events.append((start + length, 0, bytes([0x80 | channel, pitch, 0])))
    events.sort(key=lambda event: (event[0], event[1]))
    track = bytearray(b"\x00\xff\x51\x03" + (60_000_000 // tune.bpm).to_bytes(3, "big"))
    for channel, program in tune.programs.items():
        track += b"\x00" + bytes([0xC0 | channel, program])
    now = 0
    for tick, _, message in events:
        track += _variable_length(tick - now) + message
        now = tick
    track += b"\x00\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, ticks)
    path.write_bytes(header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track))


def _read_mono(path: Path) -> np.ndarray:
    """A sound file as mono float32 at 32 kHz, peak-normalised to 0.5."""
    samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE).astype(np.float32)
    peak = float(np.abs(mono).max())
    return mono * (0.5 / peak) if peak > 0 else mono


def _fit(signal: np.ndarray, seconds: float) -> np.ndarray:
    """``signal`` trimmed or zero-padded to ``seconds``."""
    size = int(seconds * SAMPLE_RATE)
    return np.pad(signal[:size], (0, max(0, size - len(signal)))).astype(np.float32)


def _stand_in(kind: str, seconds: float, seed: int) -> np.ndarray:
    """A numpy stand-in: voiced syllables ("speech") or decaying harmonic notes ("music")."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    if kind == "speech":
        f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
        phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
        voiced = sum(np.sin(k * phase) / k for k in range(1, 30))
        syllables = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) ** 2
        signal = voiced * syllables + 0.05 * rng.standard_normal(len(t)) * syllables
    else:
        signal = np.zeros(len(t))
        note = int(0.25 * SAMPLE_RATE)
        for start in range(0, len(t), note):
            freq = 220 * 2 ** (rng.integers(0, 24) / 12)
            span = t[: min(note * 2, len(t) - start)]
            tone = sum(np.sin(2 * np.pi * k * freq * span) / k**1.5 for k in range(1, 8))
            signal[start : start + len(span)] += tone * np.exp(-4 * span)
    return (0.5 * signal / np.abs(signal).max()).astype(np.float32)


@dataclass
class AudioSet:
    """Calibration and held-out signals at 32 kHz, and how each was made."""

    calibration: dict[str, np.ndarray] = field(default_factory=dict)
    held_out: dict[str, np.ndarray] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)


def synthesise(folder: Path, calibration_seconds: float, held_out_seconds: float) -> AudioSet:
    """Speech and music for calibration (one clip each) and held-out use (two clips each)."""
    audio = AudioSet()
    espeak = shutil.which("espeak-ng")
    fluidsynth = shutil.which("fluidsynth")
    sound_font = next((font for font in SOUND_FONTS if Path(font).is_file()), None)
    audio.sources["espeak-ng"] = espeak or "missing: numpy stand-in speech"
    audio.sources["fluidsynth"] = (
        f"{fluidsynth} with {sound_font}"
        if fluidsynth and sound_font
        else "missing (or no GM sound font): numpy stand-in music"
    )

    def speech(
        name: str, voice: str, speed: int, text: str, seconds: float, seed: int
    ) -> np.ndarray:
        if not espeak:
            return _stand_in("speech", seconds, seed)
        path = folder / f"{name}.wav"
        subprocess.run([espeak, "-v", voice, "-s", str(speed), "-w", str(path), text], check=True)
        return _fit(_read_mono(path), seconds)

    def music(name: str, tune: Tune, seconds: float) -> np.ndarray:
        if not (fluidsynth and sound_font):
            return _stand_in("music", seconds, tune.seed)
        midi, wav = folder / f"{name}.mid", folder / f"{name}.wav"
        write_midi(midi, tune, seconds)
        command = [fluidsynth, "-ni", "-q", "-g", "0.8", "-r", "44100", "-F", str(wav)]
        subprocess.run([*command, sound_font, str(midi)], check=True, capture_output=True)
        return _fit(_read_mono(wav), seconds)

    for i, (voice, speed, text) in enumerate(CALIBRATION_SPEECH):
        audio.calibration[f"speech{i}"] = speech(
            f"cal_speech{i}", voice, speed, text, calibration_seconds, i
        )
    for i, tune in enumerate(CALIBRATION_MUSIC):
        audio.calibration[f"music{i}"] = music(f"cal_music{i}", tune, calibration_seconds)
    for i, (voice, speed, text) in enumerate(HELD_OUT_SPEECH):
        audio.held_out[f"speech{i}"] = speech(
            f"speech{i}", voice, speed, text, held_out_seconds, 10 + i
        )
    for i, tune in enumerate(HELD_OUT_MUSIC):
        audio.held_out[f"music{i}"] = music(f"music{i}", tune, held_out_seconds)
    return audio


# ---------------------------------------------------------------------------------------
# Model, log-mels, graph variants.


def random_model(name: str) -> MobileNetEmbedder:
    """``name`` with random weights and randomised BatchNorm statistics (fixed seeds)."""
    torch.manual_seed(0)
    model = hear_mn.create_model(name, pretrained=False)
    generator = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for buffer_name, buffer in model.named_buffers():
            if buffer_name.endswith("running_mean"):
                buffer.normal_(0.0, 0.1, generator=generator)
            elif buffer_name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5, generator=generator)
    model.refresh_inference()
    return model


def fit_batchnorm(model: MobileNetEmbedder, batches: list[np.ndarray]) -> MobileNetEmbedder:
    """Re-estimate ``model``'s BatchNorm statistics on ``batches`` of audio (batch, samples),
    as cumulative averages; the weights stay as they are.

    With random weights and the randomised statistics, the input-dependent part of the
    activations shrinks block by block and the embedding is nearly the same for every sound
    (its spread over inputs is ~1e-7 of its size): a constant that any variant reproduces,
    so drift measured on it says nothing. Statistics measured on audio keep the activations
    normalised, as in a trained network, and the embeddings differ between sounds. A random
    network normalised on 160 ms windows is not normalised for 10 s clips (its deep
    activations grow ~1000x there) and the other way round, unlike a trained one; so each
    input length gets weights fitted on that length.
    """
    norms = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches below
    model.backbone.train()
    with torch.no_grad():
        for batch in batches:
            mels = model.frontend(torch.from_numpy(np.ascontiguousarray(batch)))[:, None]
            model.backbone(mels.contiguous(memory_format=torch.channels_last))
    for norm in norms:
        norm.momentum = 0.1
    model.eval()
    model.refresh_inference()
    return model


def log_mels(model: MobileNetEmbedder, signals: np.ndarray) -> np.ndarray:
    """The model's own torch frontend on (batch, samples): (batch, n_mels, frames)."""
    with torch.inference_mode():
        return model.frontend(torch.from_numpy(np.ascontiguousarray(signals))).numpy()


def windows_of(signal: np.ndarray) -> np.ndarray:
    """Consecutive 160 ms windows of ``signal``: (count, 5120)."""
    count = len(signal) // WINDOW
    return signal[: count * WINDOW].reshape(count, WINDOW)


class MelReader(CalibrationDataReader):
    """Feeds calibration log-mels to ``quantize_static``, one input dict at a time."""

    def __init__(self, batches: list[np.ndarray]) -> None:
        self.batches = batches
        self._iterator: Iterator[np.ndarray] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._iterator, None)
        return None if batch is None else {"log_mels": batch}

    def rewind(self) -> None:
        self._iterator = iter(self.batches)


@dataclass(frozen=True)
class Variant:
    """A graph file plus the session settings it runs with."""

    name: str
    path: Path
    session_config: dict[str, str] = field(default_factory=dict)
    note: str = ""


def make_variants(
    fp32: Path, calibration: list[np.ndarray], folder: Path, quick: bool
) -> tuple[list[Variant], dict[str, str]]:
    """Write every variant of the graph ``fp32`` into ``folder``; also the failures."""
    variants = [Variant("fp32", fp32, note="exported graph as shipped")]
    failures: dict[str, str] = {}

    def attempt(name: str, build: Callable[[Path], None], **kwargs: object) -> None:
        path = folder / f"{name.replace(' ', '_').replace(',', '')}.onnx"
        try:
            build(path)
            variants.append(Variant(name, path, **kwargs))
        except Exception as error:  # a variant that cannot be built is reported, not fatal
            failures[name] = f"{type(error).__name__}: {error}"[:400]

    def fp16(path: Path) -> None:
        converted = convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True)
        onnx.save(converted, str(path))

    attempt("fp16", fp16, note="float16 tensors, float32 inputs/outputs")
    prepared = folder / "prepared.onnx"
    quant_pre_process(str(fp32), str(prepared))

    def static(activation: QuantType, reduce_range: bool) -> Callable[[Path], None]:
        def build(path: Path) -> None:
            quantize_static(
                str(prepared),
                str(path),
                MelReader(calibration),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=reduce_range,
                activation_type=activation,
                weight_type=QuantType.QInt8,
            )

        return build

    attempt(
        "int8 QDQ, s8 act",
        static(QuantType.QInt8, False),
        note="per-channel s8 weights, s8 activations (ORT's default QDQ setting)",
    )
    attempt(
        "int8 QDQ, u8 act",
        static(QuantType.QUInt8, False),
        note="per-channel s8 weights, u8 activations",
    )
    attempt(
        "int8 QDQ, u8 act, 7-bit w",
        static(QuantType.QUInt8, True),
        note="as u8 act, weights in 7 bits (reduce_range) against AVX2 U8S8 overflow",
    )
    uint8 = next((v for v in variants if v.name == "int8 QDQ, u8 act"), None)
    if uint8 is not None:
        variants.append(
            Variant(
                "int8 QDQ, u8 act, U8U8 mode",
                uint8.path,
                {"session.x64quantprecision": "1"},
                "same file as u8 act; ORT's slower U8U8 kernels (session.x64quantprecision=1)",
            )
        )
    if not quick:
        for weight, label in ((QuantType.QInt8, "s8"), (QuantType.QUInt8, "u8")):
            attempt(
                f"int8 dynamic, {label} w",
                lambda path, w=weight: quantize_dynamic(str(prepared), str(path), weight_type=w),
                note=f"quantize_dynamic, {label} weights, activations quantised per call",
            )
    return variants, failures


def session(variant: Variant, threads: int, optimized: Path | None = None) -> ort.InferenceSession:
    """A CPU session of ``variant`` with ``threads`` non-spinning intra-op threads."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    for key, value in variant.session_config.items():
        options.add_session_config_entry(key, value)
    if optimized is not None:
        options.optimized_model_filepath = str(optimized)
    return ort.InferenceSession(str(variant.path), options, providers=["CPUExecutionProvider"])


KEY_OPS = (
    "Conv",
    "QLinearConv",
    "ConvInteger",
    "Gemm",
    "FusedGemm",
    "QGemm",
    "Cast",
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "Transpose",
)


def runtime_ops(variant: Variant, folder: Path) -> tuple[dict[str, int], int]:
    """How many of the key operators the graph has after ONNX Runtime's optimisations, and
    how many of its Conv weights are float16 there."""
    optimized = folder / f"optimized_{len(list(folder.glob('optimized_*')))}.onnx"
    session(variant, 1, optimized)
    graph = onnx.load(str(optimized)).graph
    counts = collections.Counter(node.op_type for node in graph.node)
    types = {tensor.name: tensor.data_type for tensor in graph.initializer}
    float16 = sum(
        types.get(node.input[1]) == onnx.TensorProto.FLOAT16
        for node in graph.node
        if node.op_type == "Conv"
    )
    return {op: counts[op] for op in KEY_OPS if counts[op]}, float16


def drift(output: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """How far ``output`` is from ``reference`` (rows are embeddings).

    Mean and min cosine similarity of the rows (0 for an all-zero row); the same after
    subtracting the reference's mean embedding over the set (centred: do the differences
    between sounds survive?); and max |output - reference| / max |reference|.
    """
    output, reference = output.astype(np.float64), reference.astype(np.float64)

    def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        dots = (a * b).sum(axis=1)
        return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)

    plain = cosines(output, reference)
    centre = reference.mean(axis=0)
    centred = cosines(output - centre, reference - centre)
    return {
        "mean_cosine": float(plain.mean()),
        "min_cosine": float(plain.min()),
        "mean_centred_cosine": float(centred.mean()),
        "min_centred_cosine": float(centred.min()),
        "max_relative_error": float(np.abs(output - reference).max() / np.abs(reference).max()),
    }


def input_dependence(embeddings: np.ndarray) -> float:
    """Spread of the embeddings over inputs relative to their size: mean std / rms."""
    return float(embeddings.std(axis=0).mean() / np.sqrt((embeddings**2).mean()))


# ---------------------------------------------------------------------------------------
# The study.

REGIMES = ("windows", "clips")


def regime_batches(signals: list[np.ndarray], regime: str) -> list[np.ndarray]:
    """One batch per signal: its 160 ms windows (``"windows"``) or itself (``"clips"``)."""
    return [windows_of(s) if regime == "windows" else s[None] for s in signals]


def noise_batch(regime: str, samples: int) -> np.ndarray:
    """Gaussian noise at four levels (-50 to -20 dB RMS): 16 windows, or 4 signals of
    ``samples``."""
    rows, size = (16, WINDOW) if regime == "windows" else (4, samples)
    levels = np.repeat([0.003, 0.01, 0.03, 0.1], rows // 4)[:, None]
    return (levels * np.random.default_rng(99).standard_normal((rows, size))).astype(np.float32)


@dataclass(frozen=True)
class SetupSpec:
    """How one set of weights is made, calibrated and evaluated."""

    description: str
    fitted_on: str | None  # the regime the BatchNorm statistics are fitted on (None: random)
    regimes: tuple[str, ...]  # int8 calibration and drift evaluation inputs


SETUPS = {
    "BN fitted on windows": SetupSpec(
        "random weights, BatchNorm statistics fitted on 160 ms windows of the calibration "
        "audio and of noise; int8 calibrated on windows; drift on held-out windows",
        "windows",
        ("windows",),
    ),
    "BN fitted on clips": SetupSpec(
        "random weights, BatchNorm statistics fitted on the whole calibration clips and on "
        "noise clips; int8 calibrated on whole clips; drift on held-out 10 s clips",
        "clips",
        ("clips",),
    ),
    "random BN": SetupSpec(
        "random weights, BatchNorm statistics randomised as asked (running_mean ~ N(0, 0.1), "
        "running_var ~ U(0.5, 1.5)); int8 calibrated on windows and clips; the embeddings are "
        "nearly constant over inputs, so drift here is not informative",
        None,
        REGIMES,
    ),
}


@dataclass
class Setup:
    """One set of weights: its variants and their drift."""

    rows: list[dict]
    variants: list[Variant]
    failures: dict[str, str]
    input_dependence: dict[str, float]
    calibration_shapes: list[list[int]]


YARDSTICK_NOISE = 1e-3
YARDSTICK = "yardstick: fp32, log-mels + 0.1 % noise"


def yardstick(
    model: MobileNetEmbedder, held_out: dict[str, np.ndarray], references: dict[str, np.ndarray]
) -> dict:
    """Drift of the fp32 torch model itself when its log-mels get Gaussian noise of 0.1 % of
    their standard deviation: how sensitive these weights are, to read the variants' drift by."""
    generator = torch.Generator().manual_seed(7)
    row: dict = {"variant": YARDSTICK}
    for key, mels in held_out.items():
        noisy = torch.from_numpy(mels)
        noise = torch.randn(noisy.shape, generator=generator)
        with torch.inference_mode():
            output = model.embed_mels(noisy + YARDSTICK_NOISE * noisy.std() * noise).numpy()
        row[f"drift_{key}"] = drift(output, references[key])
    return row


def evaluate(
    model: MobileNetEmbedder,
    spec: SetupSpec,
    audio: AudioSet,
    held_out: dict[str, np.ndarray],
    folder: Path,
    quick: bool,
) -> Setup:
    """Export ``model``, build every variant in ``folder`` (int8 calibrated on the setup's
    regimes), and measure each one's drift on the held-out log-mels of those regimes."""
    folder.mkdir(parents=True)
    fp32 = folder / "fp32.onnx"
    fp32.write_bytes(onnx_bytes(model, frontend=False))
    signals = list(audio.calibration.values())
    calibration = [
        log_mels(model, batch)
        for regime in spec.regimes
        for batch in regime_batches(signals, regime)
    ]
    held_out = {regime: held_out[regime] for regime in spec.regimes}
    with torch.inference_mode():
        references = {
            key: model.embed_mels(torch.from_numpy(mels)).numpy() for key, mels in held_out.items()
        }
    variants, failures = make_variants(fp32, calibration, folder, quick)
    rows = []
    for variant in variants:
        runner = session(variant, 2)
        row = {"variant": variant.name}
        for key, mels in held_out.items():
            row[f"drift_{key}"] = drift(runner.run(None, {"log_mels": mels})[0], references[key])
        rows.append(row)
    rows.append(yardstick(model, held_out, references))
    return Setup(
        rows,
        variants,
        failures,
        {key: input_dependence(value) for key, value in references.items()},
        [list(batch.shape) for batch in calibration],
    )


LATENCIES = {
    "window_1thread": "one 160 ms window, 1 thread",
    "windows_2threads": "all held-out 160 ms windows in one batch, 2 threads",
    "clips_2threads": "4 clips, 2 threads",
}


def time_variants(
    window_variants: list[Variant],
    clip_variants: list[Variant],
    held_out: dict[str, np.ndarray],
    repeats: int,
) -> dict[str, dict[str, float]]:
    """Latency of every variant in each of :data:`LATENCIES`, the variants timed in
    alternation: one 160 ms window at 1 thread (per call), every held-out window in one batch
    (as hear-mn batches timestamp windows, up to 256 a pass) and the held-out clips at 2
    threads. Windows run the files fitted on windows, clips those fitted on clips."""
    one_window = np.ascontiguousarray(held_out["windows"][:1])

    def window_calls(runner: ort.InferenceSession) -> Callable[[], None]:
        def calls() -> None:
            for _ in range(WINDOW_CALLS):
                runner.run(None, {"log_mels": one_window})

        return calls

    def once(runner: ort.InferenceSession, mels: np.ndarray) -> Callable[[], object]:
        return lambda: runner.run(None, {"log_mels": mels})

    names = [v.name for v in window_variants if v.name in {c.name for c in clip_variants}]
    by_name = {v.name: v for v in window_variants}
    clip_by_name = {v.name: v for v in clip_variants}
    runs = {
        "window_1thread": {n: window_calls(session(by_name[n], 1)) for n in names},
        "windows_2threads": {n: once(session(by_name[n], 2), held_out["windows"]) for n in names},
        "clips_2threads": {n: once(session(clip_by_name[n], 2), held_out["clips"]) for n in names},
    }
    timings: dict[str, dict[str, float]] = {name: {} for name in names}
    for key, contenders in runs.items():
        seconds = harness.medians(harness.interleave(contenders, repeats))
        if key == "window_1thread":
            seconds = {name: value / WINDOW_CALLS for name, value in seconds.items()}
        for name in names:
            timings[name][f"{key}_s"] = seconds[name]
            timings[name][f"{key}_speedup"] = seconds["fp32"] / seconds[name]
    return timings


def study(name: str, audio: AudioSet, folder: Path, repeats: int, quick: bool) -> dict:
    """Sizes, latencies and drift of every variant of ``name``'s backbone graph."""
    started = time.perf_counter()
    signals = list(audio.calibration.values())
    clips = np.stack(list(audio.held_out.values()))
    frontend = random_model(name)  # the frontend has no learnt weights
    held_out = {
        "windows": log_mels(frontend, np.concatenate([windows_of(s) for s in clips])),
        "clips": log_mels(frontend, clips),
    }
    setups = {}
    for setup_name, spec in SETUPS.items():
        model = random_model(name)
        if spec.fitted_on is not None:
            noise = noise_batch(spec.fitted_on, len(signals[0]))
            fit_batchnorm(model, [*regime_batches(signals, spec.fitted_on), noise])
        subfolder = folder / name / setup_name.replace(" ", "_")
        setups[setup_name] = evaluate(model, spec, audio, held_out, subfolder, quick)
    print(f"  {name}: variants built, drift measured; timing", flush=True)
    # Speed does not depend on the weights' values: windows are timed with the files
    # fitted on windows, clips with those fitted on clips.
    on_windows, on_clips = setups["BN fitted on windows"], setups["BN fitted on clips"]
    timings = time_variants(on_windows.variants, on_clips.variants, held_out, repeats)
    speed = []
    for variant in on_windows.variants:
        if variant.name not in timings:
            continue
        ops, float16 = runtime_ops(variant, folder / name)
        speed.append(
            {
                "variant": variant.name,
                "note": variant.note,
                "session_config": variant.session_config,
                "file_bytes": variant.path.stat().st_size,
                "runtime_ops": ops,
                "float16_conv_weights": float16,
                **timings[variant.name],
            }
        )
    return {
        "model": name,
        "held_out_windows": list(held_out["windows"].shape),
        "held_out_clips": list(held_out["clips"].shape),
        "speed": speed,
        "drift": {
            setup_name: {
                "description": SETUPS[setup_name].description,
                "fitted_on": SETUPS[setup_name].fitted_on,
                "calibration_inputs": setup.calibration_shapes,
                "input_dependence": setup.input_dependence,
                "variants": setup.rows,
                "failed_variants": setup.failures,
            }
            for setup_name, setup in setups.items()
        },
        "seconds": time.perf_counter() - started,
    }


def _row(model: dict, setup: str, variant: str) -> dict:
    """The drift row of ``variant`` in ``setup`` of one model's results."""
    return next(r for r in model["drift"][setup]["variants"] if r["variant"] == variant)


def _drift_words(model: dict, variant: str, regime: str) -> str:
    """Drift of ``variant`` on ``regime`` (weights fitted on it) in words, against the
    yardstick's."""
    setup = f"BN fitted on {regime}"
    d = _row(model, setup, variant)[f"drift_{regime}"]
    noise = _row(model, setup, YARDSTICK)[f"drift_{regime}"]
    ratio = d["max_relative_error"] / max(noise["max_relative_error"], 1e-12)
    return (
        f"{regime} min cos {d['min_cosine']:.3f}, max rel err {d['max_relative_error']:.2g} "
        f"({ratio:.2g}x the yardstick's)"
    )


SHORT = {
    "window_1thread": "1 window at 1 thread",
    "windows_2threads": "a batch of windows at 2 threads",
    "clips_2threads": "4 clips at 2 threads",
}


def _speeds(row: dict) -> str:
    """A timing row's speed-ups against fp32, in words."""
    return "/".join(f"{row[f'{key}_speedup']:.2f}x" for key in LATENCIES)


def conclusion(results: dict) -> str:
    """A short conclusion derived from the numbers (so that a re-run keeps it true)."""
    picks = []  # (model, its fastest int8 row; near-ties (3 %) go to the smaller drift)
    for model in results["models"]:
        int8 = [r for r in model["speed"] if r["variant"].startswith("int8")]
        if not int8:
            continue

        def speed(row: dict) -> float:
            return float(np.prod([row[f"{key}_speedup"] for key in LATENCIES]))

        def windows_drift(row: dict, model: dict = model) -> float:
            drift_row = _row(model, "BN fitted on windows", row["variant"])
            return drift_row["drift_windows"]["max_relative_error"]

        best = max(speed(r) for r in int8)
        picks.append((model, min((r for r in int8 if speed(r) >= 0.97 * best), key=windows_drift)))
    if not picks:
        return "No int8 variant could be built."
    wins = {
        m["model"]: [SHORT[key] for key in LATENCIES if r[f"{key}_speedup"] > 1.05]
        for m, r in picks
    }
    order = "/".join(SHORT.values())
    speeds = "; ".join(
        f"{m['model']} {r['variant']}: {_speeds(r)} ("
        + (
            f"faster only for {' and '.join(wins[m['model']])}"
            if wins[m["model"]]
            else "never faster"
        )
        + ")"
        for m, r in picks
    )
    drifts = "; ".join(
        f"{m['model']}: {_drift_words(m, r['variant'], 'windows')}, "
        f"{_drift_words(m, r['variant'], 'clips')}"
        for m, r in picks
    )
    sentences = [
        f"Fastest int8 variant (near-ties to the smaller drift) against the fp32 graph on this "
        f"CPU ({order}): {speeds}.",
        "Its drift, with BatchNorm statistics fitted on audio of the length it is run on (the "
        f"yardstick: fp32 with 0.1 % noise on its log-mels): {drifts}; with the randomised "
        "statistics the embeddings barely depend on the input, so the small drift there "
        "says nothing.",
    ]
    fp16 = [(m, next((r for r in m["speed"] if r["variant"] == "fp16"), None)) for m, _ in picks]
    fp16 = [(m, r) for m, r in fp16 if r is not None]
    if fp16:
        in_float32 = all(r["float16_conv_weights"] == 0 for _, r in fp16)
        how = "its convolutions run in float32 behind Casts" if in_float32 else "partly float16"
        sentences.append(
            "fp16 halves the file at about fp32's speed ("
            + "; ".join(f"{m['model']} {_speeds(r)}" for m, r in fp16)
            + f"; {how}), with "
            + "; ".join(f"{m['model']} {_drift_words(m, 'fp16', 'windows')}" for m, _ in fp16)
            + "."
        )
    if not any(wins.values()):
        sentences.append(
            "So an int8 option is not worth shipping (slower here whatever its drift) and fp16 "
            "only saves disk space; all drift here comes from random weights, and the "
            "pretrained weights would have to be measured before any quality claim."
        )
    else:
        sentences.append(
            "So int8 pays only in the cases named, at a drift (on random weights) far beyond "
            "the yardstick: not worth shipping on this evidence; at most an opt-in for those "
            "cases once its drift has been measured and stated with the pretrained weights. "
            "fp16 only saves disk space."
        )
    return " ".join(sentences)


def markdown(results: dict) -> str:
    """The results as markdown tables (speed and size; drift)."""
    env = results["environment"]
    lines = [
        f"Machine: {env['machine']} ({env['cpu']}), {env['cpus']} CPUs; onnxruntime "
        f"{env['onnxruntime']}, onnx {env['onnx']}, torch {env['torch']}.",
        "",
        f"Weights: {results['weights']}.",
        "",
        f"Audio: {results['audio']['summary']}",
        "",
        f"Latency: medians of {results['repeats']} alternated runs in one process, ONNX Runtime "
        "CPU sessions without spinning; one 160 ms window = log-mels (1, 128, 16) at 1 thread "
        f"(per call; a run is {WINDOW_CALLS} calls); every held-out 160 ms window in one batch "
        f"({results['held_out_windows']}, 128, 16) at 2 threads (hear-mn batches up to 256 "
        f"timestamp windows a pass); 4 clips of {results['held_out_seconds']:g} s, log-mels "
        "(4, 128, frames), at 2 threads. Speed > 1x: faster than fp32. Speed does not depend "
        "on the weights' values: windows run the files fitted on windows, clips those fitted "
        "on clips.",
        "",
        "| model | variant | file (bytes) | 1 window, 1 thread (ms) | vs fp32 | "
        f"{results['held_out_windows']} windows, 2 threads (ms) | vs fp32 | "
        "4 clips, 2 threads (ms) | vs fp32 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for model in results["models"]:
        for r in model["speed"]:
            cells = [
                f"{r[f'{key}_s'] * 1e3:.{3 if key == 'window_1thread' else 1}f} | "
                f"{r[f'{key}_speedup']:.2f}x"
                for key in LATENCIES
            ]
            lines.append(
                f"| {model['model']} | {r['variant']} | {r['file_bytes']:,} | "
                + " | ".join(cells)
                + " |"
            )
    lines += [
        "",
        "Drift against the fp32 torch model on held-out speech and music (other texts, voices, "
        "melodies and instruments than calibration), on every 160 ms window or on the whole "
        "clips: cosine similarity per embedding (0 for an all-zero one), centred cosine (both "
        "embeddings minus the reference's mean over the set: do the differences between "
        "sounds survive?), and max |q - ref| / max |ref|. Weights: "
        + "; ".join(f"`{name}`: {spec.description}" for name, spec in SETUPS.items())
        + ". The yardstick row is the fp32 torch model with 0.1 % Gaussian noise added "
        "to its log-mels. In brackets: the embeddings' spread over inputs / their size.",
        "",
        "| model | weights | input (spread) | variant | mean cos | min cos | min centred cos | "
        "max rel err |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model in results["models"]:
        for setup_name, setup in model["drift"].items():
            for regime, spread in setup["input_dependence"].items():
                for r in setup["variants"]:
                    d = r[f"drift_{regime}"]
                    lines.append(
                        f"| {model['model']} | {setup_name} | {regime} ({spread:.0e}) | "
                        f"{r['variant']} | {d['mean_cosine']:.6f} | {d['min_cosine']:.6f} | "
                        f"{d['min_centred_cosine']:.4f} | {d['max_relative_error']:.1e} |"
                    )
    failed = {
        f"{m['model']} ({setup_name}) {k}": v
        for m in results["models"]
        for setup_name, setup in m["drift"].items()
        for k, v in setup["failed_variants"].items()
    }
    if failed:
        lines += ["", "Variants that could not be built or run:", ""]
        lines += [f"- {key}: {value}" for key, value in failed.items()]
    ops = [
        f"{m['model']} {r['variant']}: "
        + ", ".join(f"{k} {v}" for k, v in r["runtime_ops"].items())
        for m in results["models"]
        for r in m["speed"]
    ]
    lines += [
        "",
        "<details><summary>operators after ONNX Runtime's graph optimisations</summary>",
        "",
        *(f"- {line}" for line in ops),
        "",
        "</details>",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = harness.parser(__doc__, repeats=15)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument(
        "--markdown",
        type=Path,
        default=None,
        help=f"default {RESULTS / 'quantization.md'} (none with --quick)",
    )
    args = harness.parse_args(parser, default_json=RESULTS / "quantization.json")
    logging.getLogger().setLevel(logging.ERROR)  # the quantiser's per-node notes
    models = args.models.split(",")
    if args.quick and args.models == ",".join(MODELS):
        models = ["mn04_e1_l"]
    repeats = args.repeats if args.smoke or not args.quick else 3
    calibration_seconds, held_out_seconds = (2.0, 2.0) if args.quick else (4.0, 10.0)
    json_path = args.json
    markdown_path = args.markdown or (None if args.quick else RESULTS / "quantization.md")
    torch.set_num_threads(args.threads)

    results: dict = {
        "command": harness.command_line(),
        "environment": {**harness.environment(args.threads), "onnx": onnx.__version__},
        "weights": WEIGHTS_NOTE,
        "repeats": repeats,
        "smoke": args.smoke,
        "window_calls_per_run": WINDOW_CALLS,
        "calibration_seconds": calibration_seconds,
        "held_out_seconds": held_out_seconds,
        "models": [],
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hear_mn_quant_") as scratch:
        folder = Path(scratch)
        audio = synthesise(folder, calibration_seconds, held_out_seconds)
        results["audio"] = {
            "sources": audio.sources,
            "calibration_s": {k: len(v) / SAMPLE_RATE for k, v in audio.calibration.items()},
            "held_out_s": {k: len(v) / SAMPLE_RATE for k, v in audio.held_out.items()},
            "summary": (
                f"calibration {len(audio.calibration)} clips of {calibration_seconds:g} s "
                f"(speech, music), held out {len(audio.held_out)} clips of "
                f"{held_out_seconds:g} s (2 speech, 2 music); speech: "
                f"{audio.sources['espeak-ng']}; music: {audio.sources['fluidsynth']}."
            ),
        }
        results["held_out_windows"] = sum(len(s) // WINDOW for s in audio.held_out.values())
        for tool, source in audio.sources.items():
            print(f"{tool}: {source}")
        print(f"Weights: {WEIGHTS_NOTE}.", flush=True)
        for name in models:
            results["models"].append(study(name, audio, folder, repeats, args.quick))
    results["seconds"] = time.perf_counter() - started
    results["conclusion"] = conclusion(results)
    table = markdown(results)
    print()
    print(table)
    print()
    print(results["conclusion"])
    if json_path is not None:
        harness.write_json(json_path, results)
        print(f"\nwrote {json_path}")
    if markdown_path is not None:
        markdown_path.parent.mkdir(parents=True, exist_ok=True)
        text = (
            f"# Quantisation study\n\n    {results['command']}\n\n"
            f"({results['seconds'] / 60:.0f} min on this machine.)\n\n{table}\n\n"
            f"## Conclusion\n\n{results['conclusion']}\n"
        )
        markdown_path.write_text(text)
        print(f"wrote {markdown_path}")


if __name__ == "__main__":
    main()
