"""`conv2d`: per-member 2-D convolution."""

from __future__ import annotations

from typing import Literal, Union

import torch
import torch.nn.functional as F
from pydantic import Field, NonNegativeInt
from torch import nn

from ...specs import PositiveInt
from .base import Layer, LayerSpec, ParamDecl, alone_on_one_thread, needs_image, one_thread_each, register_layer

aten = torch.ops.aten


class Conv2d(Layer):
    """Per-member convolution on [B, K*C, H, W]: on a GPU (or for K = 1) one grouped convolution; on
    CPU one convolution per member (faster than grouped there, and the very kernels a member uses alone)."""

    fresh_output = True

    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, padding: int = 0, bias: bool = True):
        self.c_in, self.c_out, self.k, self.stride, self.padding, self.bias = c_in, c_out, k, stride, padding, bias

    def params(self):
        fan_in, fan_out = self.c_in * self.k * self.k, self.c_out * self.k * self.k
        w = [ParamDecl("weight", (self.c_out, self.c_in, self.k, self.k), fan_in, fan_out, "weight")]
        return w + ([ParamDecl("bias", (self.c_out,), fan_in, fan_out, "bias")] if self.bias else [])

    def _bias(self, k=None):
        if not self.bias:
            return None
        return self.p["bias"].reshape(-1) if k is None else self.p["bias"][k]

    def forward(self, x, train):
        K = self.p["weight"].shape[0]
        if train:
            self.x = x
        if x.is_cuda or K == 1:
            w = self.p["weight"].reshape(K * self.c_out, self.c_in, self.k, self.k)
            return F.conv2d(x, w, self._bias(), stride=self.stride, padding=self.padding, groups=K)
        xs = x.view(x.shape[0], K, self.c_in, *x.shape[2:])  # member k owns channels [k*C, (k+1)*C)
        return torch.cat([F.conv2d(xs[:, k], self.p["weight"][k], self._bias(k), stride=self.stride,
                                   padding=self.padding) for k in range(K)], dim=1)

    def member_forward(self, x, k):
        # The weight in channels-last layout makes oneDNN's output channels last even for a one-channel input
        # (whose layout is ambiguous), so that pooling after it runs vectorised over channels.
        w = self.p["weight"][k].contiguous(memory_format=torch.channels_last)
        y = F.conv2d(x, w, self._bias(k), stride=self.stride, padding=self.padding)
        return y.contiguous(memory_format=torch.channels_last)

    def backward(self, gy):
        K = self.p["weight"].shape[0]
        mask = [self.need_input_grad, True, self.bias]
        conv = dict(stride=[self.stride] * 2, padding=[self.padding] * 2, dilation=[1, 1], transposed=False,
                    output_padding=[0, 0])
        if gy.is_cuda or K == 1:
            w = self.p["weight"].reshape(K * self.c_out, self.c_in, self.k, self.k)
            bias = [K * self.c_out] if self.bias else None

            def grad(output_mask):
                return aten.convolution_backward(gy, self.x, w, bias, groups=K, output_mask=output_mask, **conv)
            if K == 1 and not gy.is_cuda and self.need_input_grad and torch.get_num_threads() > 1:
                # oneDNN splits a weight gradient's reduction across threads: a lone member would round
                # differently from the same member in a pack (one thread per shard). One thread per
                # gradient then, but the input and the weight gradients at the same time.
                (gx, _, _), (_, gw, gb) = one_thread_each(lambda: grad([True, False, False]),
                                                          lambda: grad([False, True, self.bias]))
            else:
                with alone_on_one_thread(K, gy):
                    gx, gw, gb = grad(mask)
            self.g["weight"].copy_(gw.view_as(self.g["weight"]))
            if self.bias:
                self.g["bias"].copy_(gb.view_as(self.g["bias"]))
        else:
            xs = self.x.view(self.x.shape[0], K, self.c_in, *self.x.shape[2:])
            gys = gy.view(gy.shape[0], K, self.c_out, *gy.shape[2:])
            gxs = []
            for k in range(K):
                gx_k, gw_k, gb_k = aten.convolution_backward(
                    gys[:, k].contiguous(), xs[:, k].contiguous(), self.p["weight"][k],
                    [self.c_out] if self.bias else None, groups=1, output_mask=mask, **conv)
                self.g["weight"][k].copy_(gw_k)
                if self.bias:
                    self.g["bias"][k].copy_(gb_k)
                gxs.append(gx_k)
            gx = torch.cat(gxs, dim=1) if self.need_input_grad else None
        self.x = None
        return gx

    def member_state(self, k):
        return {"weight": self.p["weight"][k]} | ({"bias": self.p["bias"][k]} if self.bias else {})


@register_layer
class Conv2dSpec(LayerSpec):
    shown = ("kernel",)
    name: Literal["conv2d"] = "conv2d"
    filters: PositiveInt = Field(description="output channels")
    kernel: PositiveInt = Field(default=3, description="square kernel size")
    stride: PositiveInt = Field(default=1, description="step between windows")
    padding: Union[NonNegativeInt, Literal["same", "valid"]] = Field(
        default=0, description="zero padding on each side; \"same\" keeps H×W (odd kernel, stride 1), \"valid\" = 0")
    bias: bool = Field(default=True, description="add a learned bias per output channel")
    about = "2-D convolution over C×H×W images (zero padding)"
    examples = (({"filters": 3, "kernel": 3}, (2, 6, 6)),
                ({"filters": 4, "kernel": 3, "stride": 2, "padding": 1, "bias": False}, (3, 7, 7)),
                ({"filters": 2, "kernel": 5, "padding": "same"}, (1, 6, 6)))

    def pad(self) -> int:
        if self.padding == "valid":
            return 0
        if self.padding == "same":
            if self.kernel % 2 == 0 or self.stride != 1:
                raise ValueError("padding \"same\" needs an odd kernel and stride 1; give the padding as a number")
            return (self.kernel - 1) // 2
        return self.padding

    def out_shape(self, shape):
        _, h, w = needs_image(shape, "conv2d")
        p = self.pad()
        oh, ow = ((n + 2 * p - self.kernel) // self.stride + 1 for n in (h, w))
        if self.kernel > h + 2 * p or self.kernel > w + 2 * p:
            raise ValueError(f"a {self.kernel}×{self.kernel} kernel does not fit a {h}×{w} map with padding {p}")
        return (self.filters, oh, ow)

    def wants_channels(self, shape):
        return True

    def population(self, shape, layout):
        return Conv2d(shape[0], self.filters, self.kernel, self.stride, self.pad(), self.bias)

    def module(self, shape):
        return nn.Conv2d(shape[0], self.filters, self.kernel, self.stride, self.pad(), bias=self.bias)
