"""Label noise: with probability p a training label becomes a uniformly drawn class."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field

from ..rng import uniform
from .base import Treatment
from .registry import TREATMENTS


@TREATMENTS.register
class LabelNoise(Treatment):
    """p = 1 gives random labels; the expected change rate is p·(C−1)/C."""

    name: Literal["label_noise"] = "label_noise"
    about: ClassVar[str] = "each training label replaced, with probability p, by a uniformly random class (p = 1: random labels)"
    p: float = Field(ge=0.0, le=1.0, description="corruption probability in [0, 1]")

    default_splits: ClassVar[tuple[str, ...]] = ("train",)
    allowed_splits: ClassVar[tuple[str, ...]] = ("train",)
    on_labels: ClassVar[bool] = True

    def state(self, key, ctx):  # per image by nature: one int64 label per training image
        idx = torch.arange(len(ctx.train_y), device=ctx.device)
        corrupt = uniform(key, idx, 0).to(ctx.device) < self.p
        drawn = (uniform(key, idx, 1).to(ctx.device) * ctx.n_classes).long().clamp_(max=ctx.n_classes - 1)
        return {"labels": torch.where(corrupt, drawn, ctx.train_y.to(ctx.device))}

    def apply_labels(self, y, idx, st):  # labels [G, N], idx [G, B]
        return st["labels"].gather(1, idx)
