"""Error paths of the command line (issue 22, item 9): a folder of other settings is named
by its real difference, with its example file's path under --out, in the words of the
command line (flags, not keywords); a run that does nothing leaves no output folder behind;
``tag`` reports every problem of its inputs at once; ``-v`` shows the cause of an error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.runs import run_cli, save_random_checkpoint

from hear_mn.batch import OutputConflictError, plan_embedding
from hear_mn.registry import create_model

sf = pytest.importorskip("soundfile")

MODEL = "mn04_e1_l"
RATE = 32000


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A random mn04 checkpoint (every mn04 configuration loads it)."""
    path = tmp_path_factory.mktemp("weights") / "mn04_random.pt"
    return save_random_checkpoint(path, MODEL)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A folder with one clip in a sub-folder."""
    root = tmp_path_factory.mktemp("inputs")
    (root / "birds").mkdir()
    sf.write(root / "birds" / "robin.wav", np.full(RATE, 0.01, np.float32), RATE)
    return root


def embed(capsys, inputs: Path, weights: Path, out: Path, *extra: object):
    return run_cli(
        capsys, "embed", inputs, "--model", MODEL, "--weights", weights, "--out", out, *extra
    )


def test_a_folder_of_scene_outputs_is_named_as_such(capsys, inputs, weights, tmp_path) -> None:
    """Timestamps asked where scene embeddings are: the message says that (not the model,
    which is the same), names the example by its path under --out and says --overwrite."""
    out = tmp_path / "emb"
    assert embed(capsys, inputs, weights, out)[0] == 0
    code, _, stderr = embed(capsys, inputs, weights, out, "--timestamps")
    assert code == 2
    assert "scene embeddings there, timestamp embeddings now" in stderr, stderr
    assert "birds/robin.wav.npz" in stderr, stderr
    assert "--overwrite" in stderr and "overwrite=True" not in stderr, stderr
    assert MODEL not in stderr, stderr  # the model is not what differs


def test_a_folder_of_another_model_names_both(capsys, inputs, weights, tmp_path) -> None:
    out = tmp_path / "emb"
    assert embed(capsys, inputs, weights, out)[0] == 0
    code, _, stderr = run_cli(
        capsys,
        "embed",
        inputs,
        "--model",
        "mn04_all_b_mel_avgs",
        "--weights",
        weights,
        "--out",
        out,
    )
    assert code == 2
    assert "model mn04_e1_l there, mn04_all_b_mel_avgs now" in stderr, stderr


def test_python_callers_read_keywords(inputs, weights, tmp_path) -> None:
    """The same refusal from Python names the keyword, not the flag."""
    model = create_model(MODEL, weights=weights)
    out = tmp_path / "emb"
    (out / "birds").mkdir(parents=True)
    np.savez(out / "birds" / "robin.wav.npz", embedding=np.zeros(3, np.float32))
    with pytest.raises(OutputConflictError) as caught:
        plan_embedding([inputs], model, out, timestamps=True)
    message = str(caught.value)
    assert "overwrite=True" in message and "--overwrite" not in message
    assert "birds/robin.wav.npz" in message and "records no settings" in message


def test_a_backend_refusal_names_the_flag(capsys, inputs, tmp_path) -> None:
    code, _, stderr = run_cli(
        capsys,
        "embed",
        inputs,
        "--model",
        "kwmlp",
        "--backend",
        "onnxruntime",
        "--out",
        tmp_path / "o",
    )
    assert code == 2
    assert "--backend torch" in stderr and "backend='torch'" not in stderr, stderr


def test_runs_that_do_nothing_leave_no_output_folder(capsys, inputs, tmp_path) -> None:
    out = tmp_path / "a" / "b" / "emb"
    code, _, stderr = run_cli(
        capsys, "embed", inputs, "--model", MODEL, "--weights", tmp_path / "none.pt", "--out", out
    )
    assert code == 2 and "none.pt" in stderr
    assert not (tmp_path / "a").exists(), "an empty output folder was left behind"


def test_an_unwritable_output_folder_is_still_refused_before_any_work(
    capsys, inputs, weights, tmp_path
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code, _, stderr = embed(capsys, inputs, weights, blocker / "emb")
    assert code == 2 and "cannot write to the output folder" in stderr, stderr


def test_tag_reports_missing_labels_and_weights_at_once(capsys, inputs, tmp_path) -> None:
    code, _, stderr = run_cli(
        capsys,
        "tag",
        inputs,
        "--model",
        MODEL,
        "--weights",
        tmp_path / "none.pt",
        "--labels",
        tmp_path / "none.csv",
    )
    assert code == 2
    assert "none.csv" in stderr and "none.pt" in stderr, stderr
    assert all(line.startswith("hear-mn tag: error: ") for line in stderr.splitlines()), stderr


def test_verbose_shows_the_cause_of_an_error(capsys, inputs, tmp_path) -> None:
    """-v prints the traceback down to where the error arose, not only the line that
    turned it into a command-line error."""
    code, _, stderr = run_cli(
        capsys,
        "-v",
        "embed",
        inputs,
        "--model",
        MODEL,
        "--weights",
        tmp_path / "none.pt",
        "--out",
        tmp_path / "o",
    )
    assert code == 2
    assert "Traceback" in stderr
    assert "hear_mn/hub/" in stderr, stderr
    assert "During handling of the above exception" in stderr, stderr
