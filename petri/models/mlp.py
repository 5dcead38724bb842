"""`mlp`: a fully connected network, as a preset that expands into a layer list."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..specs import PositiveInt
from .base import MODELS, LayerModel
from .layers import LAYERS

ACTIVATIONS = Literal["relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid", "silu"]


@MODELS.register
class MLP(LayerModel):
    name: Literal["mlp"] = "mlp"
    hidden: list[PositiveInt] = Field(default=[64], description="hidden layer widths, e.g. [64] or [50, 50]")
    activation: ACTIVATIONS = Field(default="relu", description="non-linearity after each hidden layer")
    bn: bool = Field(default=False, description="BatchNorm after each hidden dense layer (before the non-linearity)")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="dropout after each hidden non-linearity")
    input_bn: bool = Field(default=False, description="BatchNorm on the flattened input")
    about = "flatten, [input BN], then per hidden width: dense, [BN], activation, [dropout]; dense to the classes"

    def layer_specs(self, in_shape, n_classes):
        out = ["flatten"] + (["batch_norm"] if self.input_bn else [])
        for width in self.hidden:
            out += [{"name": "dense", "units": width}] + (["batch_norm"] if self.bn else []) + [self.activation]
            if self.dropout:
                out.append({"name": "dropout", "p": self.dropout})
        out.append({"name": "dense", "units": "classes"})
        return [LAYERS.parse(s, "mlp") for s in out]
