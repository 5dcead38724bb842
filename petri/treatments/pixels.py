"""Image corruptions of the CIFAR study: fixed pixel permutation, per-image
pixel shuffles, and Gaussian noise images with each image's own mean and std.

Pixels are permuted as positions: all channels of a pixel move together.
"""

from __future__ import annotations

from typing import ClassVar, Literal

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

    def apply(self, x, idx, st, keys, epoch):
        return _gather_pixels(x, st["perm"][:, None, :])


class ShufflePixels(Treatment):
    """Every training image gets its own fixed random pixel permutation (keyed by its index)."""

    name: Literal["shuffle_pixels"] = "shuffle_pixels"
    default_splits: ClassVar[tuple[str, ...]] = ("train",)

    def apply(self, x, idx, st, keys, epoch):
        G, B, C, H, W = x.shape
        image_keys = per_image(keys, idx)  # [G, B]: one key per image
        pixel = torch.arange(H * W, device=x.device, dtype=torch.int64) * 0x9E3779B9
        perm = _mix32(image_keys[:, :, None] ^ pixel).argsort(dim=-1)  # [G, B, H*W]
        return _gather_pixels(x, perm)


class GaussianImages(Treatment):
    """Each training image replaced by Gaussian noise with that image's own mean and std."""

    name: Literal["gaussian_images"] = "gaussian_images"
    default_splits: ClassVar[tuple[str, ...]] = ("train",)

    def apply(self, x, idx, st, keys, epoch):
        G, B = x.shape[:2]
        flat = x.reshape(G, B, -1)
        std, mean = torch.std_mean(flat, dim=-1, keepdim=True)
        element = torch.arange(flat.shape[-1], device=x.device, dtype=torch.int64)
        z = normal(per_image(keys, idx)[:, :, None], element)  # the key hashed once per image  # [G, B, C*H*W]
        return z.mul_(std).add_(mean).reshape(x.shape)
