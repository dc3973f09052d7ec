"""A trained head on disk: ``head.pt`` (tensors only) and ``classifier.json`` (its card).

The head is the downstream MLP the evaluator's trainer chose (:mod:`hear_mn.evaluation.trainer`),
as a torch module computing the same thing in eval mode: per hidden layer a linear layer,
BatchNorm (running statistics) and ReLU, then a linear projection, then softmax (one class
per example) or sigmoid (multi-label). ``head.pt`` is a plain state dict saved with
``torch.save`` and read with ``torch.load(weights_only=True)``: no pickled code, safe to load
from anyone. The card says what the head needs (the embedding model, its settings and a
SHA-256 of its weights) and what it learned from (data, scores, grid point); loading refuses
a head whose file is not the one the card describes.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import torch
from torch import nn

from hear_mn.atomic import atomic_write
from hear_mn.evaluation.trainer import BN_EPS, BN_MOMENTUM, MLP
from hear_mn.hub.errors import FileError
from hear_mn.hub.regular_files import read_regular_file

__all__ = [
    "CARD_FILE",
    "CARD_FORMAT",
    "HEAD_FILE",
    "ClassifierFileError",
    "HeadNetwork",
    "head_from_mlp",
    "read_card",
    "read_head",
    "write_classifier_files",
]

HEAD_FILE = "head.pt"
CARD_FILE = "classifier.json"
CARD_FORMAT = "hear-mn classifier 1"


class ClassifierFileError(ValueError):
    """A classifier folder that cannot be used (missing, damaged, or not hear-mn's)."""


class HeadNetwork(nn.Module):
    """Embeddings (rows, D) -> class probabilities (rows, classes), in eval mode."""

    def __init__(
        self,
        in_dim: int,
        classes: int,
        hidden_layers: int,
        hidden_dim: int,
        norm_after_activation: bool,
        multilabel: bool,
    ) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * hidden_layers + [classes]
        self.linear = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:]))
        self.norm = nn.ModuleList(
            nn.BatchNorm1d(hidden_dim, eps=BN_EPS, momentum=BN_MOMENTUM)
            for _ in range(hidden_layers)
        )
        self.norm_after_activation = norm_after_activation
        self.multilabel = multilabel
        self.eval()

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        h = embeddings
        for linear, norm in zip(self.linear, self.norm):
            h = linear(h)
            if not self.norm_after_activation:
                h = norm(h)
            h = torch.relu(h)
            if self.norm_after_activation:
                h = norm(h)
        return self.linear[-1](h)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        logits = self.logits(embeddings)
        return torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=-1)


def _architecture(card: dict) -> dict:
    head = card["head"]
    return {
        "in_dim": int(head["input_size"]),
        "classes": len(card["labels"]),
        "hidden_layers": int(head["grid_point"]["hidden_layers"]),
        "hidden_dim": int(head["grid_point"]["hidden_dim"]),
        "norm_after_activation": bool(head["grid_point"]["norm_after_activation"]),
        "multilabel": bool(card["multilabel"]),
    }


def head_from_mlp(mlp: MLP, multilabel: bool) -> HeadNetwork:
    """The trainer's model as a :class:`HeadNetwork` with the same numbers."""
    conf = mlp.conf
    head = HeadNetwork(
        mlp.weights[0].shape[1],
        mlp.weights[-1].shape[0],
        conf.hidden_layers,
        conf.hidden_dim,
        conf.norm_after_activation,
        multilabel,
    )
    with torch.no_grad():
        for linear, weight, bias in zip(head.linear, mlp.weights, mlp.biases):
            linear.weight.copy_(weight)
            linear.bias.copy_(bias)
        for i, norm in enumerate(head.norm):
            norm.weight.copy_(mlp.gammas[i])
            norm.bias.copy_(mlp.betas[i])
            norm.running_mean.copy_(mlp.running_means[i])
            norm.running_var.copy_(mlp.running_vars[i])
    return head.to("cpu").eval()


def _state_bytes(head: HeadNetwork) -> bytes:
    buffer = io.BytesIO()
    state = {key: value.detach().cpu().contiguous() for key, value in head.state_dict().items()}
    torch.save(state, buffer)
    return buffer.getvalue()


def write_classifier_files(folder: Path, head: HeadNetwork, card: dict) -> None:
    """Write ``head.pt`` then ``classifier.json`` (with the head's SHA-256) atomically."""
    data = _state_bytes(head)
    card["head"]["file"] = HEAD_FILE
    card["head"]["sha256"] = hashlib.sha256(data).hexdigest()
    atomic_write(folder / HEAD_FILE, data)
    atomic_write(folder / CARD_FILE, (json.dumps(card, indent=2) + "\n").encode())


def _folder(path: str | Path) -> Path:
    folder = Path(path)
    if folder.is_file() and folder.name in (CARD_FILE, HEAD_FILE):
        folder = folder.parent
    if not folder.is_dir():
        raise ClassifierFileError(
            f"classifier {str(path)!r} is not a folder; give the folder `hear-mn fit --out` wrote "
            f"(with {CARD_FILE} and {HEAD_FILE})"
        )
    return folder


def read_card(path: str | Path) -> tuple[Path, dict]:
    """The classifier folder and its card, checked to be a hear-mn classifier card."""
    folder = _folder(path)
    try:
        card = json.loads(read_regular_file(folder / CARD_FILE, "classifier card"))
    except (FileError, OSError) as error:
        raise ClassifierFileError(
            f"{folder} holds no readable {CARD_FILE} ({error}); it is not a classifier folder "
            "written by `hear-mn fit`"
        ) from None
    except ValueError as error:
        raise ClassifierFileError(f"{folder / CARD_FILE} is not valid JSON ({error})") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise ClassifierFileError(
            f"{folder / CARD_FILE} is not a hear-mn classifier card (format "
            f"{card.get('format') if isinstance(card, dict) else None!r}, expected {CARD_FORMAT!r})"
        )
    return folder, card


def read_head(folder: Path, card: dict) -> HeadNetwork:
    """The head of ``folder``, loaded as plain tensors, checked against the card."""
    path = folder / card["head"].get("file", HEAD_FILE)
    try:
        data = read_regular_file(path, "classifier head")
    except (FileError, OSError) as error:
        raise ClassifierFileError(f"cannot read the head {path}: {error}") from None
    if hashlib.sha256(data).hexdigest() != card["head"].get("sha256"):
        raise ClassifierFileError(
            f"{path} is not the head {folder / CARD_FILE} describes (its SHA-256 differs): it "
            "was replaced or damaged; fit the classifier again"
        )
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        head = HeadNetwork(**_architecture(card))
        head.load_state_dict(state, strict=True)
    except Exception as error:  # pickle, zipfile and shape errors alike: a damaged head
        raise ClassifierFileError(f"{path} cannot be loaded as the card's head: {error}") from None
    return head.eval()
