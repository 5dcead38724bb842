"""Image corruptions of the CIFAR study: fixed pixel permutation, per-image
pixel shuffles, and Gaussian noise images with each image's own mean and std.

Pixels are permuted as positions: all channels of a pixel move together.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import torch

from ..rng import _mix32, normal, per_image
from .base import Treatment


def _gather_pixels(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """x [G, B, C, H, W], perm [G, 1 or B, H*W] -> pixels reordered per member (or image)."""
    G, B, C, H, W = x.shape
    flat = x.reshape(G, B, C, H * W)
    index = perm[:, :, None, :].expand(G, B, C, H * W)
    return flat.gather(3, index).reshape(G, B, C, H, W)


class PermutePixels(Treatment):
    """One fixed random pixel permutation per cell seed, the same for train and test."""

    name: Literal["permute_pixels"] = "permute_pixels"

    def state(self, key, ctx):
        _, h, w = ctx.shape
        g = torch.Generator().manual_seed(key)
        return {"perm": torch.randperm(h * w, generator=g).to(ctx.device)}

    def permutation(self, st):
        return st["perm"]

    def apply(self, x, idx, st, keys, epoch):
        return _gather_pixels(x, st["perm"][:, None, :])


class ShufflePixels(Treatment):
    """Every training image gets its own fixed random pixel permutation (keyed by its index)."""

    name: Literal["shuffle_pixels"] = "shuffle_pixels"
    default_splits: ClassVar[tuple[str, ...]] = ("train",)

    def apply(self, x, idx, st, keys, epoch):
        G, B, C, H, W = x.shape
        n, bits = H * W, (H * W - 1).bit_length()
        image_keys = per_image(keys, idx)[:, :, None]  # [G, B, 1]: one key per image
        pixel = torch.arange(n, device=x.device, dtype=torch.int64)
        # Each image's pixels ordered by a 32-bit hash of (image key, pixel), ties by pixel: the hash and
        # the pixel packed into one int64, so sorting values (no indices) gives the permutation.
        packed = _mix32(image_keys ^ pixel * 0x9E3779B9).bitwise_left_shift_(bits).bitwise_or_(pixel)
        return _gather_pixels(x, _sort_rows(packed).bitwise_and_((1 << bits) - 1))


def _sort_rows(t: torch.Tensor) -> torch.Tensor:
    """Values sorted along the last axis. On the CPU numpy's (SIMD) sort is 2-3x faster than torch's;
    the values here are distinct, so both give the same result."""
    if t.device.type == "cpu":
        return torch.from_numpy(np.sort(t.numpy(), axis=-1))
    return t.sort(dim=-1).values


class GaussianImages(Treatment):
    """Each training image replaced by Gaussian noise with that image's own mean and std."""

    name: Literal["gaussian_images"] = "gaussian_images"
    default_splits: ClassVar[tuple[str, ...]] = ("train",)

    def apply(self, x, idx, st, keys, epoch):
        G, B = x.shape[:2]
        flat = x.reshape(G, B, -1)
        mean = flat.mean(dim=-1, keepdim=True)  # two passes: 20x faster than torch.std_mean here
        d = flat - mean
        std = d.mul_(d).sum(dim=-1, keepdim=True).div_(flat.shape[-1] - 1).sqrt_()
        z = normal(per_image(keys, idx)[:, :, None], flat.shape[-1])  # [G, B, C*H*W]
        return z.mul_(std).add_(mean).reshape(x.shape)
