"""`dropout`: inverted dropout of single values, or of whole channels (``spatial``)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from .base import Layer, LayerSpec, needs_image, register_layer


class Dropout(Layer):
    """An independent mask per member, from per-member generators (set by the network): a member's
    masks are the same whether it trains alone or in a pack. ``spatial`` drops whole channels."""

    def __init__(self, p: float, channels: bool, spatial: bool = False):
        self.p_drop, self.channels, self.spatial = p, channels, spatial
        self.generators: list[torch.Generator] | None = None

    def _mask_shape(self, x) -> tuple[int, ...]:
        """One member's draw: [B, C, H, W] (channels layout) or [B, *shape] (member layout)."""
        if self.channels:
            shape = (x.shape[0], x.shape[1] // len(self.generators), *x.shape[2:])
        else:
            shape = tuple(x.shape[1:])
        return (*shape[:2], *([1] * (len(shape) - 2))) if self.spatial else shape

    def forward(self, x, train):
        if not train or self.p_drop == 0:
            return x
        keep = 1.0 - self.p_drop
        shape = self._mask_shape(x)
        draws = [torch.rand(shape, generator=g, device=x.device) for g in self.generators]
        u = torch.cat(draws, dim=1) if self.channels else torch.stack(draws)  # member k owns a channel block
        self.mask = (u < keep).to(x.dtype).mul_(1.0 / keep)
        return x * self.mask

    def backward(self, gy):
        if self.p_drop == 0:
            return gy
        gx = gy * self.mask
        self.mask = None
        return gx


@register_layer
class DropoutSpec(LayerSpec):
    shown = ("p",)
    name: Literal["dropout"] = "dropout"
    p: float = Field(default=0.5, ge=0.0, lt=1.0, description="probability of zeroing a value during training")
    spatial: bool = Field(default=False, description="drop whole channels of images (as Dropout2d)")
    about = "zero each value (or each channel, spatial) with probability p during training, scale the rest by 1/(1-p)"
    examples = (({"p": 0.3}, (8,)), ({"p": 0.5}, (2, 4, 4)), ({"p": 0.5, "spatial": True}, (4, 3, 3)))

    def out_shape(self, shape):
        if self.spatial:
            needs_image(shape, "spatial dropout")
        return shape

    def population(self, shape, layout):
        return Dropout(self.p, channels=layout == "channels", spatial=self.spatial)

    def module(self, shape):
        return nn.Dropout2d(self.p) if self.spatial else nn.Dropout(self.p)
