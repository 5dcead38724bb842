"""`vgg`: a VGG-like CNN from a config list, as a preset that expands into a layer list."""

from __future__ import annotations

from typing import Literal, Union

from pydantic import Field, NonNegativeFloat, field_validator

from ..specs import PositiveInt
from .base import MODELS, LayerModel
from .layers import LAYERS
from .mlp import ACTIVATIONS


@MODELS.register
class VGG(LayerModel):
    name: Literal["vgg"] = "vgg"
    cfg: list[Union[PositiveInt, Literal["M"]]] = Field(
        default=[64, 64, "M", 128, 128, "M", 256, 256, "M"],
        description="conv widths (3×3, padding 1) and \"M\" for 2×2 pooling")
    fc: list[PositiveInt] = Field(default=[512], description="hidden fully connected widths")
    bn: bool = Field(default=True, description="BatchNorm before each non-linearity (never in the last layer)")
    bn_noise: NonNegativeFloat = Field(default=0.0, description="σ of Gaussian noise added after BN (training only)")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="dropout before each hidden FC layer")
    activation: ACTIVATIONS = Field(default="relu", description="the non-linearity")
    pool: Literal["max", "avg"] = Field(default="max", description="what \"M\" pools with")
    about = "VGG-like: per cfg entry a 3×3 conv, [BN], activation, or a 2×2 pool; then dense layers"

    @field_validator("cfg")
    @classmethod
    def _has_conv(cls, v):
        if not any(isinstance(c, int) for c in v):
            raise ValueError("cfg needs at least one convolution width")
        return v

    def layer_specs(self, in_shape, n_classes):
        bn = [{"name": "batch_norm", "noise": self.bn_noise}] if self.bn else []
        out: list = []
        for item in self.cfg:
            if item == "M":
                out.append({"name": f"{self.pool}_pool", "kernel": 2})
            else:
                out += [{"name": "conv2d", "filters": item, "kernel": 3, "padding": 1}, *bn, self.activation]
        out.append("flatten")
        for width in self.fc:
            if self.dropout:
                out.append({"name": "dropout", "p": self.dropout})
            out += [{"name": "dense", "units": width}, *bn, self.activation]
        out.append({"name": "dense", "units": "classes"})
        return [LAYERS.parse(s, "vgg") for s in out]
