"""The pretrained default: load_model("") finds, downloads and caches the release checkpoint.

The release URL is swapped for a local HTTP server serving the random reference checkpoint
(the real release cannot be reached from the project's machines).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from support import ROOT
from support.damaged_files import flip_tensor_byte
from support.reference import (
    AUDIOMLP,
    REFERENCE,
    SEED_SYSTEM,
    assert_matches_reference,
    relative_error,
    require_shared,
)
from support.runs import build_wheel

import hear_mn.kwmlp
import hear_mn.mn04_e1_l as hear_module
from hear_mn import registry
from hear_mn.hub.errors import FileError, FileUnavailableError
from hear_mn.hub.locations import cache_dir
from hear_mn.models.audiomlp.family import AUDIOMLP_CHECKPOINTS
from hear_mn.registry import create_model

PROJECT = ROOT
SHIPPED = PROJECT / "hear_mn" / "checkpoints"
SHIPPED_FILES = ("kwmlp.pth", "audiomae.pth", "LICENSE-CC-BY-SA-4.0.txt", "ATTRIBUTION.md")


def _serve(server, monkeypatch, name: str, checkpoint: Path) -> str:
    """Point the release URL of checkpoint ``name`` at the local server, serving ``checkpoint``."""
    spec = registry.CHECKPOINTS[name]
    server.files[spec.weights.file_name] = checkpoint.read_bytes()
    url = server.url("ok", spec.weights.file_name)
    weights = dataclasses.replace(spec.weights, url=url)
    monkeypatch.setitem(registry.CHECKPOINTS, name, dataclasses.replace(spec, weights=weights))
    monkeypatch.delenv("HEAR_MN_OFFLINE", raising=False)
    return url


@pytest.fixture
def local_release(server, monkeypatch) -> str:
    """Point the mn04_as weights at the local server, serving the mn04 reference checkpoint."""
    return _serve(server, monkeypatch, "mn04_as", require_shared() / "mn04_seed1.pt")


def _reference_scene() -> tuple[torch.Tensor, np.ndarray]:
    audio = torch.from_numpy(np.load(REFERENCE / "inputs.npz")["len1.07"])
    return audio, np.load(REFERENCE / "mn04_e1_l.npz")["len1.07/scene"]


def test_download_then_cache_hit(server, local_release: str) -> None:
    model = hear_module.load_model("")
    assert len(server.requests) == 1 and local_release.endswith(server.requests[0])
    cached = cache_dir() / "mn04_as_mAP_432.pt"
    assert cached.exists()
    audio, reference = _reference_scene()
    assert relative_error(hear_module.get_scene_embeddings(audio, model), reference) <= 1e-5
    hear_module.load_model()  # second load: from the cache, no request
    assert len(server.requests) == 1


def test_truncated_download_is_refused_and_not_kept(
    server, local_release: str, monkeypatch
) -> None:
    spec = registry.CHECKPOINTS["mn04_as"]
    truncated = dataclasses.replace(
        spec.weights, url=server.url("truncated", spec.weights.file_name)
    )
    monkeypatch.setitem(
        registry.CHECKPOINTS, "mn04_as", dataclasses.replace(spec, weights=truncated)
    )
    with pytest.raises(FileError, match="truncated"):
        hear_module.load_model()
    assert not any(cache_dir().glob("*"))


def test_offline_without_file_names_url_and_place(local_release: str, monkeypatch) -> None:
    monkeypatch.setenv("HEAR_MN_OFFLINE", "1")
    with pytest.raises(FileUnavailableError) as error:
        hear_module.load_model()
    message = str(error.value)
    assert local_release in message
    assert str(cache_dir()) in message and "HEAR_MN_WEIGHTS_DIR" in message


def test_offline_directory_is_used(local_release: str, server, tmp_path: Path, monkeypatch) -> None:
    shutil.copy(require_shared() / "mn04_seed1.pt", tmp_path / "mn04_as_mAP_432.pt")
    monkeypatch.setenv("HEAR_MN_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("HEAR_MN_OFFLINE", "1")
    model = hear_module.load_model()
    audio, reference = _reference_scene()
    assert relative_error(hear_module.get_scene_embeddings(audio, model), reference) <= 1e-5
    assert server.requests == []


def test_foreign_file_is_refused_with_the_mismatch(tmp_path: Path) -> None:
    foreign = tmp_path / "linear.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), foreign)
    with pytest.raises(FileError, match="missing keys|unexpected keys") as error:
        hear_module.load_model(str(foreign))
    assert "linear.pt" in str(error.value)


def test_wrong_width_is_refused_with_shapes() -> None:
    with pytest.raises(FileError, match=r"features\.0\.0\.weight: checkpoint \(16, 1, 3, 3\)"):
        hear_module.load_model(str(require_shared() / "mn10_seed1.pt"))


def test_text_file_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.pt"
    bogus.write_text("not a checkpoint")
    with pytest.raises(FileError, match="notes.pt"):
        hear_module.load_model(str(bogus))


def test_corrupt_download_is_refused_and_not_kept(server, local_release: str) -> None:
    spec = registry.CHECKPOINTS["mn04_as"]
    server.files[spec.weights.file_name] = b"<html>not a checkpoint</html>"
    with pytest.raises(FileError, match="mn04_as_mAP_432.pt"):
        hear_module.load_model()
    assert not (cache_dir() / spec.weights.file_name).exists()


@pytest.mark.parametrize(
    ("module_name", "checkpoint", "weights"),
    [
        ("mn10_all_b_mel_avgs_hop5", "mn10_as_hop_5", REFERENCE / "mn10_seed1.pt"),
        ("mn10_all_b_mel_avgs_fc", "mn10_as_fc", SEED_SYSTEM / "mn10_fc_seed1.pt"),
        ("mn01_all_b_mel_avgs", "mn01_as", SEED_SYSTEM / "mn01_seed1.pt"),
    ],
)
def test_original_package_modules_download_their_release_file(
    server, monkeypatch, module_name: str, checkpoint: str, weights: Path
) -> None:
    require_shared(SEED_SYSTEM)
    url = _serve(server, monkeypatch, checkpoint, weights)
    module = importlib.import_module(f"hear_mn.{module_name}")
    model = module.load_model()
    file_name = registry.CHECKPOINTS[checkpoint].weights.file_name
    assert url.endswith(server.requests[0]) and (cache_dir() / file_name).exists()
    audio = torch.from_numpy(np.load(REFERENCE / "inputs.npz")["len1.07"])
    reference = np.load(SEED_SYSTEM / f"{module_name}.npz")["len1.07/scene"]
    assert relative_error(module.get_scene_embeddings(audio, model), reference) <= 1e-5
    module.load_model()  # from the cache
    assert len(server.requests) == 1


def test_checkpoint_of_the_other_head_is_refused_with_its_keys() -> None:
    require_shared(SEED_SYSTEM)
    fc_module = importlib.import_module("hear_mn.mn10_all_b_mel_avgs_fc")
    with pytest.raises(FileError, match=r"missing keys.*\n.*classifier\.0\.weight") as error:
        fc_module.load_model(str(REFERENCE / "mn10_seed1.pt"))
    assert "unexpected keys" in str(error.value) and "classifier.5.weight" in str(error.value)
    mlp_module = importlib.import_module("hear_mn.mn10_all_b_mel_avgs")
    with pytest.raises(FileError, match="classifier.2.weight"):
        mlp_module.load_model(str(SEED_SYSTEM / "mn10_fc_seed1.pt"))


# --------------------------------------------------------------------------- damaged downloads


def test_corrupt_efficientat_download_is_refused_and_not_kept(server, local_release: str) -> None:
    file_name = registry.CHECKPOINTS["mn04_as"].weights.file_name
    server.files[file_name] = flip_tensor_byte(server.files[file_name])
    with pytest.raises(FileError, match="CRC") as error:
        hear_module.load_model()
    assert local_release in str(error.value)
    assert not any(cache_dir().glob("*"))


def test_wrong_width_download_is_refused_and_removed(server, monkeypatch) -> None:
    _serve(server, monkeypatch, "mn04_as", require_shared() / "mn10_seed1.pt")
    cached = cache_dir() / "mn04_as_mAP_432.pt"
    with pytest.raises(FileError, match=r"shape mismatches") as error:
        hear_module.load_model()
    assert f"removed {cached}" in str(error.value)
    assert not cached.exists()
    with pytest.raises(FileError, match=r"shape mismatches"):
        hear_module.load_model()
    assert len(server.requests) == 2  # not kept: downloaded again, refused again


def test_wrong_width_in_weights_dir_is_refused_not_deleted(
    local_release: str, tmp_path: Path, monkeypatch
) -> None:
    wrong = tmp_path / "mn04_as_mAP_432.pt"
    shutil.copy(require_shared() / "mn10_seed1.pt", wrong)
    monkeypatch.setenv("HEAR_MN_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(FileError, match=r"shape mismatches") as error:
        hear_module.load_model()
    assert str(wrong) in str(error.value) and "removed" not in str(error.value)
    assert wrong.exists()


# --------------------------------------------------------------------------- state dict layouts


@pytest.fixture(scope="module")
def mn01_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return create_model("mn01_e1_l", pretrained=False).state_dict()


@pytest.mark.parametrize(
    "layout",
    [
        lambda state: state,
        lambda state: {"state_dict": state, "epoch": 3},
        lambda state: {"model": state},
        lambda state: {f"module.{key}": value for key, value in state.items()},
        lambda state: {"state_dict": {f"module.{key}": value for key, value in state.items()}},
    ],
    ids=["model.state_dict()", "state_dict wrapper", "model wrapper", "DataParallel", "both"],
)
def test_a_models_own_state_dict_and_common_wrappers_load(
    mn01_state: dict[str, torch.Tensor], tmp_path: Path, layout
) -> None:
    path = tmp_path / "mine.pt"
    torch.save(layout(mn01_state), path)
    model = create_model("mn01_e1_l", weights=path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, mn01_state[key]), key


@pytest.mark.parametrize("name", ["kwmlp", "audiomae"])
def test_an_audiomlp_models_own_state_dict_loads(name: str, tmp_path: Path) -> None:
    """Its state dict holds the encoder (the checkpoint's part) and the frontend's buffers."""
    torch.manual_seed(0)
    trained = create_model(name, pretrained=False)
    path = tmp_path / "mine.pt"
    torch.save(trained.state_dict(), path)
    loaded = create_model(name, weights=path)
    for key, value in trained.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_unknown_prefix_says_which_prefix_was_found_and_what_was_expected(
    mn01_state: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    path = tmp_path / "other.pt"
    torch.save({f"encoder.{key}": value for key, value in mn01_state.items()}, path)
    with pytest.raises(FileError) as error:
        create_model("mn01_e1_l", weights=path)
    message = str(error.value)
    assert "keys start with 'encoder.backbone.'" in message
    assert "expects keys like 'features.0.0.weight'" in message
    assert len(message.splitlines()) <= 12


# --------------------------------------------------------------------------- shipped Audio-MLP


def test_shipped_audiomlp_checkpoints_are_the_release_with_their_licence() -> None:
    for name in ("kwmlp", "audiomae"):
        spec = registry.CHECKPOINTS[name].weights
        shipped = SHIPPED / spec.file_name
        assert shipped.stat().st_size == spec.num_bytes
        assert hashlib.sha256(shipped.read_bytes()).hexdigest() == spec.sha256
    licence = (SHIPPED / "LICENSE-CC-BY-SA-4.0.txt").read_text()
    assert licence.startswith("Attribution-ShareAlike 4.0 International\n")
    assert "Section 8 -- Interpretation." in licence
    assert licence.rstrip().endswith("Creative Commons may be contacted at creativecommons.org.")
    attribution = (SHIPPED / "ATTRIBUTION.md").read_text()
    for fact in (
        "HEAR-2021-Audio-MLP",
        "Mashrur M. Morshed",
        "Ahmad Omar Ahsan",
        AUDIOMLP_CHECKPOINTS,
        "unmodified",
        "CC BY-SA 4.0",
        registry.CHECKPOINTS["kwmlp"].weights.sha256,
        registry.CHECKPOINTS["audiomae"].weights.sha256,
    ):
        assert fact in attribution, fact


def _assert_audiomlp_reference(
    name: str, module: object, model: object, keys: tuple[str, ...] = ()
) -> None:
    """The HEAR functions of ``module`` give the reference outputs (for ``keys``, else all)."""
    reference = np.load(require_shared(AUDIOMLP) / f"{name}_ref.npz")
    inputs = AUDIOMLP / "audiomlp_inputs.npz"
    assert_matches_reference(module, model, reference, inputs, keys)


@pytest.mark.parametrize("name", ["kwmlp", "audiomae"])
def test_audiomlp_works_offline_from_the_package(name: str, server, monkeypatch) -> None:
    monkeypatch.setenv("HEAR_MN_OFFLINE", "1")
    assert not any(cache_dir().glob("*"))
    module = importlib.import_module(f"hear_mn.{name}")
    _assert_audiomlp_reference(name, module, create_model(name))
    if name == "kwmlp":
        _assert_audiomlp_reference(name, hear_mn.kwmlp, hear_mn.kwmlp.load_model(), ("len1",))
    assert not any(cache_dir().glob("*")) and server.requests == []


def test_wheel_ships_the_audiomlp_checkpoints_and_licences(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        for name in SHIPPED_FILES:
            assert archive.read(f"hear_mn/checkpoints/{name}") == (SHIPPED / name).read_bytes()
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        assert "Requires-Dist: tqdm" in archive.read(metadata).decode()
