"""`mnist_cnn`: the Keras mnist_cnn example network (1,199,882 parameters on MNIST), as a preset."""

from __future__ import annotations

from typing import Literal

from .base import MODELS, LayerModel
from .layers import LAYERS

LAYER_LIST = [
    {"name": "conv2d", "filters": 32, "kernel": 3}, "relu",
    {"name": "conv2d", "filters": 64, "kernel": 3}, "relu",
    {"name": "max_pool", "kernel": 2}, {"name": "dropout", "p": 0.25},
    "flatten", {"name": "dense", "units": 128}, "relu", {"name": "dropout", "p": 0.5},
    {"name": "dense", "units": "classes"},
]


@MODELS.register
class MnistCNN(LayerModel):
    name: Literal["mnist_cnn"] = "mnist_cnn"
    about = "Keras' mnist_cnn: conv32, conv64 (3×3), max pool, dropout .25, dense 128, dropout .5, dense to the classes"

    def layer_specs(self, in_shape, n_classes):
        return [LAYERS.parse(s, "mnist_cnn") for s in LAYER_LIST]
