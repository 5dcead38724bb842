"""`dense` (fully connected) and `flatten`."""

from __future__ import annotations

import math
from typing import Literal, Union

import torch
from pydantic import Field
from torch import nn

from ...specs import PositiveInt
from .base import Layer, LayerSpec, ParamDecl, alone_on_one_thread, needs_features, register_layer

# Layers with fewer outputs than this (a classifier's last layer) compute their products transposed:
# batched GEMMs with an output this narrow run 2-4x faster as W^T x^T than as x W (MKL, K = 32),
# and no slower for K = 1. A rule on the layer's shape alone, so a member's numbers never depend on K.
NARROW = 16


class Linear(Layer):
    """y = x W + b per member; W [K, in, out], b [K, 1, out]; x [K, B, in]."""

    fresh_output = True

    def __init__(self, n_in: int, n_out: int, bias: bool = True):
        self.n_in, self.n_out, self.bias = n_in, n_out, bias

    def params(self):
        w = [ParamDecl("weight", (self.n_in, self.n_out), self.n_in, self.n_out, "weight")]
        return w + ([ParamDecl("bias", (1, self.n_out), self.n_in, self.n_out, "bias")] if self.bias else [])

    def forward(self, x, train):  # x [K, B, in]
        if train:
            self.x = x
        w = self.p["weight"]
        if self.n_out < NARROW:  # y^T = W^T x^T + b^T: the same product, 2-4x faster in batched GEMM here
            with alone_on_one_thread(x.shape[0], x):
                y = torch.baddbmm(self.p["bias"].mT, w.mT, x.mT) if self.bias else torch.bmm(w.mT, x.mT)
                return y.mT.contiguous()
        return torch.baddbmm(self.p["bias"], x, w) if self.bias else torch.bmm(x, w)

    def backward(self, gy):  # gy [K, B, out]
        if self.n_out < NARROW:  # (gy^T x)^T, for the same reason
            with alone_on_one_thread(gy.shape[0], gy):
                self.g["weight"].copy_(torch.bmm(gy.mT, self.x).mT)
        else:
            torch.bmm(self.x.mT, gy, out=self.g["weight"])
        if self.bias:
            torch.sum(gy, dim=1, keepdim=True, out=self.g["bias"])
        gx = torch.bmm(gy, self.p["weight"].transpose(1, 2)) if self.need_input_grad else None
        self.x = None
        return gx

    def reorder_inputs(self, k, order):  # x[order] W == x W' with W'[order] = W
        w = self.p["weight"][k]
        w.index_copy_(0, order, w.clone())

    def member_state(self, k):
        out = {"weight": self.p["weight"][k].T}
        return out | ({"bias": self.p["bias"][k, 0]} if self.bias else {})


@register_layer
class Dense(LayerSpec):
    name: Literal["dense"] = "dense"
    units: Union[PositiveInt, Literal["classes"]] = Field(
        description="output features; \"classes\": as many as the data set has classes")
    bias: bool = Field(default=True, description="add a learned bias")
    about = "fully connected: y = x W + b (needs features: flatten images first)"
    examples = (({"units": 5}, (7,)), ({"units": 20, "bias": False}, (7,)))

    def width(self) -> int:
        if self.units == "classes":
            raise ValueError('units = "classes" is resolved by the network')  # never reached after resolve
        return self.units

    def out_shape(self, shape):
        needs_features(shape, "dense")
        return (self.width(),)

    def population(self, shape, layout):
        return Linear(shape[0], self.width(), self.bias)

    def module(self, shape):
        return nn.Linear(shape[0], self.width(), bias=self.bias)


class Flatten(Layer):
    """member [K, B, *shape] or channels [B, K*C, H, W] -> [K, B, features]."""

    def __init__(self, channels: bool):
        self.channels = channels
        self.feature_wise = not channels  # (its output may be a view of its input: never fresh)

    def reorder_inputs(self, k, order):
        pass

    def forward(self, x, train):
        self.shape = x.shape
        if self.channels:  # [B, K*C, H, W] -> [K, B, C*H*W]
            return x.reshape(x.shape[0], self.K, -1).transpose(0, 1).contiguous()
        return x.reshape(x.shape[0], x.shape[1], -1)

    def member_forward(self, x, k):  # [B, C, H, W] -> [B, C*H*W] (channel-major, whatever the memory layout)
        return x.reshape(x.shape[0], -1)

    def backward(self, gy):
        if self.channels:
            return gy.transpose(0, 1).reshape(self.shape)
        return gy.reshape(self.shape)


@register_layer
class FlattenSpec(LayerSpec):
    name: Literal["flatten"] = "flatten"
    about = "images C×H×W -> C·H·W features (channel-major, as torch.flatten)"
    examples = (({}, (2, 3, 4)),)

    def out_shape(self, shape):
        return (math.prod(shape),)

    def population(self, shape, layout):
        return Flatten(channels=layout == "channels")

    def module(self, shape):
        return nn.Flatten()
