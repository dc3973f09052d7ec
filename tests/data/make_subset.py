"""Regenerate tests/data/, the fixture subset that every clone checks, from ../shared/fixtures.

    python tests/data/make_subset.py        # from the repository root, with ../shared present

Checkpoints are copied byte for byte. Each ``.npz`` keeps only the arrays of the inputs listed
below, unchanged and under the same key names; each manifest keeps only the listed entries.
The folder layout mirrors ../shared/fixtures, so the same comparison code reads both.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent
FIXTURES = DATA.parents[2] / "shared" / "fixtures"
BUDGET = 6_000_000  # bytes, for everything under tests/data/

# The 1.07 s input of reference/inputs.npz (the seed-system fixtures' input).
REFERENCE_INPUTS = ("len1.07",)
# Newer-wrapper modules (seed_system/manifest.json keys) of mn01_seed1.pt (0.6 MB): channel
# and time pooling. The mn04 and mn10 checkpoints (4 and 20 MB) stay in ../shared, read in place.
SEED_SYSTEM = ("mn01_all_b_mel_avgs", "mn01_all_b_avg_max_time_pool")
# Audio-MLP: kwmlp on the 1 s input (its checkpoint ships in hear_mn/checkpoints/).
AUDIOMLP = ("kwmlp",)
AUDIOMLP_INPUTS = ("len1",)


def _trim_npz(source: Path, target: Path, inputs: tuple[str, ...]) -> None:
    """``source``'s arrays whose key starts with one of ``inputs`` (``K`` or ``K/...``)."""
    with np.load(source) as data:
        kept = {key: data[key] for key in data.files if key.split("/")[0] in inputs}
    assert {key.split("/")[0] for key in kept} == set(inputs), (source, sorted(kept))
    np.savez_compressed(target, **kept)


def _trim_manifest(source: Path, target: Path, keys: tuple[str, ...]) -> dict:
    manifest = json.loads(source.read_text())
    kept = {key: manifest[key] for key in keys}
    target.write_text(json.dumps(kept, indent=1) + "\n")
    return kept


def _copy(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    assert target.read_bytes() == source.read_bytes(), target


def main() -> None:
    if not FIXTURES.is_dir():
        raise SystemExit(f"{FIXTURES} not found: run this where ../shared is present")
    for folder in ("reference", "seed_system", "audiomlp"):
        (DATA / folder).mkdir(exist_ok=True)

    reference, seed_system, audiomlp = (
        DATA / name for name in ("reference", "seed_system", "audiomlp")
    )
    _trim_npz(FIXTURES / "reference" / "inputs.npz", reference / "inputs.npz", REFERENCE_INPUTS)
    entries = _trim_manifest(
        FIXTURES / "seed_system" / "manifest.json", seed_system / "manifest.json", SEED_SYSTEM
    )
    for key in SEED_SYSTEM:
        _trim_npz(
            FIXTURES / "seed_system" / f"{key}.npz", seed_system / f"{key}.npz", REFERENCE_INPUTS
        )
        weights = entries[key]["weights"]
        _copy(FIXTURES / "seed_system" / weights, seed_system / weights)

    _trim_npz(
        FIXTURES / "audiomlp" / "audiomlp_inputs.npz",
        audiomlp / "audiomlp_inputs.npz",
        AUDIOMLP_INPUTS,
    )
    for name in AUDIOMLP:
        _trim_npz(
            FIXTURES / "audiomlp" / f"{name}_ref.npz", audiomlp / f"{name}_ref.npz", AUDIOMLP_INPUTS
        )

    total = sum(path.stat().st_size for path in DATA.rglob("*") if path.is_file())
    print(f"tests/data: {total} bytes (budget {BUDGET})")
    assert total <= BUDGET, f"the subset is {total} bytes, over the {BUDGET} byte budget"


if __name__ == "__main__":
    main()
