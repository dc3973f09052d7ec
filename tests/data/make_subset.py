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

# EfficientAT paper configurations (reference/manifest.json keys), on the 1.07 s input only:
# together they tap every feature kind (e1, l, se, block, clf, all_se, mels) of mn04.
REFERENCE = ("mn04_e1_l", "mn04_e1_l_se_block", "mn04_clf_all_se_mels")
REFERENCE_INPUTS = ("len1.07",)
# Newer-wrapper modules (seed_system/manifest.json keys): the two of mn01_seed1.pt (channel
# and time pooling) and one of mn04_seed1.pt.
SEED_SYSTEM = ("mn01_all_b_mel_avgs", "mn01_all_b_avg_max_time_pool", "mn04_all_b_mel_avgs")
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
        FIXTURES / "reference" / "manifest.json", reference / "manifest.json", REFERENCE
    )
    checkpoints = {entry["checkpoint"] for entry in entries.values()}
    for key in REFERENCE:
        _trim_npz(FIXTURES / "reference" / f"{key}.npz", reference / f"{key}.npz", REFERENCE_INPUTS)

    entries = _trim_manifest(
        FIXTURES / "seed_system" / "manifest.json", seed_system / "manifest.json", SEED_SYSTEM
    )
    for key in SEED_SYSTEM:
        _trim_npz(
            FIXTURES / "seed_system" / f"{key}.npz", seed_system / f"{key}.npz", REFERENCE_INPUTS
        )
        weights = entries[key]["weights"]
        if (FIXTURES / "seed_system" / weights).exists():
            _copy(FIXTURES / "seed_system" / weights, seed_system / weights)
        else:  # the mn04 and mn10 modules use ../reference/'s checkpoints
            checkpoints.add(weights)
    for name in sorted(checkpoints):
        _copy(FIXTURES / "reference" / name, reference / name)

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
