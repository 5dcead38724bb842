"""`residual`: y = body(x) + shortcut(x), the body a layer list of its own.

The shortcut is the identity when the body keeps the shape, else a projection: a 1×1 convolution
with the body's stride and BatchNorm for images (as ResNet's option B), a bias-free dense layer for
features.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, SerializeAsAny
from torch import nn

from .base import Layer, LayerSpec, Shape, register_layer


class Residual(Layer):
    fresh_output = True

    def __init__(self, body: list[Layer], shortcut: list[Layer]):
        self.body, self.shortcut = body, shortcut

    def children(self):
        return [*self.body, *self.shortcut]

    def _sum(self, x, apply):
        """body(x) + shortcut(x), each layer applied as ``apply(layer, input)``."""
        s = x
        for layer in self.shortcut:
            s = apply(layer, s)
        y = x
        for layer in self.body:
            y = apply(layer, y)
        return y + s

    def forward(self, x, train):
        return self._sum(x, lambda layer, h: layer.forward(h, train))

    def member_forward(self, x, k):
        return self._sum(x, lambda layer, h: layer.member_forward(h, k))

    def backward(self, gy):
        g = gy
        for layer in reversed(self.body):
            g = layer.backward(g)
        gs = gy
        for layer in reversed(self.shortcut):
            gs = layer.backward(gs)
        return g + gs if self.need_input_grad else None

    def member_state(self, k):
        from ..compile import member_state

        return member_state(self.body, k, "body.") | member_state(self.shortcut, k, "shortcut.")


class ResidualModule(nn.Module):
    """The plain-PyTorch form: ``body(x) + shortcut(x)``."""

    def __init__(self, body: nn.Sequential, shortcut: nn.Module):
        super().__init__()
        self.body, self.shortcut = body, shortcut

    def forward(self, x):
        return self.body(x) + self.shortcut(x)


@register_layer
class ResidualSpec(LayerSpec):
    name: Literal["residual"] = "residual"
    layers: list[SerializeAsAny[LayerSpec]] = Field(description="the block's body, a layer list")
    shortcut: Literal["auto", "identity", "projection"] = Field(
        default="auto", description="identity, projection (1×1 conv + BN, or dense), or auto: identity if the shape is kept")
    nested: ClassVar[tuple[str, ...]] = ("layers",)
    about = "body(x) + shortcut(x): a ResNet block around its own layer list"
    examples = (({"layers": [{"name": "conv2d", "filters": 3, "padding": 1}, {"name": "batch_norm"}, "relu",
                             {"name": "conv2d", "filters": 3, "padding": 1}]}, (3, 5, 5)),
                ({"layers": [{"name": "conv2d", "filters": 4, "stride": 2, "padding": 1}, "relu"]}, (2, 6, 6)),
                ({"layers": [{"name": "dense", "units": 6}, "tanh"]}, (6,)),
                ({"layers": [{"name": "dense", "units": 4}], "shortcut": "projection"}, (6,)))

    def _body(self, shape: Shape) -> list[tuple[Any, Shape]]:
        from ..compile import shapes

        return shapes(self.layers, shape)

    def out_shape(self, shape):
        out = self._body(shape)[-1][1]
        if len(out) != len(shape):
            raise ValueError(f"the body turns {_fmt(shape)} into {_fmt(out)}; a residual body must keep images "
                             "images and features features")
        if self.shortcut == "identity" and out != shape:
            raise ValueError(f"an identity shortcut needs the body to keep the shape {_fmt(shape)}, it gives "
                             f"{_fmt(out)}; use shortcut = \"projection\"")
        if len(shape) == 3 and self._stride(shape, out) is None:
            raise ValueError(f"no 1×1 projection maps {_fmt(shape)} onto {_fmt(out)}")
        return out

    @staticmethod
    def _stride(shape, out) -> int | None:
        s = -(-shape[1] // out[1])  # ceil: a stride-s 1×1 convolution gives ceil(H / s) rows
        return s if all(-(-a // s) == b for a, b in zip(shape[1:], out[1:])) else None

    def projects(self, shape) -> bool:
        return self.shortcut == "projection" or (self.shortcut == "auto" and self.out_shape(shape) != shape)

    def projection(self, shape) -> list[LayerSpec]:
        from .conv import Conv2dSpec
        from .dense import Dense
        from .norm import BatchNormSpec

        out = self.out_shape(shape)
        if len(shape) == 1:
            return [Dense(units=out[0], bias=False)]
        return [Conv2dSpec(filters=out[0], kernel=1, stride=self._stride(shape, out), bias=False), BatchNormSpec()]

    def wants_channels(self, shape):
        return len(shape) == 3

    def population(self, shape, layout):
        from ..compile import compile_layers

        body = compile_layers(self.layers, shape, layout)
        shortcut = compile_layers(self.projection(shape), shape, layout) if self.projects(shape) else []
        return Residual(body, shortcut)

    def module(self, shape):
        from ..compile import modules

        short = modules(self.projection(shape), shape) if self.projects(shape) else nn.Identity()
        return ResidualModule(modules(self.layers, shape), short)

    def label(self):
        return f"residual ({len(self.layers)} layers{', projection' if self.shortcut == 'projection' else ''})"


def _fmt(shape) -> str:
    return "×".join(map(str, shape))

