"""Names people know work everywhere (issue 22, item 5): any configuration name the library
accepts imports as a HEAR module, the command line takes bare names, and the Audio-MLP
package's users are told where the models are."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
import torch
from support import ROOT

import hear_mn
from hear_mn import cli
from hear_mn.registry import create_model


@pytest.mark.parametrize("name", ["mn40_as_ext_e1_l", "mn04_as_e1_l_all_se", "dymn04_as_clf1"])
def test_any_accepted_name_imports_as_a_hear_module(name: str) -> None:
    assert not (ROOT / "hear_mn" / f"{name}.py").exists()
    module = importlib.import_module(f"hear_mn.{name}")
    assert module.__name__ == f"hear_mn.{name}"
    model = module.load_model(pretrained=False)
    expected = create_model(name, pretrained=False)
    assert model.scene_embedding_size == expected.scene_embedding_size
    audio = torch.zeros(1, model.sample_rate)
    assert module.get_scene_embeddings(audio, model).shape == (1, expected.scene_embedding_size)
    embeddings, times = module.get_timestamp_embeddings(audio, model)
    assert embeddings.shape[-1] == expected.timestamp_embedding_size
    assert importlib.import_module(f"hear_mn.{name}") is module


def test_an_unknown_name_is_still_not_a_module() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("hear_mn.mn99_not_a_configuration")
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("hear_mn.engines.mn04_e1_l")


def test_the_import_works_in_a_fresh_interpreter_as_hear_validator_does_it() -> None:
    """hear-validator and heareval import ``hear_mn.<name>`` by name in a new process."""
    code = (
        "import importlib; m = importlib.import_module('hear_mn.mn10_as_e1_l_all_se');"
        "print(m.load_model(pretrained=False).scene_embedding_size)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stderr
    expected = create_model("mn10_as_e1_l_all_se", pretrained=False).scene_embedding_size
    assert result.stdout.strip() == str(expected)


@pytest.mark.parametrize("target", ["kwmlp", "hear_mn.kwmlp", "mn04_as_e1_l"])
def test_validate_takes_bare_names(target: str, capsys) -> None:
    code = cli.main(["validate", target, "--random-weights"])
    output = capsys.readouterr().out
    assert code == 0, output
    assert "validate passed" in output


@pytest.mark.parametrize("name", ["load_model", "get_scene_embeddings", "get_timestamp_embeddings"])
def test_audiomlp_says_where_the_models_are(name: str) -> None:
    from hear_mn.models import audiomlp

    with pytest.raises(AttributeError) as error:
        getattr(audiomlp, name)
    assert "hear_mn.kwmlp" in str(error.value) and "hear_mn.audiomae" in str(error.value)


def test_docs_name_no_weights_file_a_user_does_not_have() -> None:
    for document in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        text = document.read_text(encoding="utf-8")
        assert "-m kwmlp.pth" not in text, document.name
    assert hasattr(hear_mn, "create_model")
