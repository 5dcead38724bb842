"""`layers`: the user's own network, written as a list of layers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SerializeAsAny

from .base import MODELS, LayerModel
from .layers import LayerSpec


@MODELS.register
class Layers(LayerModel):
    name: Literal["layers"] = "layers"
    layers: list[SerializeAsAny[LayerSpec]] = Field(
        min_length=1, description='the network in order, e.g. ["flatten", { name = "dense", units = 64 }, "relu", ...]')
    about = "your own network: a list of layers, in order (model = [ ... ])"

    def layer_specs(self, in_shape, n_classes):
        return list(self.layers)
