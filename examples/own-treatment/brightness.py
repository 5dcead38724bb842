"""A treatment of your own: each training image's brightness scaled by a random factor, fresh each
epoch (docs/treatments.md has the contract). A study names it after listing this file as a plugin:

    plugins = ["brightness.py"]
    [variants.brighter]
    treatments = [{ name = "brightness", strength = 0.4 }]
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field

import petri


@petri.register_treatment
class Brightness(petri.Treatment):
    """x -> clip(x · f, 0, 1), f uniform in [1 − strength, 1 + strength] per image and epoch."""

    name: Literal["brightness"] = "brightness"
    strength: float = Field(default=0.2, ge=0.0, le=1.0, description="largest relative change of brightness")

    about: ClassVar[str] = "each image's brightness × a random factor in [1 − strength, 1 + strength], fresh each epoch"
    default_splits: ClassVar[tuple[str, ...]] = ("train",)  # an augmentation: training images only
    per_epoch: ClassVar[bool] = True  # new draws every epoch

    def apply(self, x: torch.Tensor, idx: torch.Tensor, st: dict, keys: torch.Tensor, epoch: int) -> torch.Tensor:
        # x [G, B, C, H, W] float in [0, 1] (the pipeline's buffer: changing it in place is allowed);
        # one draw per member and image, keyed by (member, image index, epoch): the same in any pack.
        u = self.uniform(keys, idx, epoch).to(x.device)  # [G, B] in [0, 1)
        factor = 1.0 + self.strength * (2.0 * u - 1.0)
        return x.mul_(factor[:, :, None, None, None]).clamp_(0.0, 1.0)
