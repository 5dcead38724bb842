"""Activations, elementwise in any layout: relu, leaky_relu, elu, gelu, tanh, sigmoid, silu.

Those whose gradient follows from their output (relu, tanh, sigmoid) keep the output and, when the
layer before returns a tensor nobody else keeps, work in place; the others keep their input.
"""

from __future__ import annotations

from typing import Callable, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveFloat
from torch import nn

from .base import Layer, LayerSpec, register_layer

aten = torch.ops.aten


class Activation(Layer):
    """``fn(x, inplace)`` computes; ``grad(gy, saved)`` is the input gradient from what was kept
    (the output if ``keeps_output``, else the input)."""

    feature_wise = True

    def __init__(self, fn: Callable, grad: Callable, keeps_output: bool):
        self.fn, self.grad, self.keeps_output = fn, grad, keeps_output

    def reorder_inputs(self, k, order):
        pass

    def forward(self, x, train):
        y = self.fn(x, self.overwrite_input and self.keeps_output)
        if train:
            self.saved = y if self.keeps_output else x
        return y

    def backward(self, gy):
        gx = self.grad(gy, self.saved)
        self.saved = None
        return gx


class _ActivationSpec(LayerSpec):
    keeps_output: ClassVar[bool] = False
    examples = (({}, (5,)), ({}, (2, 3, 3)))

    def fn(self, x: torch.Tensor, inplace: bool) -> torch.Tensor:
        raise NotImplementedError

    def grad(self, gy: torch.Tensor, saved: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def population(self, shape, layout):
        return Activation(self.fn, self.grad, self.keeps_output)


@register_layer
class ReLU(_ActivationSpec):
    name: Literal["relu"] = "relu"
    about = "max(0, x)"
    keeps_output = True

    def fn(self, x, inplace):
        return torch.relu_(x) if inplace else torch.relu(x)

    def grad(self, gy, y):
        return aten.threshold_backward(gy, y, 0)

    def module(self, shape):
        return nn.ReLU()


@register_layer
class LeakyReLU(_ActivationSpec):
    name: Literal["leaky_relu"] = "leaky_relu"
    negative_slope: float = Field(default=0.01, description="slope for x < 0")
    about = "x for x ≥ 0, negative_slope·x below"

    def fn(self, x, inplace):
        return F.leaky_relu(x, self.negative_slope)

    def grad(self, gy, x):
        return aten.leaky_relu_backward(gy, x, self.negative_slope, False)

    def module(self, shape):
        return nn.LeakyReLU(self.negative_slope)


@register_layer
class ELU(_ActivationSpec):
    name: Literal["elu"] = "elu"
    alpha: PositiveFloat = Field(default=1.0, description="α·(eˣ − 1) for x < 0")
    about = "x for x > 0, α(eˣ − 1) below"

    def fn(self, x, inplace):
        return F.elu(x, self.alpha)

    def grad(self, gy, x):
        return aten.elu_backward(gy, self.alpha, 1, 1, False, x)

    def module(self, shape):
        return nn.ELU(self.alpha)


@register_layer
class GELU(_ActivationSpec):
    name: Literal["gelu"] = "gelu"
    approximate: Literal["none", "tanh"] = Field(default="none", description="\"tanh\": the tanh approximation")
    about = "x·Φ(x) (Gaussian error linear unit)"

    def fn(self, x, inplace):
        return F.gelu(x, approximate=self.approximate)

    def grad(self, gy, x):
        return aten.gelu_backward(gy, x, approximate=self.approximate)

    def module(self, shape):
        return nn.GELU(self.approximate)


@register_layer
class Tanh(_ActivationSpec):
    name: Literal["tanh"] = "tanh"
    about = "hyperbolic tangent"
    keeps_output = True

    def fn(self, x, inplace):
        return torch.tanh_(x) if inplace else torch.tanh(x)

    def grad(self, gy, y):
        return aten.tanh_backward(gy, y)

    def module(self, shape):
        return nn.Tanh()


@register_layer
class Sigmoid(_ActivationSpec):
    name: Literal["sigmoid"] = "sigmoid"
    about = "1 / (1 + e⁻ˣ)"
    keeps_output = True

    def fn(self, x, inplace):
        return torch.sigmoid_(x) if inplace else torch.sigmoid(x)

    def grad(self, gy, y):
        return aten.sigmoid_backward(gy, y)

    def module(self, shape):
        return nn.Sigmoid()


@register_layer
class SiLU(_ActivationSpec):
    name: Literal["silu"] = "silu"
    about = "x·sigmoid(x) (swish)"

    def fn(self, x, inplace):
        return F.silu(x)

    def grad(self, gy, x):
        return aten.silu_backward(gy, x)

    def module(self, shape):
        return nn.SiLU()
