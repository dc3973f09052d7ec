"""Print the parity table: max relative error of hear-mn against every reference fixture.

    python benchmarks/parity_table.py          # needs ../shared (the project's fixtures)
    python benchmarks/parity_table.py --smoke --json /tmp/parity.json   # one fixture a folder

For each fixture and input: max|ours - ref| / max|ref| of scene and timestamp embeddings,
and whether timestamps are identical. EfficientAT fixtures (the paper's configurations in
reference/, the EfficientAT_HEAR package's modules in seed_system/, each loaded through its
module of the same name) use random checkpoints in the release format; Audio-MLP fixtures
use the real released checkpoints.
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


def fixture_models(first_only: bool) -> list[tuple[str, object, Path, Path]]:
    """(fixture name, a loader of its model, its reference .npz, its inputs .npz); with
    ``first_only`` the first fixture of each folder."""
    reference_dir, seed_dir, audiomlp_dir = (
        SHARED / f for f in ("reference", "seed_system", "audiomlp")
    )
    found = []
    for name, entry in json.loads((reference_dir / "manifest.json").read_text()).items():
        arch = entry["checkpoint"].split("_")[0]
        config = f"{arch}_mels_256_e1_l" if entry["n_mels"] == 256 else f"{arch}_e1_l"
        load = functools.partial(
            hear_mn.create_model,
            config,
            weights=reference_dir / entry["checkpoint"],
            features=entry["features"],
        )
        found.append((name, load, reference_dir / f"{name}.npz", reference_dir / "inputs.npz"))
    for name, entry in json.loads((seed_dir / "manifest.json").read_text()).items():
        weights = seed_dir / entry["weights"]
        if not weights.exists():
            weights = reference_dir / entry["weights"]
        # the module of the same name
        load = functools.partial(_module_model, name, str(weights))
        found.append((name, load, seed_dir / f"{name}.npz", reference_dir / "inputs.npz"))
    for name in ("kwmlp", "audiomae"):
        load = functools.partial(hear_mn.create_model, name, weights=audiomlp_dir / f"{name}.pth")
        inputs = audiomlp_dir / "audiomlp_inputs.npz"
        found.append((name, load, audiomlp_dir / f"{name}_ref.npz", inputs))
    if first_only:
        folders: dict[Path, tuple] = {}
        for row in found:
            folders.setdefault(row[2].parent, row)
        found = list(folders.values())
    return found


def _module_model(name: str, weights: str) -> hear_mn.EmbeddingModel:
    return importlib.import_module(f"hear_mn.{name}").load_model(weights)


def main() -> None:
    parser = harness.parser(__doc__, repeats=1)
    args = harness.parse_args(parser)
    if not SHARED.exists():
        sys.exit(f"needs the fixtures at {SHARED}")
    torch.set_num_threads(args.threads)
    lines = [
        "| fixture | input | scene | timestamp embeddings | timestamps identical |",
        "|---|---|---|---|---|",
    ]
    rows = []
    for name, load, reference, inputs in fixture_models(first_only=args.smoke):
        for key, scene, stamp, same in rows_for(load(), np.load(reference), np.load(inputs)):
            rows.append(
                {"fixture": name, "input": key, "scene": scene, "timestamps": stamp, "same": same}
            )
            lines.append(f"| {name} | {key} | {scene:.1e} | {stamp} | {same} |")
    harness.report(args, {"rows": rows}, "\n".join(lines))


if __name__ == "__main__":
    main()
