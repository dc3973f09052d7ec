"""How far hear-mn is from each reference fixture, and how far the reference is from exact.

    python benchmarks/precision_margin.py [--quick | --smoke] [--json FILE]

The parity rule (../shared/README.md) is max|ours - ref| <= 1e-5 * max|ref| per array. For
each fixture this prints

* ours: the worst relative error of hear-mn (float32, as shipped) over every input and array
  (scene, timestamp embeddings);
* floor: the worst relative error between the reference and the same model computed in
  float64 (same weights, same float32 input): how far the float32 reference itself is from
  the exact result of its arrays. Where the floor nears 1e-5, only a computation with the
  reference's own float32 rounding (its mel matrix bits, its STFT) can meet the rule.

For the frontend fixture (frontend.npz) it also prints the log-mel with an FFT of another
library (scipy's pocketfft in float32): what a torch build without MKL's FFT would give.
``--quick`` runs the frontend and one fixture of each folder; ``--smoke`` one fixture of
tests/data (no ../shared needed). A full run writes benchmarks/results/precision_margin.json.
"""

from __future__ import annotations

import functools
import importlib
import json
import sys
from pathlib import Path

import harness
import numpy as np
import torch

from hear_mn.models.efficientat.log_mel_frontend import LogMelFrontend, kaldi_mel_banks

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "fixtures"
REFERENCE = SHARED / "reference"


def relative_error(ours: np.ndarray | torch.Tensor, ref: np.ndarray) -> float:
    """max|ours - ref| / max|ref|, in float64."""
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


def frontend_rows() -> list[dict]:
    """The mel matrix and the log-mel of frontend.npz: ours, float64, another FFT."""
    data = np.load(REFERENCE / "frontend.npz")
    audio, ref, matrix = data["input"], data["mel"], data["mel_banks_128"]
    ours = LogMelFrontend()
    rows = [
        {
            "fixture": "frontend.npz mel_banks_128 (absolute)",
            "ours": float(
                np.abs(kaldi_mel_banks(128, 1024, 32000, 0.0, 15000.0).numpy() - matrix).max()
            ),
            "floor": float(np.abs(_exact_matrix() - matrix).max()),
        }
    ]
    exact = LogMelFrontend().double()
    exact.mel_matrix = torch.nn.functional.pad(torch.from_numpy(matrix).double(), (0, 1))
    exact.window = torch.nn.functional.pad(
        torch.hann_window(800, periodic=False, dtype=torch.float64), (112, 112)
    )
    row = {
        "fixture": "frontend.npz mel",
        "ours": relative_error(ours(torch.from_numpy(audio)), ref),
        "floor": relative_error(exact(torch.from_numpy(audio).double()), ref),
    }
    other_fft = _log_mel_with_scipy_fft(ours, torch.from_numpy(audio))
    if other_fft is not None:
        row["another_fft_float32"] = relative_error(other_fft, ref)
    rows.append(row)
    return rows


def _exact_matrix() -> np.ndarray:
    """The 128 x 512 Kaldi matrix computed in float64."""
    mel = lambda f: 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)  # noqa: E731
    step = (mel(15000.0) - mel(0.0)) / 129
    bands = np.arange(128, dtype=np.float64)[:, None]
    left, centre, right = bands * step, (bands + 1) * step, (bands + 2) * step
    bins = mel(np.arange(512) * 32000 / 1024)
    return np.clip(
        np.minimum((bins - left) / (centre - left), (right - bins) / (right - centre)), 0, None
    )


def _log_mel_with_scipy_fft(frontend: LogMelFrontend, audio: torch.Tensor) -> np.ndarray | None:
    try:
        import scipy.fft
    except ImportError:
        return None
    half = frontend.n_fft // 2
    padded = torch.nn.functional.pad(
        frontend._emphasise(audio)[:, None], (half, half), mode="reflect"
    )[:, 0]
    frames = (padded.unfold(-1, frontend.n_fft, frontend.hop_length) * frontend.window).numpy()
    spectrum = scipy.fft.rfft(frames, axis=-1)  # float32 in, complex64 out
    power = torch.from_numpy((spectrum.real**2 + spectrum.imag**2).astype(np.float32)).transpose(
        1, 2
    )
    return frontend._power_to_log_mel(power).numpy()


def fixture_error(
    model: object, reference: np.lib.npyio.NpzFile, inputs: np.lib.npyio.NpzFile
) -> float:
    """Worst relative error of ``model``'s scene and timestamp embeddings over all inputs."""
    worst = 0.0
    for key in inputs.files:
        audio = torch.from_numpy(inputs[key])
        worst = max(
            worst, relative_error(model.get_scene_embeddings(audio), reference[f"{key}/scene"])
        )
        if f"{key}/timestamps" in reference.files:
            embeddings, _ = model.get_timestamp_embeddings(audio)
            worst = max(worst, relative_error(embeddings, reference[f"{key}/timestamp_embeddings"]))
    return worst


def in_float64(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` computing in float64 (weights, buffers and the audio it is given)."""
    model.double()
    model.require_float32 = lambda: None
    model._audio_batch = lambda audio, sample_rate=None: torch.as_tensor(audio).double()
    return model


def _load_model(module: str, weights: str, **options: object) -> torch.nn.Module:
    return importlib.import_module(module).load_model(weights, **options)


def fixtures(quick: bool) -> list[tuple[str, object, Path]]:
    """(name, loader of a fresh model, reference .npz) for every fixture."""
    found = []
    manifest = json.loads((REFERENCE / "manifest.json").read_text())
    for name, entry in manifest.items():
        arch = entry["checkpoint"].split("_")[0]
        module = (
            f"hear_mn.{arch}_mels_256_e1_l" if entry["n_mels"] == 256 else f"hear_mn.{arch}_e1_l"
        )
        weights, features = str(REFERENCE / entry["checkpoint"]), entry["features"]
        load = functools.partial(_load_model, module, weights, features=features)
        found.append((f"reference/{name}", load, REFERENCE / f"{name}.npz"))
    for folder in ("seed_system", "dymn"):
        manifest = json.loads((SHARED / folder / "manifest.json").read_text())
        for name, entry in manifest.items():
            weights = SHARED / folder / entry["weights"]
            if not weights.exists():
                weights = REFERENCE / entry["weights"]
            if folder == "dymn":
                module = f"hear_mn.{entry['released_file'].split('_')[0]}_all_b_mel_avgs"
                options = {"mode": entry["mode"], "all_blocks": entry["all_blocks"]}
            else:
                module, options = f"hear_mn.{name}", {}
            load = functools.partial(_load_model, module, str(weights), **options)
            found.append((f"{folder}/{name}", load, SHARED / folder / f"{name}.npz"))
    if quick:
        firsts = {}
        for row in found:
            firsts.setdefault(row[0].split("/")[0], row)
        found = list(firsts.values())
    return found


def smoke_fixtures() -> tuple[list[tuple[str, object, Path]], Path]:
    """One fixture of the subset every clone has (tests/data), and its inputs."""
    data = ROOT / "tests" / "data"
    name, entry = next(
        iter(json.loads((data / "seed_system" / "manifest.json").read_text()).items())
    )
    weights = str(data / "seed_system" / entry["weights"])
    load = functools.partial(_load_model, f"hear_mn.{name}", weights)
    return [(f"tests/data/{name}", load, data / "seed_system" / f"{name}.npz")], data / "reference"


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table, then the worst error and the largest floor."""
    lines = [
        "| fixture | ours (float32) | floor: reference vs float64 | another FFT (float32) |",
        "|---|---|---|---|",
    ]
    for row in rows:
        other = row.get("another_fft_float32")
        shown = "-" if other is None else f"{other:.2e}"
        lines.append(f"| {row['fixture']} | {row['ours']:.2e} | {row['floor']:.2e} | {shown} |")
    relative = [row for row in rows if "absolute" not in row["fixture"]]
    worst = max(relative, key=lambda row: row["ours"])
    lines.append(
        f"\nworst (arrays, relative): ours {worst['ours']:.2e} ({worst['fixture']}); "
        f"largest floor {max(row['floor'] for row in relative):.2e}"
    )
    return "\n".join(lines)


def main() -> None:
    parser = harness.parser(__doc__, repeats=1)
    args = harness.parse_args(parser)
    if not SHARED.exists():
        sys.exit(f"needs the fixtures at {SHARED}")
    torch.set_num_threads(args.threads)
    rows = frontend_rows()
    inputs = np.load(REFERENCE / "inputs.npz")
    chosen = fixtures(args.quick)[: 1 if args.smoke else None]  # smoke: one fixture
    for name, load, reference_path in chosen:
        reference = np.load(reference_path)
        ours = fixture_error(load(), reference, inputs)
        floor = fixture_error(in_float64(load()), reference, inputs)
        rows.append({"fixture": name, "ours": ours, "floor": floor})
        print(f"{name:55s} ours {ours:.2e}  floor {floor:.2e}", file=sys.stderr, flush=True)
    lines = [
        "| fixture | ours (float32) | floor: reference vs float64 | another FFT (float32) |",
        "|---|---|---|---|",
    ]
    for row in rows:
        other = row.get("another_fft_float32")
        lines.append(
            f"| {row['fixture']} | {row['ours']:.2e} | {row['floor']:.2e} | "
            f"{'-' if other is None else f'{other:.2e}'} |"
        )
    worst = max(rows[1:], key=lambda row: row["ours"])
    lines.append(
        f"\nworst (arrays, relative): ours {worst['ours']:.2e} ({worst['fixture']}); "
        f"largest floor {max(row['floor'] for row in rows[1:]):.2e}"
    )
    environment = {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl": torch.backends.mkl.is_available(),
    }
    harness.report(args, {"environment": environment, "rows": rows}, "\n".join(lines))


if __name__ == "__main__":
    main()
