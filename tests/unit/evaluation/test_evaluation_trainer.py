"""The downstream trainer: heareval's MLP, its optimiser and its Lightning schedule.

A reference written the plain way (torch.nn layers as heareval's FullyConnectedPrediction
stacks them, torch.optim.Adam in its default implementation) is trained beside our model
(functional layers, fused Adam) on the same data: the models must stay equal. The schedule (validation every n epochs, the
first best value kept, patience counted in validations, NaN handling, max_epochs) is checked
with scripted validation values. heareval itself is compared in test_evaluation_heareval.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hear_mn.evaluation.grid import GRIDS, HyperParameters, grid_points, task_grid
from hear_mn.evaluation.trainer import MLP, logit_loss, train_grid

DEVICE = torch.device("cpu")


def _conf(**changes: object) -> HyperParameters:
    values = {key: value[0] for key, value in GRIDS["default"].items()}
    values.update(hidden_dim=16, batch_size=8, dropout=0.0, max_epochs=6, patience=3)
    values.update(check_val_every_n_epoch=1)
    values.update(changes)
    return HyperParameters.from_mapping(values)


def _reference_mlp(model: MLP, conf: HyperParameters) -> torch.nn.Sequential:
    """heareval's layer stack (Linear, BatchNorm1d, Dropout, ReLU per hidden layer, then a
    Linear projection) holding ``model``'s weights."""
    layers: list[torch.nn.Module] = []
    for layer in range(conf.hidden_layers):
        weight = model.weights[layer]
        linear = torch.nn.Linear(weight.shape[1], weight.shape[0])
        norm = torch.nn.BatchNorm1d(weight.shape[0])
        with torch.no_grad():
            linear.weight.copy_(weight)
            linear.bias.copy_(model.biases[layer])
            norm.weight.copy_(model.gammas[layer])
            norm.bias.copy_(model.betas[layer])
        block = [linear, norm, torch.nn.Dropout(conf.dropout), torch.nn.ReLU()]
        if conf.norm_after_activation:
            block = [linear, torch.nn.Dropout(conf.dropout), torch.nn.ReLU(), norm]
        layers += block
    weight = model.weights[-1]
    projection = torch.nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        projection.weight.copy_(weight)
        projection.bias.copy_(model.biases[-1])
    return torch.nn.Sequential(*layers, projection)


def _data(rows: int = 40, dim: int = 12, classes: int = 3, seed: int = 0) -> tuple:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, dim, generator=generator)
    labels = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    y = torch.nn.functional.one_hot(labels % classes, classes).float()
    return x, y


def _model(
    conf: HyperParameters, data: tuple, initialization: str = "xavier_uniform_", seed: int = 1
) -> MLP:
    x, y = data
    model = MLP(x.shape[1], y.shape[1], conf, DEVICE)
    model.initialize(initialization, torch.Generator().manual_seed(seed))
    return model


@pytest.mark.parametrize("layers", [0, 1, 2])
@pytest.mark.parametrize("norm_after", [False, True])
def test_model_computes_the_reference_layers(layers: int, norm_after: bool) -> None:
    """Train and eval mode logits, and BatchNorm's running statistics, equal torch.nn's."""
    conf = _conf(hidden_layers=layers, norm_after_activation=norm_after)
    x, y = _data()
    model = _model(conf, (x, y))
    reference = _reference_mlp(model, conf).train()
    torch.testing.assert_close(model.logits(x, train=True), reference(x), rtol=1e-5, atol=1e-5)
    norms = [m for m in reference if isinstance(m, torch.nn.BatchNorm1d)]
    for layer, norm in enumerate(norms):
        torch.testing.assert_close(model.running_means[layer], norm.running_mean)
        torch.testing.assert_close(model.running_vars[layer], norm.running_var)
    torch.testing.assert_close(model.eval_logits(x), reference.eval()(x), rtol=1e-5, atol=1e-5)


def test_initialisation_draws_as_heareval_model_draws() -> None:
    """From a generator seeded as torch's, the weights are those of heareval's model: each
    torch.nn.Linear made in turn (its default init, then the Xavier one)."""
    conf = _conf(hidden_layers=2, hidden_dim=32)
    for initialization in ("xavier_uniform_", "xavier_normal_"):
        ours = _model(conf, _data(dim=24, classes=5), initialization, seed=5)
        init = getattr(torch.nn.init, initialization)
        gain = 1.0
        with torch.random.fork_rng():
            torch.manual_seed(5)
            for weight, bias in zip(ours.weights, ours.biases):
                linear = torch.nn.Linear(weight.shape[1], weight.shape[0])
                init(linear.weight, gain=gain)
                gain = torch.nn.init.calculate_gain("relu")
                torch.testing.assert_close(weight, linear.weight.detach(), rtol=0, atol=0)
                torch.testing.assert_close(bias, linear.bias.detach(), rtol=0, atol=0)


def test_initialisation_follows_xavier_with_heareval_gains() -> None:
    """Xavier uniform/normal with gain 1 on the first layer and sqrt(2) after a ReLU; biases
    uniform in +-1/sqrt(fan_in), as torch.nn.Linear's default."""
    conf = _conf(hidden_layers=2, hidden_dim=400)
    data = (torch.zeros(1, 600), torch.zeros(1, 300))
    uniform, normal = _model(conf, data, "xavier_uniform_"), _model(conf, data, "xavier_normal_")
    for layer, gain in zip(range(3), (1.0, math.sqrt(2), math.sqrt(2))):
        fan_out, fan_in = uniform.weights[layer].shape
        std = gain * math.sqrt(2.0 / (fan_in + fan_out))
        assert uniform.weights[layer].abs().max() <= math.sqrt(3) * std
        assert uniform.weights[layer].std().item() == pytest.approx(std, rel=0.03)
        assert normal.weights[layer].std().item() == pytest.approx(std, rel=0.03)
        assert normal.weights[layer].abs().max() > math.sqrt(3) * std  # a normal, not a uniform
        bias = uniform.biases[layer]
        assert bias.abs().max() <= 1 / math.sqrt(fan_in)
        assert bias.abs().max() > 0.9 / math.sqrt(fan_in)


@pytest.mark.parametrize("multiclass", [True, False])
def test_losses_are_heareval_losses(multiclass: bool) -> None:
    """Cross-entropy against the one-hot class, or binary cross-entropy, per member."""
    x, y = _data()
    if not multiclass:
        y = (torch.rand(y.shape, generator=torch.Generator().manual_seed(3)) > 0.5).float()
    logits = torch.randn(2, *y.shape, generator=torch.Generator().manual_seed(4))
    for member in range(2):
        if multiclass:
            expected = torch.nn.functional.cross_entropy(logits[member], y.argmax(dim=1))
        else:
            expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[member], y)
        torch.testing.assert_close(logit_loss(logits[member], y, multiclass), expected)


def _reference_training(
    model: MLP, conf: HyperParameters, x: torch.Tensor, y: torch.Tensor, epochs: int
) -> torch.nn.Sequential:
    """heareval's training without Lightning: Adam, unshuffled batches, train mode."""
    reference = _reference_mlp(model, conf)
    optimizer = torch.optim.Adam(reference.parameters(), lr=conf.lr)
    reference.train()
    for _ in range(epochs):
        for start in range(0, len(x), conf.batch_size):
            optimizer.zero_grad()
            logits = reference(x[start : start + conf.batch_size])
            loss = torch.nn.functional.cross_entropy(
                logits, y[start : start + conf.batch_size].argmax(dim=1)
            )
            loss.backward()
            optimizer.step()
    return reference.eval()


def _parameters_but_pre_norm_biases(model: torch.nn.Sequential) -> list[torch.Tensor]:
    """Every parameter but the biases of linear layers followed by BatchNorm.

    BatchNorm removes those biases in training, so their gradient is zero up to rounding,
    and Adam, which divides by the gradient's magnitude, moves them by the sign of rounding
    noise: they differ between any two implementations (heareval run on other hardware
    included), and so do the running means that follow them.
    """
    layers = list(model)
    kept = []
    for index, layer in enumerate(layers):
        if isinstance(layer, torch.nn.Linear):
            kept.append(layer.weight)
            if index + 1 == len(layers) or not isinstance(layers[index + 1], torch.nn.BatchNorm1d):
                kept.append(layer.bias)
        elif isinstance(layer, torch.nn.BatchNorm1d):
            kept += [layer.weight, layer.bias]
    return kept


@pytest.mark.parametrize("layers", [0, 1])
def test_training_equals_plain_torch_training(layers: int) -> None:
    """Grid points (each its own learning rate and init) end where torch.nn layers trained
    with torch.optim.Adam in its default implementation end: the same parameters, the same
    outputs in training mode (and in eval mode without BatchNorm)."""
    x, y = _data(rows=43)  # 6 batches, the last one short
    confs = [
        _conf(lr=3e-3, max_epochs=5, hidden_layers=layers),
        _conf(lr=1e-2, initialization="xavier_normal_", max_epochs=3, hidden_layers=layers),
    ]
    generator = torch.Generator().manual_seed(7)
    expected = []
    for conf in confs:
        model = MLP(x.shape[1], y.shape[1], conf, DEVICE)
        model.initialize(conf.initialization, generator)
        expected.append(_reference_training(model, conf, x, y, conf.max_epochs))
    rising, _ = _scripted(list(range(100)))  # every validation improves: the last is kept
    models = train_grid(
        confs, (x, y), (x, y), multiclass=True, validate=rising, maximize=True, seed=7
    )
    for trained, reference, conf in zip(models, expected, confs):
        assert trained.epoch == conf.max_epochs - 1
        ours = _reference_mlp(trained.model, conf)
        for mine, theirs in zip(
            _parameters_but_pre_norm_biases(ours), _parameters_but_pre_norm_biases(reference)
        ):
            torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(ours.train()(x), reference.train()(x), rtol=1e-4, atol=1e-4)
        if not layers:
            torch.testing.assert_close(trained.logits(x), reference.eval()(x), rtol=1e-4, atol=1e-5)


def _scripted(values: list[float]) -> tuple:
    """A validation function returning ``values`` in turn, and the list of calls."""
    calls: list[int] = []

    def validate(probabilities: np.ndarray, loss: float) -> tuple[float, object]:
        calls.append(len(calls))
        return values[len(calls) - 1], f"post{len(calls) - 1}"

    return validate, calls


def _train_one(conf: HyperParameters, values: list[float], maximize: bool = True):
    x, y = _data()
    validate, calls = _scripted(values)
    model = train_grid(
        [conf], (x, y), (x, y), multiclass=True, validate=validate, maximize=maximize
    )[0]
    return model, calls


def test_first_best_validation_is_kept_and_patience_counts_validations() -> None:
    """Ties keep the earlier model; training stops after `patience` validations without a
    strict improvement (Lightning's ModelCheckpoint and EarlyStopping)."""
    model, calls = _train_one(_conf(patience=3, max_epochs=50), [0.5, 0.7, 0.7, 0.6, 0.7, 0.9])
    assert len(calls) == 5  # 0.7 at epoch 1, then three validations without improvement
    assert (model.epoch, model.validation_score, model.postprocessing) == (
        1,
        pytest.approx(0.7),
        "post1",
    )


def test_values_compare_in_float32_as_lightning_logs_them() -> None:
    """A gain below float32 resolution is no improvement."""
    model, _ = _train_one(_conf(patience=1, max_epochs=50), [0.5, 0.5 + 1e-9, 0.4])
    assert model.epoch == 0


def test_minimised_scores_select_the_lowest() -> None:
    model, calls = _train_one(
        _conf(patience=2, max_epochs=50), [3.0, 2.0, 2.5, 1.0, 1.5, 1.2], maximize=False
    )
    assert (model.epoch, len(calls)) == (3, 6)


def test_validation_every_n_epochs_and_max_epochs() -> None:
    """Validation after epochs n-1, 2n-1, ... (Lightning's (epoch + 1) % n == 0); training
    ends at max_epochs."""
    model, calls = _train_one(_conf(check_val_every_n_epoch=3, max_epochs=10), [0.1, 0.2, 0.3, 0.4])
    assert len(calls) == 3  # epochs 2, 5 and 8
    assert model.epoch == 8
    assert model.epochs_trained == 10


def test_epochs_trained_counts_up_to_the_early_stop() -> None:
    """What the trainer ran (the benchmark's floor counts its work from it): training stops
    at the validation that exhausts the patience."""
    model, calls = _train_one(
        _conf(patience=2, check_val_every_n_epoch=3, max_epochs=50), [0.5, 0.4, 0.4]
    )
    assert len(calls) == 3 and model.epochs_trained == 9


def test_a_nan_first_value_is_kept_as_the_worst_and_stops() -> None:
    """Lightning keeps the first model even when its value is NaN (stored as -inf) and
    EarlyStopping stops at a non-finite value."""
    model, calls = _train_one(_conf(max_epochs=50), [math.nan, 0.9])
    assert len(calls) == 1
    assert model.epoch == 0 and model.validation_score == -math.inf


def test_a_later_nan_never_replaces_the_best_and_stops() -> None:
    model, calls = _train_one(_conf(max_epochs=50), [0.4, 0.6, math.nan, 0.9])
    assert len(calls) == 3
    assert (model.epoch, model.validation_score) == (1, pytest.approx(0.6))


def test_grid_points_follow_heareval_order_and_overrides() -> None:
    """16 default points, 8 kept; the task's grid and heareval's dcase2016_task2 override
    apply; the same seed gives the same points."""
    metadata = {"task_name": "some_task"}
    points = grid_points(metadata)
    assert len(points) == 8 and points == grid_points(metadata)
    assert {p.lr for p in grid_points(metadata, points=16)} == {3.2e-3, 1e-3, 3.2e-4, 1e-4}
    assert grid_points(metadata, seed=1) != points
    assert task_grid({"task_name": "dcase2016_task2"})["check_val_every_n_epoch"] == [10]
    custom = {"task_name": "x", "evaluation_params": {"task_specific_param_grid": {"lr": [0.5]}}}
    assert {p.lr for p in grid_points(custom, points=16)} == {0.5}
    with pytest.raises(ValueError, match="unknown hyper-parameter 'learning_rate'"):
        task_grid({"evaluation_params": {"task_specific_param_grid": {"learning_rate": [1]}}})
    with pytest.raises(ValueError, match="unknown grid"):
        grid_points(metadata, "huge")
