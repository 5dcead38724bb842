"""Normalisation: `batch_norm` (features or images, optional noise) and `layer_norm`."""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field, NonNegativeFloat, PositiveFloat
from torch import nn

from .base import Layer, LayerSpec, ParamDecl, register_layer

aten = torch.ops.aten


class BatchNorm(Layer):
    """BatchNorm with per-member statistics, for dense [K, B, F] or channels [B, K*C, H, W].

    ``noise`` > 0 adds N(0, noise²) after normalisation, during training only
    (the CIFAR study's "noise injected after BN"), from per-member generators.
    """

    fresh_output = True

    def __init__(self, features: int, channels: bool, noise: float = 0.0, momentum: float = 0.1, eps: float = 1e-5):
        self.features, self.channels, self.noise = features, channels, noise
        self.momentum, self.eps = momentum, eps
        self.generators: list[torch.Generator] | None = None
        self.feature_wise = not channels and noise == 0  # noise is drawn per position

    def reorder_inputs(self, k, order):
        f = self.features
        for t in (self.p["weight"][k], self.p["bias"][k], self.running_mean[k * f:(k + 1) * f],
                  self.running_var[k * f:(k + 1) * f]):
            t.index_copy_(0, order, t.clone())

    def params(self):
        f = self.features
        return [ParamDecl("weight", (f,), f, f, "ones"), ParamDecl("bias", (f,), f, f, "zeros")]

    def init_buffers(self, K: int, device) -> None:
        self.running_mean = torch.zeros(K * self.features, device=device)
        self.running_var = torch.ones(K * self.features, device=device)
        self.tracked = torch.zeros(K, dtype=torch.int64, device=device)  # batches seen, as torch's BN counts

    def member_buffers(self, k):
        f = slice(k * self.features, (k + 1) * self.features)
        return {"running_mean": self.running_mean[f], "running_var": self.running_var[f], "tracked": self.tracked[k]}

    def _to_channels(self, x):  # dense [K, B, F] -> [1, K*F, B]: the batch as the spatial axis
        # (not [B, K*F]: ATen reduces a 2-D batch in per-thread parts, so its bits would depend on
        # the thread count; with an image axis each channel is reduced by one thread, in order).
        # Contiguous always: for K = 1 the reshape alone is a strided view, which ATen normalises with
        # its channels-last kernel (other rounding than the K > 1 copy gets).
        return x.transpose(1, 2).reshape(1, -1, x.shape[1]).contiguous() if not self.channels else x

    def _from_channels(self, x, K):
        return x.view(K, self.features, -1).transpose(1, 2).contiguous() if not self.channels else x

    def forward(self, x, train):
        K = self.p["weight"].shape[0]
        xc = self._to_channels(x)
        y, mean, invstd = aten.native_batch_norm(
            xc, self.p["weight"].reshape(-1), self.p["bias"].reshape(-1),
            self.running_mean, self.running_var, train, self.momentum, self.eps)
        if train:
            self.tracked += 1
            self.x, self.mean, self.invstd = xc, mean, invstd
            if self.noise > 0:
                y = y + self.noise * self._noise(y, K)
        return self._from_channels(y, K)

    def member_forward(self, x, k):  # member k's running statistics, scale and shift
        f = slice(k * self.features, (k + 1) * self.features)
        return aten.native_batch_norm(x, self.p["weight"][k], self.p["bias"][k], self.running_mean[f],
                                      self.running_var[f], False, self.momentum, self.eps)[0]

    def _noise(self, y, K):
        if self.channels:  # member k owns channels [k*F, (k+1)*F)
            parts = [torch.randn(y.shape[0], self.features, *y.shape[2:], generator=g, device=y.device)
                     for g in self.generators]
            return torch.cat(parts, dim=1)
        parts = [torch.randn(y.shape[2], self.features, generator=g, device=y.device).T for g in self.generators]
        return torch.cat(parts, dim=0)[None]  # [1, K*F, B], each member's draws as before

    def backward(self, gy):
        K = self.p["weight"].shape[0]
        gx, gw, gb = aten.native_batch_norm_backward(
            self._to_channels(gy), self.x, self.p["weight"].reshape(-1), self.running_mean,
            self.running_var, self.mean, self.invstd, True, self.eps, [self.need_input_grad, True, True])
        self.g["weight"].copy_(gw.view_as(self.g["weight"]))
        self.g["bias"].copy_(gb.view_as(self.g["bias"]))
        self.x = self.mean = self.invstd = None
        return self._from_channels(gx, K) if self.need_input_grad else None

    def member_state(self, k):
        b = self.member_buffers(k)
        return {"weight": self.p["weight"][k], "bias": self.p["bias"][k], "running_mean": b["running_mean"],
                "running_var": b["running_var"], "num_batches_tracked": b["tracked"]}


@register_layer
class BatchNormSpec(LayerSpec):
    name: Literal["batch_norm"] = "batch_norm"
    noise: NonNegativeFloat = Field(default=0.0, description="σ of Gaussian noise added after normalising (training only)")
    momentum: float = Field(default=0.1, gt=0.0, le=1.0, description="weight of each batch in the running statistics")
    eps: PositiveFloat = Field(default=1e-5, description="added to the variance")
    about = "batch normalisation per feature (or per channel of images), running statistics for evaluation"
    examples = (({}, (6,)), ({"noise": 0.1}, (6,)), ({}, (3, 4, 4)), ({"noise": 0.2, "momentum": 0.5}, (2, 5, 5)))

    def wants_channels(self, shape):
        return True

    def population(self, shape, layout):
        return BatchNorm(shape[0], channels=len(shape) == 3, noise=self.noise, momentum=self.momentum, eps=self.eps)

    def module(self, shape):
        cls = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
        return cls(shape[0], eps=self.eps, momentum=self.momentum)


class LayerNorm(Layer):
    """Normalises each member's sample over all its features (F, or C·H·W as torch's
    ``LayerNorm([C, H, W])``), then a per-feature scale and shift. Works in either layout."""

    fresh_output = True

    def __init__(self, shape: tuple[int, ...], eps: float, channels: bool):
        self.shape, self.eps, self.D, self.channels = tuple(shape), eps, math.prod(shape), channels
        self.batch = (0,) if channels else (1,)  # the batch axis of the [.., .., D] view

    def params(self):
        return [ParamDecl("weight", (self.D,), self.D, self.D, "ones"), ParamDecl("bias", (self.D,), self.D, self.D, "zeros")]

    def _affine(self, name):  # [K, D] -> broadcastable against the [K, B, D] or [B, K, D] view
        return self.p[name][None] if self.channels else self.p[name][:, None]

    def forward(self, x, train):
        K = self.p["weight"].shape[0]
        xv = x.reshape(x.shape[0], K, self.D) if self.channels else x.reshape(K, x.shape[1], self.D)
        xhat, mean, rstd = aten.native_layer_norm(xv, [self.D], None, None, self.eps)
        if train:
            self.xv, self.xhat, self.mean, self.rstd, self.in_shape = xv, xhat, mean, rstd, x.shape
        return (xhat * self._affine("weight") + self._affine("bias")).view(x.shape)

    def member_forward(self, x, k):
        xhat = aten.native_layer_norm(x.reshape(x.shape[0], self.D), [self.D], None, None, self.eps)[0]
        return (xhat * self.p["weight"][k] + self.p["bias"][k]).view(x.shape)

    def backward(self, gy):
        gyv = gy.reshape(self.xv.shape)
        w = self._affine("weight")
        torch.sum(gyv * self.xhat, dim=self.batch, out=self.g["weight"])
        torch.sum(gyv, dim=self.batch, out=self.g["bias"])
        gx = None
        if self.need_input_grad:
            gx = aten.native_layer_norm_backward(gyv * w, self.xv, [self.D], self.mean, self.rstd, None, None,
                                                 [True, False, False])[0].view(self.in_shape)
        self.xv = self.xhat = self.mean = self.rstd = None
        return gx

    def member_state(self, k):
        return {"weight": self.p["weight"][k].view(self.shape), "bias": self.p["bias"][k].view(self.shape)}


@register_layer
class LayerNormSpec(LayerSpec):
    name: Literal["layer_norm"] = "layer_norm"
    eps: PositiveFloat = Field(default=1e-5, description="added to the variance")
    about = "layer normalisation over each sample's features (all of C×H×W for images), learned scale and shift"
    examples = (({}, (6,)), ({}, (2, 3, 3)))

    def population(self, shape, layout):
        return LayerNorm(shape, self.eps, channels=layout == "channels")

    def module(self, shape):
        return nn.LayerNorm(list(shape), eps=self.eps)
