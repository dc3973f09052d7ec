"""heareval's downstream MLPs and their training, without Lightning.

Each grid point is heareval's ``FullyConnectedPrediction``: per hidden layer a linear layer
(Xavier init with the gain of the activation before it, PyTorch's default bias init),
BatchNorm, dropout and ReLU (BatchNorm after ReLU with ``norm_after_activation``), then a
linear projection; softmax with cross-entropy (multiclass) or sigmoid with binary
cross-entropy (multilabel); Adam. Training follows its Lightning setup: batches of
``batch_size`` rows in the stored order (heareval's loader does not shuffle the training
split), validation after every ``check_val_every_n_epoch``-th epoch, the model of the best
validation value kept (the first of equal values; values compared in float32 as Lightning
logs them; a NaN value never replaces a kept model), early stopping after ``patience``
validations without a strict improvement or at the first non-finite value, at most
``max_epochs`` epochs.

Faster by design, not by doing less: the embeddings stay in memory as tensors on the
device, sliced into batches without a data loader; layers are torch's fused kernels
(``linear``, ``batch_norm``) and Adam is torch's fused implementation (one pass over the
parameters, where the per-tensor loop heareval's optimiser runs makes about ten); validation
scores and event post-processing are numpy. Grid points train one after the other, as in
heareval: on a CPU, batching them (one matrix product for all, Adam on stacked tensors) was
measured slower, the stacked tensors no longer fitting the caches, and gave nothing on the
matrix products, which are large enough already.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from hear_mn.evaluation.grid import HyperParameters

__all__ = ["MLP", "TrainedModel", "Validation", "activation", "logit_loss", "train_grid"]

BN_EPS = 1e-5
BN_MOMENTUM = 0.1

# Called with a model's class probabilities (rows, classes) and loss on the validation split:
# returns the monitored value and the post-processing chosen with it (events), if any.
Validation = Callable[[np.ndarray, float], tuple[float, object]]


class MLP:
    """One grid point's model: weights in torch's (out, in) layout, BatchNorm per hidden layer."""

    def __init__(
        self, in_dim: int, out_dim: int, conf: HyperParameters, device: torch.device
    ) -> None:
        self.conf = conf
        self.device = device
        dims = [in_dim] + [conf.hidden_dim] * conf.hidden_layers + [out_dim]
        self.weights = [torch.empty(b, a, device=device) for a, b in zip(dims, dims[1:])]
        self.biases = [torch.empty(b, device=device) for b in dims[1:]]
        hidden = [conf.hidden_dim] * conf.hidden_layers
        self.gammas = [torch.ones(size, device=device) for size in hidden]
        self.betas = [torch.zeros(size, device=device) for size in hidden]
        self.running_means = [torch.zeros(size, device=device) for size in hidden]
        self.running_vars = [torch.ones(size, device=device) for size in hidden]

    def parameters(self) -> list[torch.Tensor]:
        return [*self.weights, *self.biases, *self.gammas, *self.betas]

    def state(self) -> list[torch.Tensor]:
        """A copy of the parameters and BatchNorm statistics."""
        return [
            t.detach().clone()
            for t in (*self.parameters(), *self.running_means, *self.running_vars)
        ]

    def load_state(self, state: list[torch.Tensor]) -> None:
        for target, value in zip(
            (*self.parameters(), *self.running_means, *self.running_vars), state
        ):
            with torch.no_grad():
                target.copy_(value)

    def initialize(self, initialization: str, generator: torch.Generator) -> None:
        """The layers as heareval initialises them, drawing from ``generator`` in the order
        its model draws from torch's generator: per layer, torch.nn.Linear's own weight init
        (then replaced), its bias, then the Xavier weight. So a model seeded as heareval's
        first model starts as it does."""
        gain = 1.0  # calculate_gain("linear"), then "relu" after a hidden layer
        with torch.no_grad():
            for weight, bias in zip(self.weights, self.biases):
                fan_out, fan_in = weight.shape
                bound = 1.0 / math.sqrt(
                    fan_in
                )  # Linear's kaiming_uniform_(a=sqrt(5)) and bias bound
                weight.uniform_(
                    -bound, bound, generator=generator
                )  # replaced below, as in heareval
                bias.uniform_(-bound, bound, generator=generator)
                std = gain * math.sqrt(2.0 / (fan_in + fan_out))
                if initialization == "xavier_uniform_":
                    weight.uniform_(
                        -math.sqrt(3.0) * std, math.sqrt(3.0) * std, generator=generator
                    )
                else:
                    weight.normal_(0.0, std, generator=generator)
                gain = math.sqrt(2.0)

    def _norm(self, h: torch.Tensor, layer: int, train: bool) -> torch.Tensor:
        return F.batch_norm(
            h,
            self.running_means[layer],
            self.running_vars[layer],
            self.gammas[layer],
            self.betas[layer],
            training=train,
            momentum=BN_MOMENTUM,
            eps=BN_EPS,
        )

    def logits(
        self, x: torch.Tensor, train: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """(rows, classes) logits of ``x`` (rows, in_dim); ``train``: batch statistics
        (updating the running ones) and dropout."""
        conf = self.conf
        h = x
        for layer in range(conf.hidden_layers):
            h = F.linear(h, self.weights[layer], self.biases[layer])
            if not conf.norm_after_activation:
                h = self._norm(h, layer, train)
            if train and conf.dropout > 0:
                keep = torch.empty_like(h).bernoulli_(1.0 - conf.dropout, generator=generator)
                h = h * keep.div_(1.0 - conf.dropout)
            h = torch.relu(h)
            if conf.norm_after_activation:
                h = self._norm(h, layer, train)
        return F.linear(h, self.weights[-1], self.biases[-1])

    def eval_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits in eval mode, in chunks of the batch size."""
        size = self.conf.batch_size
        with torch.no_grad():
            return torch.cat([self.logits(x[i : i + size]) for i in range(0, len(x), size)])


def logit_loss(logits: torch.Tensor, targets: torch.Tensor, multiclass: bool) -> torch.Tensor:
    """heareval's loss: cross-entropy against the one-hot class, or binary cross-entropy."""
    if multiclass:
        return F.cross_entropy(logits, targets.argmax(dim=1))
    return F.binary_cross_entropy_with_logits(logits, targets)


def activation(logits: torch.Tensor, multiclass: bool) -> torch.Tensor:
    return torch.softmax(logits, dim=-1) if multiclass else torch.sigmoid(logits)


def _optimizer(model: MLP) -> torch.optim.Adam:
    """torch's Adam as heareval's model uses it (lr from the grid, no weight decay), fused."""
    return torch.optim.Adam(model.parameters(), lr=model.conf.lr, fused=True)


@dataclass
class TrainedModel:
    """A grid point's model at its best validation: its value (as Lightning reports it,
    NaN as the worst value), epoch, chosen post-processing, the seconds it trained and the
    epochs it trained before stopping."""

    conf: HyperParameters
    validation_score: float
    epoch: int
    postprocessing: object
    seconds: float
    model: MLP
    epochs_trained: int = 0

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(rows, classes) logits in eval mode."""
        return self.model.eval_logits(x)


class _Selection:
    """Lightning's ModelCheckpoint and EarlyStopping on one monitored value."""

    def __init__(self, conf: HyperParameters, maximize: bool) -> None:
        self.conf = conf
        self.maximize = maximize
        self.best: float | None = None
        self.best_epoch = -1
        self.best_state: list[torch.Tensor] | None = None
        self.postprocessing: object = None
        self.stop_best = -math.inf if maximize else math.inf
        self.wait = 0

    def _better(self, value: float, than: float) -> bool:
        return value > than if self.maximize else value < than

    def update(self, value: float, epoch: int, postprocessing: object, model: MLP) -> bool:
        """Record a validation; returns whether training stops."""
        value = float(np.float32(value))
        if self.best is None or self._better(value, self.best):
            worst = -math.inf if self.maximize else math.inf
            self.best = worst if math.isnan(value) else value
            self.best_epoch, self.postprocessing = epoch, postprocessing
            self.best_state = model.state()
        if not math.isfinite(value):
            return True
        if self._better(value, self.stop_best):
            self.stop_best, self.wait = value, 0
            return False
        self.wait += 1
        return self.wait >= self.conf.patience


def _validate(
    model: MLP, x: torch.Tensor, y: torch.Tensor, multiclass: bool, validate: Validation
) -> tuple[float, object]:
    logits = model.eval_logits(x)
    loss = float(logit_loss(logits, y, multiclass))
    return validate(activation(logits, multiclass).cpu().numpy(), loss)


def _train_one(
    conf: HyperParameters,
    train: tuple[torch.Tensor, torch.Tensor],
    valid: tuple[torch.Tensor, torch.Tensor],
    multiclass: bool,
    validate: Validation,
    maximize: bool,
    generator: torch.Generator,
) -> TrainedModel:
    start = time.perf_counter()
    x, y = train
    model = MLP(x.shape[1], y.shape[1], conf, x.device)
    model.initialize(conf.initialization, generator)
    for tensor in model.parameters():
        tensor.requires_grad_(True)
    optimizer = _optimizer(model)
    selection = _Selection(conf, maximize)
    epochs_trained = 0
    for epoch in range(conf.max_epochs):
        epochs_trained = epoch + 1
        for rows in range(0, len(x), conf.batch_size):
            batch = slice(rows, rows + conf.batch_size)
            if conf.hidden_layers and len(x[batch]) < 2:
                continue  # BatchNorm needs two rows to train (torch refuses a batch of one)
            optimizer.zero_grad(set_to_none=True)
            loss = logit_loss(model.logits(x[batch], True, generator), y[batch], multiclass)
            loss.backward()
            optimizer.step()
        if (epoch + 1) % conf.check_val_every_n_epoch == 0:
            value, postprocessing = _validate(model, *valid, multiclass, validate)
            if selection.update(value, epoch, postprocessing, model):
                break
    if selection.best_state is None:
        raise ValueError(
            f"grid point {conf} was never validated: max_epochs {conf.max_epochs} < "
            f"check_val_every_n_epoch {conf.check_val_every_n_epoch}"
        )
    model.load_state(selection.best_state)
    for tensor in model.parameters():
        tensor.requires_grad_(False)
    seconds = time.perf_counter() - start
    return TrainedModel(
        conf,
        selection.best,
        selection.best_epoch,
        selection.postprocessing,
        seconds,
        model,
        epochs_trained,
    )


def train_grid(
    confs: Sequence[HyperParameters],
    train: tuple[torch.Tensor, torch.Tensor],
    valid: tuple[torch.Tensor, torch.Tensor],
    *,
    multiclass: bool,
    validate: Validation,
    maximize: bool,
    seed: int | torch.Generator = 42,
) -> list[TrainedModel]:
    """Train every grid point of ``confs`` on ``train`` (embeddings, targets), validating on
    ``valid``; returns their models at their best validation, in the order of ``confs``.
    ``seed``: a seed, or a generator to draw from (initialisation, dropout), on the data's
    device; seeded as heareval seeds torch, the first point starts as heareval's first model."""
    if isinstance(seed, torch.Generator):
        generator = seed
    else:
        generator = torch.Generator(device=train[0].device).manual_seed(seed)
    return [
        _train_one(conf, train, valid, multiclass, validate, maximize, generator) for conf in confs
    ]
