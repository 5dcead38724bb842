"""What a treatment is: a named, typed, validated change to a cell's data.

A treatment has parameters (pydantic fields), the splits it acts on (train,
test or both; overridable per use), a small per-member ``state`` computed once
(a mask, a permutation, relabelled targets) and a batched ``apply`` that works
on a whole group of members at once: ``x [G, B, C, H, W]`` float in [0, 1]
(for the first treatment), ``idx [G, B]`` the images' indices in their split,
``keys [G]`` the members' treatment keys (a CPU tensor: ``rng.per_image`` mixes them on the host). Randomness comes from
``petri.rng`` hashes of (key, epoch, index), never from the streams used for
initial weights and data order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from pydantic import Field, field_validator

from ..rng import per_image, unit
from ..specs import Spec, json_text

Split = Literal["train", "test"]


@dataclass
class Context:
    """What a treatment may look at when it builds a member's state."""

    shape: tuple[int, int, int]  # (C, H, W)
    n_classes: int
    train_y: torch.Tensor  # int64 [N] labels of the training split
    sample: torch.Tensor  # float [n, C, H, W]: training images after the preceding treatments
    device: torch.device


class Treatment(Spec):

    name: str
    splits: tuple[Split, ...] | None = Field(default=None, description="the splits it acts on")

    about: ClassVar[str] = ""  # one line for `petri models`
    code: ClassVar[str | None] = None  # a user's treatment: its source's digest (part of its cells' hashes)
    default_splits: ClassVar[tuple[str, ...]] = ("train", "test")
    allowed_splits: ClassVar[tuple[str, ...]] = ("train", "test")
    per_epoch: ClassVar[bool] = False  # fresh randomness each epoch (augmentation)
    on_labels: ClassVar[bool] = False  # changes labels instead of images

    @field_validator("splits", mode="before")
    @classmethod
    def _splits_as_tuple(cls, v):  # a study file writes a list; strict validation takes a tuple
        return tuple(v) if isinstance(v, list) else v

    @field_validator("splits")
    @classmethod
    def _check_splits(cls, v):
        if v is None:
            return v
        if not v or len(set(v)) != len(v):
            raise ValueError(f"splits must be a non-empty list of distinct values from {list(cls.allowed_splits)}")
        bad = [s for s in v if s not in cls.allowed_splits]
        if bad:
            raise ValueError(f"split {bad[0]!r} not allowed for this treatment; allowed: {list(cls.allowed_splits)}")
        return tuple(v)

    @classmethod
    def described(cls, row: tuple[str, str, str, str]) -> tuple[str, str, str, str]:
        """``petri models``' row of a parameter: ``splits`` with this treatment's own default and choices."""
        if row[0] != "splits":
            return row
        default, allowed = " and ".join(cls.default_splits), ", ".join(cls.allowed_splits)
        text = f"the splits it acts on ({allowed} only)" if len(cls.allowed_splits) == 1 else \
            f"the splits it acts on (default: {default}; allowed: {allowed})"
        return ("splits", "list of " + " | ".join(f'"{s}"' for s in cls.allowed_splits), json_text(
            list(cls.default_splits)), text)

    def acts_on(self, split: str) -> bool:
        return split in (self.splits or self.default_splits)

    def check(self, shape: tuple[int, int, int]) -> None:
        """Raise ValueError if the treatment cannot apply to images of this shape."""

    def state(self, key: int, ctx: Context) -> dict[str, torch.Tensor]:
        """Per-member state (stacked over a group by the pipeline); small unless per image."""
        return {}

    def affine(self, st: dict[str, torch.Tensor]) -> tuple[torch.Tensor | float, torch.Tensor | float] | None:
        """(scale, shift) if this treatment is x -> scale * x + shift per pixel (broadcast to [C, H, W]).
        The pipeline folds a leading run of such treatments into the uint8 conversion."""
        return None

    def permutation(self, st: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """``perm [H*W]`` if this treatment is the fixed pixel reordering x[..., i] -> x[..., perm[i]]
        (all channels of a pixel move together). The pipeline composes a leading run of such and affine
        treatments; a model whose first layer is dense may absorb the result into its weights."""
        return None

    def apply(self, x: torch.Tensor, idx: torch.Tensor, st: dict[str, torch.Tensor],
              keys: torch.Tensor, epoch: int) -> torch.Tensor:
        """x [G, B, C, H, W] (owned by the pipeline: may be changed in place) -> treated images."""
        return x

    def apply_labels(self, y: torch.Tensor, idx: torch.Tensor, st: dict[str, torch.Tensor]) -> torch.Tensor:
        return y

    @staticmethod
    def uniform(keys: torch.Tensor, idx: torch.Tensor, epoch: int, draw: int = 0) -> torch.Tensor:
        """Random numbers in [0, 1), float32 [G, B]: one per member and image, a function of the member's
        key, the image's index, the epoch and ``draw`` alone (a second number per image: draw = 1), so
        an image gets the same number in every pack, batch order and run, and two cells with the same
        augment seed see the same draws (pairing holds)."""
        return unit(per_image(keys, idx, epoch, draw))


def member_axes(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """View a per-member tensor [G, ...] so it broadcasts against [G, B, ...] of ``ndim`` dims."""
    return t.reshape(t.shape[0], *([1] * (ndim - t.dim())), *t.shape[1:]) if t.dim() > 1 else \
        t.reshape(t.shape[0], *([1] * (ndim - 1)))
