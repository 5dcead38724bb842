"""Augmentation, fresh each epoch: random crop after reflect padding, horizontal flip."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, NonNegativeInt

from ..rng import hash32, uniform
from .base import Treatment


class Crop(Treatment):
    """Pad by ``pad`` (reflect), then take a random crop of the original size; shifts in [-pad, pad]."""

    name: Literal["crop"] = "crop"
    pad: NonNegativeInt = Field(default=4, description="padding in pixels, >= 0")
    mode: Literal["reflect", "constant", "replicate"] = "reflect"

    default_splits: ClassVar[tuple[str, ...]] = ("train",)
    per_epoch: ClassVar[bool] = True

    def check(self, shape):
        _, h, w = shape
        if self.mode == "reflect" and self.pad >= min(h, w):
            raise ValueError(f"reflect padding needs pad < image side; got pad={self.pad} for {h}×{w}")

    @staticmethod
    def shifts(keys, idx, epoch, pad):
        """Per-image (dy, dx) in [-pad, pad], [G, B] each."""
        dy = hash32(keys[:, None], idx, epoch, 0) % (2 * pad + 1) - pad
        dx = hash32(keys[:, None], idx, epoch, 1) % (2 * pad + 1) - pad
        return dy, dx

    def apply(self, x, idx, st, keys, epoch):
        if self.pad == 0:
            return x
        G, B, C, H, W = x.shape
        p = self.pad
        padded = F.pad(x.reshape(G * B, C, H, W), (p, p, p, p), mode=self.mode)  # [GB, C, H+2p, W+2p]
        dy, dx = self.shifts(keys, idx, epoch, p)
        rows = (dy.reshape(-1, 1) + p) + torch.arange(H, device=x.device)  # [GB, H]
        cols = (dx.reshape(-1, 1) + p) + torch.arange(W, device=x.device)  # [GB, W]
        n = torch.arange(G * B, device=x.device)[:, None, None, None]
        c = torch.arange(C, device=x.device)[None, :, None, None]
        out = padded[n, c, rows[:, None, :, None], cols[:, None, None, :]]
        return out.reshape(G, B, C, H, W)


class Flip(Treatment):
    """Horizontal flip with probability p."""

    name: Literal["flip"] = "flip"
    p: float = Field(default=0.5, ge=0.0, le=1.0, description="flip probability in [0, 1]")

    default_splits: ClassVar[tuple[str, ...]] = ("train",)
    per_epoch: ClassVar[bool] = True

    def apply(self, x, idx, st, keys, epoch):
        flip = uniform(keys[:, None], idx, epoch, 7) < self.p  # [G, B]
        return torch.where(flip[:, :, None, None, None], x.flip(-1), x)
