"""Augmentation, fresh each epoch: random crop after reflect padding, horizontal flip."""

from __future__ import annotations

import functools
from typing import ClassVar, Literal

import torch
from pydantic import Field, NonNegativeInt

from ..rng import per_image, unit
from .base import Treatment
from .registry import TREATMENTS


@TREATMENTS.register
class Crop(Treatment):
    """Pad by ``pad`` (reflect), then take a random crop of the original size; shifts in [-pad, pad]."""

    name: Literal["crop"] = "crop"
    about: ClassVar[str] = "random crop of the original size from the image padded by pad pixels, fresh each epoch"
    pad: NonNegativeInt = Field(default=4, description="padding in pixels, >= 0")
    mode: Literal["reflect", "constant", "replicate"] = Field(
        default="reflect", description="how the padding is filled: mirrored, zeros, or the edge pixel repeated")

    default_splits: ClassVar[tuple[str, ...]] = ("train",)
    per_epoch: ClassVar[bool] = True

    def check(self, shape):
        _, h, w = shape
        if self.mode == "reflect" and self.pad >= min(h, w):
            raise ValueError(f"reflect padding needs pad < image side; got pad={self.pad} for {h}×{w}")

    @staticmethod
    def draws(keys, idx, epoch, pad):
        """Per-image (dy + pad, dx + pad) in [0, 2·pad], [G, B] each, both from one 32-bit draw."""
        n = 2 * pad + 1
        h = per_image(keys, idx, epoch)
        return h % n, (h // n) % n

    @staticmethod
    def shifts(keys, idx, epoch, pad):
        """Per-image (dy, dx) in [-pad, pad], [G, B] each."""
        ry, rx = Crop.draws(keys, idx, epoch, pad)
        return ry - pad, rx - pad

    def apply(self, x, idx, st, keys, epoch):
        if self.pad == 0:
            return x
        G, B, C, H, W = x.shape
        # Separable: whole rows move with one index_select, then columns with a gather whose index
        # broadcasts over channels and rows. The source row / column of every output coordinate,
        # per shift, comes from a small table (the padding resolved once, never a padded copy).
        row_src, row_in = _source_table(self.pad, self.mode, H, x.device)
        col_src, col_in = _source_table(self.pad, self.mode, W, x.device)
        ry, rx = (r.view(-1) for r in self.draws(keys, idx, epoch, self.pad))  # table rows, [G*B]
        planes = torch.arange(0, G * B * C * H, H, device=x.device).view(G * B, C, 1)  # each plane's first row
        rows = (planes + row_src[ry][:, None, :]).view(-1)  # [G*B*C*H]
        out = x.reshape(-1, W).index_select(0, rows).view(G * B, C, H, W)
        out = out.gather(3, col_src[rx][:, None, None, :].expand(G * B, C, H, W))
        if self.mode == "constant":  # zero padding: pixels that came from outside the image
            out = out * (row_in[ry][:, None, :, None] & col_in[rx][:, None, None, :])
        return out.reshape(G, B, C, H, W)


@functools.lru_cache(maxsize=64)
def _source_table(pad: int, mode: str, n: int, device: torch.device):
    """For each shift d in [-pad, pad] (row d + pad): the source index in [0, n) of each of the n
    output coordinates, and whether it lies inside the image; [2·pad + 1, n] each."""
    i = torch.arange(-pad, pad + 1)[:, None] + torch.arange(n)  # coordinates in the padded image
    src, inside = resolve(i, n, mode)
    return src.to(device), inside.to(device)


def resolve(i: torch.Tensor, n: int, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinates ``i`` (possibly outside [0, n)) -> the source coordinate under the padding mode,
    and whether ``i`` lies inside (constant padding: the pixel is zero where it does not)."""
    inside = (i >= 0) & (i < n)
    if mode == "reflect":  # ... 2 1 | 0 1 2 ... n-1 | n-2 n-3 ...
        i = i.abs()
        i = torch.where(i > n - 1, 2 * (n - 1) - i, i)
    else:  # replicate, or constant (masked afterwards)
        i = i.clamp(0, n - 1)
    return i, inside


@TREATMENTS.register
class Flip(Treatment):
    """Horizontal flip with probability p."""

    name: Literal["flip"] = "flip"
    about: ClassVar[str] = "horizontal flip with probability p, fresh each epoch"
    p: float = Field(default=0.5, ge=0.0, le=1.0, description="flip probability in [0, 1]")

    default_splits: ClassVar[tuple[str, ...]] = ("train",)
    per_epoch: ClassVar[bool] = True

    @staticmethod
    def flips(keys, idx, epoch, p):
        """Which images are flipped, [G, B] bool; ``p`` a float or per member [G, 1]."""
        return unit(per_image(keys, idx, epoch)) < p

    def apply(self, x, idx, st, keys, epoch):
        flip = self.flips(keys, idx, epoch, self.p)  # [G, B]
        # Only the flipped images move, as whole images (x is the pipeline's own: changed in place);
        # half the cost of a per-pixel gather over the batch.
        images = x.reshape(-1, *x.shape[2:])
        which = flip.view(-1).nonzero().view(-1)
        return images.index_copy_(0, which, images.index_select(0, which).flip(-1)).view(x.shape)
