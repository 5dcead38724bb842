"""Pixel-intensity treatments: invert, sparsify, standardize."""

from __future__ import annotations

from typing import ClassVar, Literal, Union

import torch
from pydantic import Field, PositiveFloat

from .base import Context, Treatment, member_axes
from .registry import TREATMENTS


@TREATMENTS.register
class Invert(Treatment):
    """x -> 1 - x (white background instead of black)."""

    name: Literal["invert"] = "invert"
    about: ClassVar[str] = "x -> 1 - x: white background instead of black"

    def affine(self, st):
        return -1.0, 1.0

    def apply(self, x, idx, st, keys, epoch):
        return torch.rsub(x, 1.0)


@TREATMENTS.register
class Sparsify(Treatment):
    """x -> clip(x - threshold, 0, 1)."""

    name: Literal["sparsify"] = "sparsify"
    about: ClassVar[str] = "x -> clip(x - threshold, 0, 1): faint pixels become 0"
    threshold: float = Field(default=0.5, ge=0.0, lt=1.0, description="t in [0, 1)")

    def state(self, key, ctx):
        return {"t": torch.tensor(self.threshold, device=ctx.device)}

    def apply(self, x, idx, st, keys, epoch):
        return x.sub_(member_axes(st["t"], x.dim())).clamp_(0.0, 1.0)


@TREATMENTS.register
class Standardize(Treatment):
    """(x - mean) / std; ``auto`` takes them from the training images (after preceding treatments)."""

    name: Literal["standardize"] = "standardize"
    about: ClassVar[str] = "(x - mean) / std, per pixel value"
    mean: Union[float, Literal["auto"]] = Field(
        default="auto", description="subtracted; \"auto\": the training images' mean (after preceding treatments)")
    std: Union[PositiveFloat, Literal["auto"]] = Field(
        default="auto", description="divided by; \"auto\": the training images' standard deviation")

    def state(self, key, ctx: Context):
        mean = ctx.sample.mean() if self.mean == "auto" else torch.tensor(float(self.mean))
        std = ctx.sample.std() if self.std == "auto" else torch.tensor(float(self.std))
        return {"mean": mean.to(ctx.device), "inv_std": (1.0 / std.clamp_min(1e-12)).to(ctx.device)}

    def affine(self, st):
        return st["inv_std"], -st["mean"] * st["inv_std"]

    def apply(self, x, idx, st, keys, epoch):
        return x.sub_(member_axes(st["mean"], x.dim())).mul_(member_axes(st["inv_std"], x.dim()))
