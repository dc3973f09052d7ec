"""The pretrained default: load_model("") finds, downloads and caches the release checkpoint.

The release URL is swapped for a local HTTP server serving the random reference checkpoint
(the real release cannot be reached from the project's machines).
"""

from __future__ import annotations

import dataclasses
import importlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REFERENCE, SEED_SYSTEM, relative_error, require_shared

import hear_mn.mn04_e1_l as hear_module
from hear_mn import registry
from hear_mn.weights import WeightsError, WeightsUnavailableError, cache_dir


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
    with pytest.raises(WeightsError, match="truncated"):
        hear_module.load_model()
    assert not any(cache_dir().glob("*"))


def test_offline_without_file_names_url_and_place(local_release: str, monkeypatch) -> None:
    monkeypatch.setenv("HEAR_MN_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError) as error:
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
    with pytest.raises(WeightsError, match="missing keys|unexpected keys") as error:
        hear_module.load_model(str(foreign))
    assert "linear.pt" in str(error.value)


def test_wrong_width_is_refused_with_shapes() -> None:
    with pytest.raises(WeightsError, match=r"features\.0\.0\.weight: checkpoint \(16, 1, 3, 3\)"):
        hear_module.load_model(str(require_shared() / "mn10_seed1.pt"))


def test_text_file_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.pt"
    bogus.write_text("not a checkpoint")
    with pytest.raises(WeightsError, match="notes.pt"):
        hear_module.load_model(str(bogus))


def test_corrupt_download_is_refused_and_not_kept(server, local_release: str) -> None:
    spec = registry.CHECKPOINTS["mn04_as"]
    server.files[spec.weights.file_name] = b"<html>not a checkpoint</html>"
    with pytest.raises(WeightsError, match="mn04_as_mAP_432.pt"):
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
    with pytest.raises(WeightsError, match=r"missing keys.*\n.*classifier\.0\.weight") as error:
        fc_module.load_model(str(REFERENCE / "mn10_seed1.pt"))
    assert "unexpected keys" in str(error.value) and "classifier.5.weight" in str(error.value)
    mlp_module = importlib.import_module("hear_mn.mn10_all_b_mel_avgs")
    with pytest.raises(WeightsError, match="classifier.2.weight"):
        mlp_module.load_model(str(SEED_SYSTEM / "mn10_fc_seed1.pt"))
