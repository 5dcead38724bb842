"""`vgg`: VGG-like CNN from a config list, BatchNorm before each non-linearity on/off."""

from __future__ import annotations

from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveInt, field_validator

from .layers import BatchNorm, Conv2d, Dropout, Flatten, Layer, Linear, MaxPool2d, ReLU, ToImage


class VGG(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Literal["vgg"] = "vgg"
    cfg: list[Union[PositiveInt, Literal["M"]]] = Field(
        default=[64, 64, "M", 128, 128, "M", 256, 256, "M"],
        description="conv widths (3×3, padding 1) and 'M' for 2×2 max-pooling")
    fc: list[PositiveInt] = Field(default=[512], description="hidden fully connected widths")
    bn: bool = Field(default=True, description="BatchNorm before each non-linearity (never in the last layer)")
    bn_noise: NonNegativeFloat = Field(default=0.0, description="σ of Gaussian noise added after BN (training only)")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="dropout before each hidden FC layer")
    init: Literal["torch", "glorot"] = "torch"

    @field_validator("cfg")
    @classmethod
    def _has_conv(cls, v):
        if not any(isinstance(c, int) for c in v):
            raise ValueError("cfg needs at least one convolution width")
        return v

    def layers(self, in_shape: tuple[int, int, int], n_classes: int) -> list[Layer]:
        c, h, w = in_shape
        out: list[Layer] = [ToImage()]
        for item in self.cfg:
            if item == "M":
                out.append(MaxPool2d(2))
                h, w = h // 2, w // 2
                continue
            out.append(Conv2d(c, item, 3, padding=1))
            if self.bn:
                out.append(BatchNorm(item, image_layout=True, noise=self.bn_noise))
            out.append(ReLU())
            c = item
        out.append(Flatten(image_layout=True))
        n = c * h * w
        for width in self.fc:
            if self.dropout:
                out.append(Dropout(self.dropout, image_layout=False))
            out.append(Linear(n, width))
            if self.bn:
                out.append(BatchNorm(width, image_layout=False, noise=self.bn_noise))
            out.append(ReLU())
            n = width
        return out + [Linear(n, n_classes)]
