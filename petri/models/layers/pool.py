"""Pooling: `max_pool`, `avg_pool` (kernel, stride, padding) and `global_avg_pool`."""

from __future__ import annotations

from typing import Literal, Optional

import torch
import torch.nn.functional as F
from pydantic import Field, NonNegativeInt
from torch import nn

from ...specs import PositiveInt
from .base import Layer, LayerSpec, needs_image, register_layer

aten = torch.ops.aten


class MaxPool2d(Layer):
    """Per channel on [B, K*C, H, W]: members never mix."""

    fresh_output = True

    def __init__(self, k: int, stride: int, padding: int = 0):
        self.k, self.stride, self.padding = k, stride, padding

    def forward(self, x, train):
        if not train:  # no indices to keep
            return F.max_pool2d(x, self.k, self.stride, self.padding)
        y, idx = F.max_pool2d_with_indices(x, self.k, self.stride, self.padding)
        self.x, self.idx = x, idx
        return y

    def backward(self, gy):
        gx = aten.max_pool2d_with_indices_backward(
            gy, self.x, [self.k] * 2, [self.stride] * 2, [self.padding] * 2, [1, 1], False, self.idx)
        self.x = self.idx = None
        return gx


class AvgPool2d(Layer):
    """Per channel on [B, K*C, H, W]; padding counts as zeros in the mean (as torch's default)."""

    fresh_output = True

    def __init__(self, k: int, stride: int, padding: int = 0):
        self.k, self.stride, self.padding = k, stride, padding

    def forward(self, x, train):
        if train:
            self.x = x
        return F.avg_pool2d(x, self.k, self.stride, self.padding)

    def backward(self, gy):
        gx = aten.avg_pool2d_backward(gy, self.x, [self.k] * 2, [self.stride] * 2, [self.padding] * 2,
                                      False, True, None)
        self.x = None
        return gx


class _PoolSpec(LayerSpec):
    shown = ("kernel",)
    kernel: PositiveInt = Field(default=2, description="square window size")
    stride: Optional[PositiveInt] = Field(default=None, description="step between windows (default: the kernel)")
    padding: NonNegativeInt = Field(default=0, description="padding on each side (at most half the kernel)")
    examples = (({}, (2, 6, 6)), ({"kernel": 3, "stride": 2, "padding": 1}, (2, 7, 7)))

    def step(self) -> int:
        return self.stride or self.kernel

    def out_shape(self, shape):
        c, h, w = needs_image(shape, self.name)
        if 2 * self.padding > self.kernel:
            raise ValueError(f"padding {self.padding} exceeds half the kernel ({self.kernel})")
        if self.kernel > h + 2 * self.padding or self.kernel > w + 2 * self.padding:
            raise ValueError(f"a {self.kernel}×{self.kernel} window does not fit a {h}×{w} map")
        return (c, *((n + 2 * self.padding - self.kernel) // self.step() + 1 for n in (h, w)))

    def wants_channels(self, shape):
        return True


@register_layer
class MaxPool(_PoolSpec):
    name: Literal["max_pool"] = "max_pool"
    about = "maximum over each kernel×kernel window, per channel"

    def population(self, shape, layout):
        return MaxPool2d(self.kernel, self.step(), self.padding)

    def module(self, shape):
        return nn.MaxPool2d(self.kernel, self.step(), self.padding)


@register_layer
class AvgPool(_PoolSpec):
    name: Literal["avg_pool"] = "avg_pool"
    about = "mean over each kernel×kernel window, per channel"

    def population(self, shape, layout):
        return AvgPool2d(self.kernel, self.step(), self.padding)

    def module(self, shape):
        return nn.AvgPool2d(self.kernel, self.step(), self.padding)


class GlobalAvgPool2d(Layer):
    """[B, K*C, H, W] -> [K, B, C]: the mean of each channel's map."""

    fresh_output = True

    def forward(self, x, train):
        self.shape = x.shape
        B = x.shape[0]
        return x.mean(dim=(2, 3)).view(B, self.K, -1).transpose(0, 1).contiguous()

    def member_forward(self, x, k):  # [B, C, H, W] -> [B, C]
        return x.mean(dim=(2, 3))

    def backward(self, gy):
        B, KC, H, W = self.shape
        g = gy.transpose(0, 1).reshape(B, KC, 1, 1) * (1.0 / (H * W))
        return g.expand(B, KC, H, W).contiguous()


@register_layer
class GlobalAvgPool(LayerSpec):
    name: Literal["global_avg_pool"] = "global_avg_pool"
    about = "C×H×W -> C features: the mean of each channel"
    examples = (({}, (3, 4, 5)),)

    def out_shape(self, shape):
        return (needs_image(shape, "global_avg_pool")[0],)

    def wants_channels(self, shape):
        return True

    def population(self, shape, layout):
        return GlobalAvgPool2d()

    def module(self, shape):
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
