"""ARCHITECTURE.md's "How to add a family", followed step by step with a toy family: a model
whose embedding is three statistics of each window (mean, standard deviation, peak), times
one learned gain per statistic. Registered from the test (in the package it would be a
folder ``hear_mn/models/toy_stats/`` and one line in ``hear_mn/models/__init__.py``), it is
used through ``hear_mn.create_model``, a HEAR module's ``load_model`` (``hear_mn.toy_stats``),
``hear-mn list`` and ``hear-mn embed``; export and the ONNX Runtime backend ask the family
and refuse it clearly, as it has no export."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator, Mapping

import numpy as np
import pytest
import soundfile
import torch

import hear_mn
from hear_mn import catalog, cli
from hear_mn.config import (
    CHECKPOINTS,
    FAMILIES,
    Checkpoint,
    Family,
    ModelConfig,
    register_family,
)
from hear_mn.hub.checkpoint import load_into
from hear_mn.hub.errors import BadFileError
from hear_mn.hub.weights_spec import WeightsSpec
from hear_mn.model import EmbeddingModel
from hear_mn.run_options import RunOptions

NAME = "toy_stats"
GROUP = "toy"
SAMPLE_RATE = 16000
WINDOW = 1600  # 100 ms
STATISTICS = 3


# Step 1: the model, a subclass of EmbeddingModel (hear_mn/models/toy_stats/network.py).
class WindowStatistics(EmbeddingModel):
    """Mean, standard deviation and peak of each 100 ms window (the scene: of the clip)."""

    family = NAME

    def __init__(self, config: ModelConfig, run: RunOptions) -> None:
        super().__init__(
            name=config.name,
            sample_rate=config.sample_rate,  # the checkpoint's: the only sample rate
            scene_embedding_size=STATISTICS,
            timestamp_embedding_size=STATISTICS,
            autocast=run.autocast,
        )
        self.gain = torch.nn.Parameter(torch.ones(STATISTICS))

    def _statistics(self, x: torch.Tensor) -> torch.Tensor:
        stats = (x.mean(-1), x.std(-1, correction=0), x.abs().amax(-1))
        return torch.stack(stats, dim=-1) * self.gain

    def _scene_embeddings(self, audio: torch.Tensor) -> torch.Tensor:
        return self._statistics(audio)

    def _timestamp_embeddings(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        count = max(1, -(-audio.shape[1] // WINDOW))
        padded = torch.nn.functional.pad(audio, (0, count * WINDOW - audio.shape[1]))
        windows = padded.unfold(-1, WINDOW, WINDOW)
        centres = (torch.arange(count, device=audio.device) + 0.5) * WINDOW
        times = (1000.0 * centres / self.sample_rate).expand(audio.shape[0], count)
        return self._statistics(windows), times

    def load_checkpoint(self, state_dict: Mapping[str, torch.Tensor], *, source: str) -> None:
        load_into(self, state_dict, source=source)


# Step 2: the checkpoints and the Family (hear_mn/models/toy_stats/family.py).
TOY_CHECKPOINT = Checkpoint(
    name=NAME,
    family=NAME,
    arch="statistics",
    weights=WeightsSpec(file_name="toy_stats.pt", url="https://example.invalid/toy_stats.pt"),
    sample_rate=SAMPLE_RATE,
    num_params=STATISTICS,
)


class WindowStatisticsFamily(Family):
    """One checkpoint, one name, no options."""

    name = NAME

    def new_config(self, name: str, checkpoint: Checkpoint) -> ModelConfig:
        return ModelConfig(name, checkpoint)

    def parse_name(self, name: str) -> tuple[ModelConfig, str | None, str | None] | None:
        return (self.new_config(name, TOY_CHECKPOINT), None, None) if name == NAME else None

    def name_examples(self) -> str:
        return f"like {NAME}"

    def with_options(self, config: ModelConfig, **options: object) -> ModelConfig:
        given = sorted(key for key, value in options.items() if value is not None)
        if given:
            raise ValueError(f"{config.name} takes no options, got {', '.join(given)}")
        return config

    def embedding_sizes(self, config: ModelConfig) -> tuple[int, int]:
        return STATISTICS, STATISTICS

    def describe(self, config: ModelConfig) -> str:
        return f"{config.name}: mean, std and peak of 100 ms windows ({STATISTICS} values)"

    def build(self, config: ModelConfig, run: RunOptions) -> WindowStatistics:
        return WindowStatistics(config, run)


@pytest.fixture(scope="module")
def toy_family() -> Iterator[None]:
    """Step 3: the registration line and a catalog row (hear_mn/models/__init__.py and
    hear_mn/catalog.py in the package); undone afterwards."""
    register_family(WindowStatisticsFamily(), [TOY_CHECKPOINT])
    catalog.NAMED[NAME] = catalog.NamedConfig(NAME, GROUP, NAME)
    catalog.GROUP_TITLES[GROUP] = "a toy family (tests/unit/models/test_toy_family.py)"
    try:
        yield
    finally:
        FAMILIES.pop(NAME)
        CHECKPOINTS.pop(NAME)
        catalog.NAMED.pop(NAME)
        catalog.GROUP_TITLES.pop(GROUP)
        sys.modules.pop(f"hear_mn.{NAME}", None)
        hear_mn.__dict__.pop(NAME, None)


def _clip(seconds: float, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn(1, int(seconds * SAMPLE_RATE), generator=generator)


def test_create_model_builds_the_toy(toy_family) -> None:
    model = hear_mn.create_model(NAME, pretrained=False)
    assert isinstance(model, WindowStatistics)
    assert hear_mn.get_config(NAME).describe().startswith(f"{NAME}: mean, std and peak")
    clip = _clip(0.25)
    scene = model.scene_embeddings(clip)
    expected = torch.stack([clip.mean(), clip.std(correction=0), clip.abs().max()])
    torch.testing.assert_close(scene[0], expected)
    embeddings, times = model.timestamp_embeddings(clip)
    assert embeddings.shape == (1, 3, STATISTICS)
    torch.testing.assert_close(times[0], torch.tensor([50.0, 150.0, 250.0]))
    with pytest.raises(ValueError, match="takes no options, got features"):
        hear_mn.create_model(NAME, pretrained=False, features="e1_l")


def test_a_hear_module_loads_the_toys_weights(toy_family, tmp_path) -> None:
    """``hear_mn.toy_stats`` exists as soon as the family is registered; its load_model
    reads a checkpoint file through the same checks as the released families'."""
    module = importlib.import_module(f"hear_mn.{NAME}")
    weights = tmp_path / "toy_stats.pt"
    torch.save({"gain": torch.tensor([1.0, 2.0, 0.5])}, weights)
    model = module.load_model(str(weights))
    assert model.weights_file == "toy_stats.pt"
    clip = _clip(0.5, seed=1)
    scene = module.get_scene_embeddings(clip, model)
    plain = module.get_scene_embeddings(clip, module.load_model(pretrained=False))
    torch.testing.assert_close(scene, plain * torch.tensor([1.0, 2.0, 0.5]))
    torch.save({"gain": torch.ones(4)}, weights)
    with pytest.raises(BadFileError, match=r"gain: checkpoint \(4,\) vs model \(3,\)"):
        module.load_model(str(weights))


def test_the_command_line_lists_and_embeds_the_toy(toy_family, tmp_path, capsys) -> None:
    assert cli.main(["list", "--group", GROUP, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["name"], row["family"], row["scene_embedding_size"]) == (NAME, NAME, STATISTICS)
    assert cli.main(["list"]) == 0
    assert f"\n{NAME} " in capsys.readouterr().out
    clip = _clip(1.0, seed=2)
    soundfile.write(tmp_path / "a.wav", clip[0].numpy(), SAMPLE_RATE, subtype="FLOAT")
    weights = tmp_path / "toy_stats.pt"
    torch.save({"gain": torch.ones(STATISTICS)}, weights)
    out = tmp_path / "out"
    argv = ["embed", str(tmp_path / "a.wav"), "--model", NAME, "--weights", str(weights)]
    assert cli.main([*argv, "--timestamps", "--out", str(out), "-q"]) == 0
    saved = np.load(out / "a.wav.npz")
    assert saved["embedding"].shape == (10, STATISTICS)
    expected, _ = hear_mn.create_model(NAME, weights=weights).timestamp_embeddings(clip)
    np.testing.assert_array_equal(saved["embedding"], expected[0].numpy())


def test_export_and_backends_ask_the_family(toy_family) -> None:
    from hear_mn.engines.ort import set_backend
    from hear_mn.export.spec import graph_spec

    model = hear_mn.create_model(NAME, pretrained=False)
    with pytest.raises(TypeError, match="the toy_stats family has no export"):
        graph_spec(model, frontend=True)
    with pytest.raises(ValueError, match="does not run toy_stats; it runs with backend='torch'"):
        set_backend(model, "onnxruntime")
    assert set_backend(model, "torch") is model
