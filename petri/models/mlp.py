"""`mlp`: fully connected ReLU network, optional BatchNorm on the flattened input."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from .layers import BatchNorm, Flatten, Layer, Linear, ReLU


class MLP(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Literal["mlp"] = "mlp"
    hidden: list[PositiveInt] = Field(default=[64], description="hidden layer widths, e.g. [64] or [50, 50]")
    input_bn: bool = Field(default=False, description="BatchNorm on the flattened input")
    init: Literal["torch", "glorot"] = "torch"

    def layers(self, in_shape: tuple[int, int, int], n_classes: int) -> list[Layer]:
        n = math.prod(in_shape)
        out: list[Layer] = [Flatten(image_layout=False)]
        if self.input_bn:
            out.append(BatchNorm(n, image_layout=False))
        for width in self.hidden:
            out += [Linear(n, width), ReLU()]
            n = width
        return out + [Linear(n, n_classes)]
