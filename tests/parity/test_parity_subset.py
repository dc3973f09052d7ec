"""Exactness in every clone: the fixture subset in tests/data/ reproduced, no ../shared needed.

tests/data/ holds a few of ../shared's fixtures (tests/data/README.md): the mn04 and mn01
random checkpoints, the short-input arrays of three mn04 paper configurations and three
newer-wrapper modules, and kwmlp's (real, shipped) outputs on a 1 s input. They are checked
with the same helpers and the same agreement rule as test_parity.py, test_seed_system.py and
test_pretrained.py, which check the full set where ../shared exists.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from support.reference import (
    AUDIOMLP,
    DATA,
    SHARED,
    assert_matches_reference,
    assert_seed_system_fixture,
    reference_manifest,
    require_shared,
)

import hear_mn.kwmlp

SEED_SYSTEM_SUBSET = reference_manifest(DATA / "seed_system")
BUDGET = 6_000_000  # bytes: ../shared/README.md allows at most 6 MB in tests/data/
LARGEST_FILE = 2_000_000  # bytes: larger checkpoints (mn04, mn10) are read from ../shared


@pytest.mark.parametrize("name", sorted(SEED_SYSTEM_SUBSET) or ["subset-missing"])
def test_seed_system_subset(name: str) -> None:
    assert_seed_system_fixture(DATA / "seed_system", name, SEED_SYSTEM_SUBSET[name])


def test_audiomlp_subset_with_the_shipped_checkpoint() -> None:
    model = hear_mn.kwmlp.load_model()  # hear_mn/checkpoints/kwmlp.pth, offline
    reference = np.load(DATA / "audiomlp" / "kwmlp_ref.npz")
    inputs = DATA / "audiomlp" / "audiomlp_inputs.npz"
    assert_matches_reference(hear_mn.kwmlp, model, reference, inputs)


def test_the_subset_is_small_and_covers_each_family() -> None:
    files = [path for path in DATA.rglob("*") if path.is_file() and "__pycache__" not in path.parts]
    assert sum(path.stat().st_size for path in files) <= BUDGET
    assert max(path.stat().st_size for path in files) <= LARGEST_FILE
    assert {entry["weights"] for entry in SEED_SYSTEM_SUBSET.values()} == {"mn01_seed1.pt"}
    assert len(SEED_SYSTEM_SUBSET) >= 2
    assert (DATA / "audiomlp" / "kwmlp_ref.npz").is_file()


def test_the_subset_is_an_exact_copy_of_shared() -> None:
    """Where ../shared exists, every file of tests/data/ holds its numbers unchanged."""
    fixtures = require_shared(SHARED / "fixtures")
    for path in sorted(DATA.rglob("*")):
        if path.suffix not in {".pt", ".pth", ".npz", ".json"}:
            continue
        source = fixtures / path.relative_to(DATA)
        if path.suffix in {".pt", ".pth"}:
            assert path.read_bytes() == source.read_bytes(), path
        elif path.suffix == ".json":
            ours, theirs = json.loads(path.read_text()), json.loads(source.read_text())
            assert ours == {key: theirs[key] for key in ours}, path
        else:
            with np.load(path) as ours, np.load(source) as theirs:
                assert ours.files, path
                for key in ours.files:
                    np.testing.assert_array_equal(ours[key], theirs[key], err_msg=f"{path} {key}")
                    assert ours[key].dtype == theirs[key].dtype
    # The Audio-MLP reference was made with the checkpoint the package ships.
    shipped = DATA.parents[1] / "hear_mn" / "checkpoints" / "kwmlp.pth"
    assert shipped.read_bytes() == (AUDIOMLP / "kwmlp.pth").read_bytes()


@pytest.mark.parametrize(
    ("ci", "outcome"),
    [
        (None, pytest.skip.Exception),
        ("", pytest.skip.Exception),
        ("false", pytest.skip.Exception),
        ("0", pytest.skip.Exception),
        ("true", pytest.fail.Exception),
        ("True", pytest.fail.Exception),
        ("1", pytest.fail.Exception),
        ("yes", pytest.fail.Exception),
    ],
)
def test_missing_shared_skips_except_in_ci(ci, outcome, tmp_path, monkeypatch) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    absent = tmp_path / "shared" / "fixtures"
    with pytest.raises(outcome, match=re.escape(str(absent))):
        require_shared(absent)
    assert require_shared(tmp_path) == tmp_path  # present: returned, CI or not
