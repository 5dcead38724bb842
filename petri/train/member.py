"""What the training loop takes and gives per cell: a ``Member`` (its seed, treatments, learning rate,
resume state) and its ``Result`` (status, epoch rows, final weights, metrics and predictions)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..rng import Seeds
from ..treatments.base import Treatment
from .state import CellState


@dataclass
class Member:
    """One cell as the loop sees it."""

    seed: int | Seeds  # an int drives every random source (rng.SOURCES); Seeds names some apart
    treatments: list[Treatment] = field(default_factory=list)
    lr: float | None = None  # None: the recipe's
    weight_decay: float | None = None
    state: CellState | None = None  # resume from here (all members of a pack at the same epoch)
    metrics: tuple[str, ...] = ()  # users' metrics it records when it finishes (train.metrics)


@dataclass
class Result:
    status: str = "running"  # then done / stopped-early / diverged
    epochs: list[dict] = field(default_factory=list)  # one metrics dict per epoch finished in this call
    state: CellState | None = None  # with keep_state: the state after the latest epoch, while running
    weights: dict[str, torch.Tensor] | None = None  # with keep_state, once finished: the final weights
    best: dict[str, torch.Tensor] | None = None  # ... and the best epoch's (early stopping on a metric)
    best_epoch: int | None = None
    final: dict | None = None  # once finished: train.metrics.final_metrics of its test logits
    predictions: dict[str, torch.Tensor] | None = None  # once finished: predicted classes and true labels
    # ("test", "val", "best.test", "best.val", "test.labels", "val.labels"; uint8, int16 beyond 256 classes)
