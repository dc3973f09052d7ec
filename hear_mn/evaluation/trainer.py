"""heareval's downstream MLPs, trained together: one batched model per shape of grid point.

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

Faster by design, not by doing less: the grid points of one shape are one set of batched
tensors (the first layer one matrix product for all of them, the others batched products,
Adam applied to all at once with each point's learning rate); the embeddings stay on the
device; there is no data loader. Points leave the batch as they stop.
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

__all__ = ["MLPStack", "TrainedModel", "Validation", "train_grid"]

BN_EPS = 1e-5
BN_MOMENTUM = 0.1
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8

# Called with a model's class probabilities (rows, classes) and loss on the validation split:
# returns the monitored value and the post-processing chosen with it (events), if any.
Validation = Callable[[np.ndarray, float], tuple[float, object]]


class MLPStack:
    """``members`` MLPs of one shape as batched tensors: weights (members, in, out)."""

    def __init__(
        self,
        members: int,
        in_dim: int,
        out_dim: int,
        conf: HyperParameters,
        device: torch.device,
    ) -> None:
        self.conf = conf
        self.device = device
        dims = [in_dim] + [conf.hidden_dim] * conf.hidden_layers
        self.weights = [
            torch.empty(members, a, b, device=device) for a, b in zip(dims, dims[1:] + [out_dim])
        ]
        self.biases = [torch.empty(members, 1, w.shape[2], device=device) for w in self.weights]
        hidden = [(members, 1, conf.hidden_dim)] * conf.hidden_layers
        self.gammas = [torch.ones(shape, device=device) for shape in hidden]
        self.betas = [torch.zeros(shape, device=device) for shape in hidden]
        self.running_means = [torch.zeros(shape, device=device) for shape in hidden]
        self.running_vars = [torch.ones(shape, device=device) for shape in hidden]

    @property
    def members(self) -> int:
        return self.weights[0].shape[0]

    def parameters(self) -> list[torch.Tensor]:
        return [*self.weights, *self.biases, *self.gammas, *self.betas]

    def buffers(self) -> list[torch.Tensor]:
        return [*self.running_means, *self.running_vars]

    def initialize(self, initializations: Sequence[str], generator: torch.Generator) -> None:
        """Each member's layers as heareval initialises them, drawing from ``generator`` in
        the order its model draws from torch's generator: per layer, torch.nn.Linear's own
        weight init (then replaced), its bias, then the Xavier weight, all in torch's
        (out, in) layout. So a model seeded as heareval's first model starts as it does."""
        for member, initialization in enumerate(initializations):
            gain = 1.0  # calculate_gain("linear"), then "relu" after a hidden layer
            for weight, bias in zip(self.weights, self.biases):
                fan_in, fan_out = weight.shape[1], weight.shape[2]
                bound = 1.0 / math.sqrt(
                    fan_in
                )  # Linear's kaiming_uniform_(a=sqrt(5)) and bias bound
                drawn = torch.empty(fan_out, fan_in, device=self.device)
                drawn.uniform_(-bound, bound, generator=generator)  # replaced below, as in heareval
                bias[member, 0].uniform_(-bound, bound, generator=generator)
                std = gain * math.sqrt(2.0 / (fan_in + fan_out))
                if initialization == "xavier_uniform_":
                    drawn.uniform_(-math.sqrt(3.0) * std, math.sqrt(3.0) * std, generator=generator)
                else:
                    drawn.normal_(0.0, std, generator=generator)
                weight[member].copy_(drawn.T)
                gain = math.sqrt(2.0)

    def _norm(self, h: torch.Tensor, layer: int, train: bool) -> torch.Tensor:
        if train:
            mean = h.mean(dim=1, keepdim=True)
            var = h.var(dim=1, unbiased=False, keepdim=True)
            with torch.no_grad():
                rows = h.shape[1]
                self.running_means[layer].mul_(1 - BN_MOMENTUM).add_(BN_MOMENTUM * mean)
                unbiased = var * (rows / (rows - 1))
                self.running_vars[layer].mul_(1 - BN_MOMENTUM).add_(BN_MOMENTUM * unbiased)
        else:
            mean, var = self.running_means[layer], self.running_vars[layer]
        return (h - mean) * torch.rsqrt(var + BN_EPS) * self.gammas[layer] + self.betas[layer]

    def logits(
        self, x: torch.Tensor, train: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """(members, rows, classes) logits of ``x`` (rows, in_dim); ``train``: batch
        statistics (updating the running ones) and dropout."""
        conf = self.conf
        h = torch.einsum("bd,gdh->gbh", x, self.weights[0]) + self.biases[0]
        for layer in range(conf.hidden_layers):
            if layer:
                h = torch.baddbmm(self.biases[layer], h, self.weights[layer])
            if not conf.norm_after_activation:
                h = self._norm(h, layer, train)
            if train and conf.dropout > 0:
                keep = torch.rand(h.shape, device=h.device, generator=generator) >= conf.dropout
                h = h * keep / (1.0 - conf.dropout)
            h = torch.relu(h)
            if conf.norm_after_activation:
                h = self._norm(h, layer, train)
        if conf.hidden_layers:
            h = torch.baddbmm(self.biases[-1], h, self.weights[-1])
        return h

    def keep(self, members: list[int]) -> None:
        """Keep only ``members`` (indices), in that order."""
        index = torch.tensor(members, device=self.device)
        for group in (
            self.weights,
            self.biases,
            self.gammas,
            self.betas,
            self.running_means,
            self.running_vars,
        ):
            group[:] = [tensor.index_select(0, index) for tensor in group]

    def member_state(self, member: int) -> list[torch.Tensor]:
        return [
            t[member : member + 1].detach().clone() for t in (*self.parameters(), *self.buffers())
        ]

    def load_member_state(self, state: list[torch.Tensor]) -> None:
        for target, value in zip((*self.parameters(), *self.buffers()), state):
            target.data = value.clone()


def loss_per_member(logits: torch.Tensor, targets: torch.Tensor, multiclass: bool) -> torch.Tensor:
    """(members,) mean loss: cross-entropy against the one-hot class, or binary cross-entropy."""
    members, rows, classes = logits.shape
    if multiclass:
        labels = targets.argmax(dim=1).repeat(members)
        losses = F.cross_entropy(logits.reshape(-1, classes), labels, reduction="none")
        return losses.view(members, rows).mean(dim=1)
    expanded = targets.expand(members, rows, classes)
    return F.binary_cross_entropy_with_logits(logits, expanded, reduction="none").mean(dim=(1, 2))


def activation(logits: torch.Tensor, multiclass: bool) -> torch.Tensor:
    return torch.softmax(logits, dim=-1) if multiclass else torch.sigmoid(logits)


class _Adam:
    """torch.optim.Adam (no weight decay) on batched parameters, one learning rate per member."""

    def __init__(
        self, parameters: list[torch.Tensor], lrs: list[float], device: torch.device
    ) -> None:
        self.parameters = parameters
        self.lrs = torch.tensor(lrs, device=device, dtype=torch.float32)
        self.first = [torch.zeros_like(p) for p in parameters]
        self.second = [torch.zeros_like(p) for p in parameters]
        self.steps = 0

    @torch.no_grad()
    def step(self, gradients: list[torch.Tensor]) -> None:
        self.steps += 1
        beta1, beta2 = ADAM_BETAS
        correction1 = 1 - beta1**self.steps
        correction2_sqrt = math.sqrt(1 - beta2**self.steps)
        for param, grad, first, second in zip(self.parameters, gradients, self.first, self.second):
            first.mul_(beta1).add_(grad, alpha=1 - beta1)
            second.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denominator = (second.sqrt() / correction2_sqrt).add_(ADAM_EPS)
            step_size = (self.lrs / correction1).view(-1, *([1] * (param.dim() - 1)))
            param.sub_(step_size * first / denominator)

    def keep(self, members: list[int]) -> None:
        index = torch.tensor(members, device=self.lrs.device)
        self.lrs = self.lrs.index_select(0, index)
        self.first = [t.index_select(0, index) for t in self.first]
        self.second = [t.index_select(0, index) for t in self.second]


@dataclass
class TrainedModel:
    """A grid point's model at its best validation: its value (as Lightning reports it,
    NaN as the worst value), epoch, chosen post-processing and the time its batch trained."""

    conf: HyperParameters
    validation_score: float
    epoch: int
    postprocessing: object
    seconds: float
    stack: MLPStack

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(rows, classes) logits in eval mode, in chunks of the batch size."""
        with torch.no_grad():
            chunks = [
                self.stack.logits(x[i : i + self.conf.batch_size])[0]
                for i in range(0, len(x), self.conf.batch_size)
            ]
        return torch.cat(chunks)


@dataclass
class _Member:
    conf: HyperParameters
    index: int
    best: float | None = None
    best_epoch: int = -1
    best_state: list[torch.Tensor] | None = None
    postprocessing: object = None
    stop_best: float = 0.0
    wait: int = 0


def _better(value: float, than: float, maximize: bool) -> bool:
    return value > than if maximize else value < than


def _validate_members(
    stack: MLPStack,
    members: list[_Member],
    due: list[int],
    epoch: int,
    x: torch.Tensor,
    y: torch.Tensor,
    multiclass: bool,
    validate: Validation,
    maximize: bool,
) -> list[int]:
    """Validate members ``due`` (positions in the stack); returns the positions that stop."""
    with torch.no_grad():
        batch = members[0].conf.batch_size
        logits = torch.cat([stack.logits(x[i : i + batch]) for i in range(0, len(x), batch)], dim=1)
        losses = loss_per_member(logits, y, multiclass).cpu().numpy()
        probabilities = activation(logits, multiclass).cpu().numpy()
    stopping = []
    for position in due:
        member = members[position]
        value, postprocessing = validate(probabilities[position], float(losses[position]))
        value = float(np.float32(value))
        if member.best is None or _better(value, member.best, maximize):
            member.best = value if not math.isnan(value) else -math.inf if maximize else math.inf
            member.best_epoch, member.postprocessing = epoch, postprocessing
            member.best_state = stack.member_state(position)
        if not math.isfinite(value):
            stopping.append(position)
        elif _better(value, member.stop_best, maximize):
            member.stop_best, member.wait = value, 0
        else:
            member.wait += 1
            if member.wait >= member.conf.patience:
                stopping.append(position)
    return stopping


def _train_stack(
    confs: list[HyperParameters],
    x: torch.Tensor,
    y: torch.Tensor,
    valid_x: torch.Tensor,
    valid_y: torch.Tensor,
    multiclass: bool,
    validate: Validation,
    maximize: bool,
    generator: torch.Generator,
) -> list[_Member]:
    """Train grid points of one shape together; returns them with their best states."""
    conf = confs[0]
    stack = MLPStack(len(confs), x.shape[1], y.shape[1], conf, x.device)
    stack.initialize([c.initialization for c in confs], generator)
    members = [
        _Member(c, i, stop_best=-math.inf if maximize else math.inf) for i, c in enumerate(confs)
    ]
    finished: list[_Member] = []
    parameters = stack.parameters()
    for tensor in parameters:
        tensor.requires_grad_(True)
    optimizer = _Adam(parameters, [c.lr for c in confs], x.device)
    for epoch in range(max(c.max_epochs for c in confs)):
        for start in range(0, len(x), conf.batch_size):
            rows = slice(start, start + conf.batch_size)
            if conf.hidden_layers and len(x[rows]) < 2:
                continue  # BatchNorm needs two rows to train (torch refuses a batch of one)
            loss = loss_per_member(
                stack.logits(x[rows], True, generator), y[rows], multiclass
            ).sum()
            optimizer.step(list(torch.autograd.grad(loss, parameters)))
        due = [
            p for p, m in enumerate(members) if (epoch + 1) % m.conf.check_val_every_n_epoch == 0
        ]
        stopping = set()
        if due:
            stopping.update(
                _validate_members(
                    stack, members, due, epoch, valid_x, valid_y, multiclass, validate, maximize
                )
            )
        stopping.update(p for p, m in enumerate(members) if epoch + 1 >= m.conf.max_epochs)
        if stopping:
            finished += [members[p] for p in sorted(stopping)]
            alive = [p for p in range(len(members)) if p not in stopping]
            if not alive:
                break
            members = [members[p] for p in alive]
            for tensor in parameters:
                tensor.requires_grad_(False)
            stack.keep(alive)
            optimizer.keep(alive)
            parameters = stack.parameters()
            for tensor in parameters:
                tensor.requires_grad_(True)
            optimizer.parameters = parameters
    return finished


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
    by_shape: dict[tuple, list[int]] = {}
    for index, conf in enumerate(confs):
        by_shape.setdefault(conf.structure(), []).append(index)
    results: dict[int, TrainedModel] = {}
    for indices in by_shape.values():
        start = time.perf_counter()
        group = [confs[i] for i in indices]
        members = _train_stack(group, *train, *valid, multiclass, validate, maximize, generator)
        seconds = time.perf_counter() - start
        for member in members:
            if member.best_state is None:
                raise ValueError(
                    f"grid point {member.conf} was never validated: max_epochs "
                    f"{member.conf.max_epochs} < check_val_every_n_epoch {member.conf.check_val_every_n_epoch}"
                )
            stack = MLPStack(1, train[0].shape[1], train[1].shape[1], member.conf, train[0].device)
            stack.load_member_state(member.best_state)
            results[indices[member.index]] = TrainedModel(
                member.conf, member.best, member.best_epoch, member.postprocessing, seconds, stack
            )
    return [results[i] for i in range(len(confs))]
