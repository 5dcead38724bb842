"""Windows: keep only a k×k window (zero the rest), or zero the window.

The mask is per member and tiny ([H, W]); it multiplies each batch on the fly,
so 400 window cells never materialise 400 copies of the data set.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field

from ..specs import PositiveInt
from .base import Treatment
from .registry import TREATMENTS


class _Window(Treatment):
    size: PositiveInt = Field(description="window side k in pixels, k >= 1")
    row: int = Field(ge=0, description="top row of the window")
    col: int = Field(ge=0, description="left column of the window")
    keep: ClassVar[bool] = True  # the window's pixels are kept (else zeroed)

    def check(self, shape):
        _, h, w = shape
        if self.row + self.size > h or self.col + self.size > w:
            raise ValueError(
                f"window size={self.size} at row={self.row}, col={self.col} goes beyond the {h}×{w} image; "
                f"allowed: row + size <= {h} and col + size <= {w}")

    def state(self, key, ctx):
        self.check(ctx.shape)
        _, h, w = ctx.shape
        inside = torch.zeros(h, w, device=ctx.device)
        inside[self.row:self.row + self.size, self.col:self.col + self.size] = 1.0
        return {"mask": inside if self.keep else 1.0 - inside}

    def affine(self, st):
        return st["mask"], 0.0

    def apply(self, x, idx, st, keys, epoch):  # x [G, B, C, H, W], mask [G, H, W]
        return x * st["mask"][:, None, None]


@TREATMENTS.register
class WindowKeep(_Window):
    """Zero every pixel outside the k×k window at (row, col)."""

    name: Literal["window_keep"] = "window_keep"
    about: ClassVar[str] = "zero every pixel outside the size × size window at (row, col)"


@TREATMENTS.register
class WindowDrop(_Window):
    """Zero the pixels inside the k×k window at (row, col)."""

    name: Literal["window_drop"] = "window_drop"
    about: ClassVar[str] = "zero the pixels inside the size × size window at (row, col)"
    keep: ClassVar[bool] = False
