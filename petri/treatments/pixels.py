"""Image corruptions of the CIFAR study: fixed pixel permutation, per-image
pixel shuffles, and Gaussian noise images with each image's own mean and std.

Pixels are permuted as positions: all channels of a pixel move together.
"""

from __future__ import annotations

import functools
from typing import ClassVar, Literal

import numpy as np
import torch

from ..rng import derive_seed
from .base import Treatment
from .registry import TREATMENTS


def _gather_pixels(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """x [G, B, C, H, W], perm [G, 1 or B, H*W] -> pixels reordered per member (or image)."""
    G, B, C, H, W = x.shape
    flat = x.reshape(G, B, C, H * W)
    index = perm[:, :, None, :].expand(G, B, C, H * W)
    return flat.gather(3, index).reshape(G, B, C, H, W)


@TREATMENTS.register
class PermutePixels(Treatment):
    """One fixed random pixel permutation per cell seed, the same for train and test."""

    about: ClassVar[str] = "one fixed random pixel permutation per seed, the same for every image, train and test"

    name: Literal["permute_pixels"] = "permute_pixels"

    def state(self, key, ctx):
        _, h, w = ctx.shape
        g = torch.Generator().manual_seed(key)
        return {"perm": torch.randperm(h * w, generator=g).to(ctx.device)}

    def permutation(self, st):
        return st["perm"]

    def apply(self, x, idx, st, keys, epoch):
        return _gather_pixels(x, st["perm"][:, None, :])


class _PerImage(Treatment):
    """A fixed draw per training image, from a pool shared by every cell: member k's image i takes
    pool entry ``slot[i]``, ``slot`` a random bijection of the split's indices keyed by the cell seed
    (the per-image key the issue allows). So each image of a cell has its own draw, a cell's draws
    are a function of its seed and the image index, and what is stored per cell is one index per
    image; the pool (one draw per image of the split) is made once per process from a constant seed.
    Drawing 784 values per image on every step cost 2-4 times a 32-member mlp [64] step."""

    default_splits: ClassVar[tuple[str, ...]] = ("train",)

    def state(self, key, ctx):
        g = torch.Generator().manual_seed(key)
        return {"slot": torch.randperm(len(ctx.train_y), generator=g).to(ctx.device)}

    def draws(self, kind: str, x, idx, st, n: int) -> torch.Tensor:
        """The pool entries ([n] values each) of the images ``idx [G, B]``: [G, B, n]."""
        slot = st["slot"]
        rows = slot.gather(1, idx % slot.shape[1])  # another split's indices (a test override) wrap around
        pool = _pool(kind, slot.shape[1], n, x.device)
        dtype = torch.int64 if kind == "permutations" else x.dtype  # a gather index; the images' float
        return pool.index_select(0, rows.view(-1)).view(*idx.shape, n).to(dtype)


@TREATMENTS.register
class ShufflePixels(_PerImage):
    """Every training image gets its own fixed random pixel permutation."""

    about: ClassVar[str] = "every training image gets its own fixed random pixel permutation"

    name: Literal["shuffle_pixels"] = "shuffle_pixels"

    def apply(self, x, idx, st, keys, epoch):
        return _gather_pixels(x, self.draws("permutations", x, idx, st, x.shape[3] * x.shape[4]))


@TREATMENTS.register
class GaussianImages(_PerImage):
    """Each training image replaced by Gaussian noise with that image's own mean and std."""

    about: ClassVar[str] = "each training image replaced by Gaussian noise with that image's own mean and std"

    name: Literal["gaussian_images"] = "gaussian_images"

    def apply(self, x, idx, st, keys, epoch):
        G, B = x.shape[:2]
        flat = x.reshape(G, B, -1)
        mean = flat.mean(dim=-1, keepdim=True)  # two passes: 20x faster than torch.std_mean here
        d = flat - mean
        std = d.mul_(d).sum(dim=-1, keepdim=True).div_(flat.shape[-1] - 1).sqrt_()
        z = self.draws("normal", x, idx, st, flat.shape[-1])  # [G, B, C*H*W], a copy of pool rows
        return z.mul_(std).add_(mean).reshape(x.shape)


POOL_CHUNK = 4096  # pool rows made at a time (bounds the temporary int64 sort keys)


@functools.lru_cache(maxsize=2)
def _pool(kind: str, n_images: int, n: int, device: torch.device) -> torch.Tensor:
    """``n_images`` fixed draws of ``n`` values, from a constant seed: uniformly random permutations
    of range(n) or standard normal vectors. Kept in 16 bits (int16; float16, 11 significant bits):
    the rows a step reads come from memory, not the caches, and half the bytes read faster than the
    conversion to int64 / float32 costs (MNIST: 94 MB per pool)."""
    g = torch.Generator().manual_seed(derive_seed(0, "pool", kind, n_images, n))
    if kind == "normal":
        return torch.randn(n_images, n, generator=g).to(device, torch.float16)
    bits = (n - 1).bit_length()
    pixel = torch.arange(n)
    out = torch.empty(n_images, n, dtype=torch.int16 if n <= 1 << 15 else torch.int32)
    for a in range(0, n_images, POOL_CHUNK):  # random 32-bit keys with the pixel in the low bits, sorted
        b = min(a + POOL_CHUNK, n_images)
        keys = torch.randint(0, 1 << 32, (b - a, n), generator=g).bitwise_left_shift_(bits).bitwise_or_(pixel)
        out[a:b] = _sort_rows(keys).bitwise_and_((1 << bits) - 1)
    return out.to(device)


def _sort_rows(t: torch.Tensor) -> torch.Tensor:
    """Values sorted along the last axis (numpy's SIMD sort: 2-3x faster than torch's on the CPU)."""
    return torch.from_numpy(np.sort(t.numpy(), axis=-1))
