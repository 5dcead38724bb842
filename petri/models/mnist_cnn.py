"""`mnist_cnn`: the Keras mnist_cnn example network (1,199,882 parameters on MNIST)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from .layers import Conv2d, Dropout, Flatten, Layer, Linear, MaxPool2d, ReLU, ToImage


class MnistCNN(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Literal["mnist_cnn"] = "mnist_cnn"
    init: Literal["torch", "glorot"] = "torch"

    def layers(self, in_shape: tuple[int, int, int], n_classes: int) -> list[Layer]:
        c, h, w = in_shape
        flat = 64 * ((h - 4) // 2) * ((w - 4) // 2)
        return [
            ToImage(),
            Conv2d(c, 32, 3), ReLU(),
            Conv2d(32, 64, 3), ReLU(),
            MaxPool2d(2), Dropout(0.25, image_layout=True),
            Flatten(image_layout=True),
            Linear(flat, 128), ReLU(), Dropout(0.5, image_layout=False),
            Linear(128, n_classes),
        ]
