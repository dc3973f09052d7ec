"""Print the parity table: max relative error of hear-mn against every reference fixture.

    python benchmarks/parity_table.py          # needs ../shared (the project's fixtures)

For each fixture and input: max|ours - ref| / max|ref| of scene and timestamp embeddings,
and whether timestamps are identical. EfficientAT fixtures (the paper's configurations in
reference/, the EfficientAT_HEAR package's modules in seed_system/, each loaded through its
module of the same name) use random checkpoints in the release format; Audio-MLP fixtures
use the real released checkpoints.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

import hear_mn

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"


def _error(ours: torch.Tensor, ref: np.ndarray) -> float:
    return float(np.abs(ours.numpy() - ref).max() / np.abs(ref).max())


def rows_for(model: hear_mn.EmbeddingModel, reference: np.lib.npyio.NpzFile, inputs) -> list:
    rows = []
    for key in inputs.files:
        audio = torch.from_numpy(inputs[key])
        scene = _error(hear_mn.get_scene_embeddings(audio, model), reference[f"{key}/scene"])
        if f"{key}/timestamps" in reference.files:
            embeddings, timestamps = hear_mn.get_timestamp_embeddings(audio, model)
            stamp = _error(embeddings, reference[f"{key}/timestamp_embeddings"])
            same = bool(np.array_equal(timestamps.numpy(), reference[f"{key}/timestamps"]))
            rows.append((key, scene, f"{stamp:.1e}", "yes" if same else "NO"))
        else:
            rows.append((key, scene, "-", "-"))
    return rows


def main() -> None:
    if not SHARED.exists():
        sys.exit(f"needs the fixtures at {SHARED}")
    torch.set_num_threads(2)
    print("| fixture | input | scene | timestamp embeddings | timestamps identical |")
    print("|---|---|---|---|---|")
    reference_dir = SHARED / "reference"
    inputs = np.load(reference_dir / "inputs.npz")
    manifest = json.loads((reference_dir / "manifest.json").read_text())
    for name, entry in manifest.items():
        arch = entry["checkpoint"].split("_")[0]
        config = f"{arch}_mels_256_e1_l" if entry["n_mels"] == 256 else f"{arch}_e1_l"
        model = hear_mn.create_model(
            config, weights=reference_dir / entry["checkpoint"], features=entry["features"]
        )
        for row in rows_for(model, np.load(reference_dir / f"{name}.npz"), inputs):
            print(f"| {name} | {row[0]} | {row[1]:.1e} | {row[2]} | {row[3]} |")
    seed_dir = SHARED / "seed_system"
    for name, entry in json.loads((seed_dir / "manifest.json").read_text()).items():
        weights = seed_dir / entry["weights"]
        if not weights.exists():
            weights = reference_dir / entry["weights"]
        module = importlib.import_module(f"hear_mn.{name}")  # the module of the same name
        model = module.load_model(str(weights))
        for row in rows_for(model, np.load(seed_dir / f"{name}.npz"), inputs):
            print(f"| {name} | {row[0]} | {row[1]:.1e} | {row[2]} | {row[3]} |")
    audiomlp_dir = SHARED / "audiomlp"
    inputs = np.load(audiomlp_dir / "audiomlp_inputs.npz")
    for name in ("kwmlp", "audiomae"):
        model = hear_mn.create_model(name, weights=audiomlp_dir / f"{name}.pth")
        for row in rows_for(model, np.load(audiomlp_dir / f"{name}_ref.npz"), inputs):
            print(f"| {name} | {row[0]} | {row[1]:.1e} | {row[2]} | {row[3]} |")


if __name__ == "__main__":
    main()
