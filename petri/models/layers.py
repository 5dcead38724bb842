"""Population layers: K independent members evaluated together, with explicit backward.

Every layer works on a whole population at once. Two activation layouts:

* dense ``[K, B, F]`` (members leading), used by Linear; batched with ``bmm``;
* image ``[B, K*C, H, W]`` (members as channel groups), used by Conv2d,
  BatchNorm2d and pooling; a grouped convolution with ``groups=K`` keeps the
  members apart, and BatchNorm over K*C channels keeps per-member statistics.

Parameters are views into one member-major buffer ``theta [K, P]`` (and
gradients into ``grad [K, P]``), so the optimiser is a handful of ops on two
tensors, and a member's weights are one row. Backward is written out (with
ATen's own backward kernels for conv, BN and pooling) instead of autograd:
for small networks the autograd bookkeeping costs more than the arithmetic.
The tests check every layer's gradients against autograd.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

aten = torch.ops.aten


@dataclass(frozen=True)
class ParamDecl:
    """A parameter of one member: name, shape, and how to initialise it."""

    name: str
    shape: tuple[int, ...]
    fan_in: int
    fan_out: int
    kind: str  # "weight", "bias", "ones" or "zeros"


class Layer:
    """Base: no parameters, identity shape. Subclasses override what they need."""

    need_input_grad = True  # set False on layers before and at the first parameter layer
    feature_wise = False  # treats each dense input feature alone: a reordering of the features passes through

    def params(self) -> list[ParamDecl]:
        return []

    def n_params(self) -> int:
        """Parameters per member."""
        return sum(math.prod(d.shape) for d in self.params())

    def bind(self, views: dict[str, torch.Tensor], grads: dict[str, torch.Tensor]) -> None:
        """Receive the [K, ...] parameter and gradient views of this layer."""
        self.p, self.g = views, grads

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return in_shape

    def forward(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        raise NotImplementedError

    def backward(self, gy: torch.Tensor) -> torch.Tensor | None:
        raise NotImplementedError

    def describe(self) -> str:
        return type(self).__name__

    def reorder_inputs(self, k: int, order: torch.Tensor) -> None:
        """Reindex member k's per-feature parameters so that, given x, it computes what it computed
        on x[..., order] (only for feature-wise layers and Linear)."""
        raise NotImplementedError


class ToImage(Layer):
    """[K, B, C, H, W] -> [B, K*C, H, W] (entry into the convolutional layout)."""

    def forward(self, x, train):
        self.K, self.B = x.shape[:2]
        return x.transpose(0, 1).reshape(self.B, -1, *x.shape[3:])

    def backward(self, gy):
        return gy.reshape(self.B, self.K, -1, *gy.shape[2:]).transpose(0, 1)


class Flatten(Layer):
    """[K, B, C, H, W] or image layout [B, K*C, H, W] -> dense [K, B, C*H*W]."""

    def __init__(self, image_layout: bool):
        self.image_layout = image_layout
        self.feature_wise = not image_layout

    def out_shape(self, in_shape):
        return (math.prod(in_shape),)

    def reorder_inputs(self, k, order):
        pass

    def forward(self, x, train):
        self.shape = x.shape
        if self.image_layout:  # [B, K*C, H, W] -> [K, B, C*H*W]
            B = x.shape[0]
            return x.reshape(B, self.K, -1).transpose(0, 1).contiguous()
        return x.reshape(x.shape[0], x.shape[1], -1)

    def backward(self, gy):
        if self.image_layout:
            return gy.transpose(0, 1).reshape(self.shape)
        return gy.reshape(self.shape)


# Layers with fewer outputs than this (a classifier's last layer) compute their products transposed:
# batched GEMMs with an output this narrow run 2-4x faster as W^T x^T than as x W (MKL, K = 32),
# and no slower for K = 1. A rule on the layer's shape alone, so a member's numbers never depend on K.
NARROW = 16


@contextmanager
def _one_gemm_thread(x: torch.Tensor):
    """For K = 1 on CPU, run the GEMM on one thread. A batched GEMM runs each member's product on
    one thread; MKL threads a lone transposed product differently, which changes its last bits."""
    if x.shape[0] != 1 or x.is_cuda:
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


class Linear(Layer):
    """y = x W + b per member; W [K, in, out], b [K, 1, out]."""

    def __init__(self, n_in: int, n_out: int):
        self.n_in, self.n_out = n_in, n_out

    def params(self):
        return [ParamDecl("weight", (self.n_in, self.n_out), self.n_in, self.n_out, "weight"),
                ParamDecl("bias", (1, self.n_out), self.n_in, self.n_out, "bias")]

    def out_shape(self, in_shape):
        return (self.n_out,)

    def forward(self, x, train):  # x [K, B, in]
        if train:
            self.x = x
        w, b = self.p["weight"], self.p["bias"]
        if self.n_out < NARROW:  # y^T = W^T x^T + b^T: the same product, 2-4x faster in batched GEMM here
            with _one_gemm_thread(x):
                return torch.baddbmm(b.mT, w.mT, x.mT).mT.contiguous()
        return torch.baddbmm(b, x, w)

    def backward(self, gy):  # gy [K, B, out]
        if self.n_out < NARROW:  # (gy^T x)^T, for the same reason
            with _one_gemm_thread(gy):
                self.g["weight"].copy_(torch.bmm(gy.mT, self.x).mT)
        else:
            torch.bmm(self.x.mT, gy, out=self.g["weight"])
        torch.sum(gy, dim=1, keepdim=True, out=self.g["bias"])
        gx = torch.bmm(gy, self.p["weight"].transpose(1, 2)) if self.need_input_grad else None
        self.x = None
        return gx

    def reorder_inputs(self, k, order):  # x[order] W == x W' with W'[order] = W
        w = self.p["weight"][k]
        w.index_copy_(0, order, w.clone())

    def describe(self):
        return f"Linear({self.n_in}→{self.n_out})"


class ReLU(Layer):
    """In place: no layer keeps its own output for backward, only its input."""

    def forward(self, x, train):
        y = torch.relu_(x)
        if train:
            self.y = y
        return y

    def backward(self, gy):
        gx = aten.threshold_backward(gy, self.y, 0)
        self.y = None
        return gx


class Conv2d(Layer):
    """Per-member convolution as one grouped convolution over [B, K*C, H, W]."""

    def __init__(self, c_in: int, c_out: int, k: int, padding: int = 0):
        self.c_in, self.c_out, self.k, self.padding = c_in, c_out, k, padding

    def params(self):
        fan_in, fan_out = self.c_in * self.k * self.k, self.c_out * self.k * self.k
        return [ParamDecl("weight", (self.c_out, self.c_in, self.k, self.k), fan_in, fan_out, "weight"),
                ParamDecl("bias", (self.c_out,), fan_in, fan_out, "bias")]

    def out_shape(self, in_shape):
        _, h, w = in_shape
        s = 2 * self.padding - self.k + 1
        return (self.c_out, h + s, w + s)

    def _weight(self):
        K = self.p["weight"].shape[0]
        return self.p["weight"].reshape(K * self.c_out, self.c_in, self.k, self.k), K

    def forward(self, x, train):
        w, K = self._weight()
        if train:
            self.x = x
        if x.is_cuda or K == 1:  # one grouped convolution
            return F.conv2d(x, w, self.p["bias"].reshape(-1), padding=self.padding, groups=K)
        # On CPU a grouped convolution is slower than K separate ones (and these are the
        # very kernels a member would use alone): member k owns channels [k*C, (k+1)*C).
        xs = x.view(x.shape[0], K, self.c_in, *x.shape[2:])
        return torch.cat([F.conv2d(xs[:, k], self.p["weight"][k], self.p["bias"][k], padding=self.padding)
                          for k in range(K)], dim=1)

    def backward(self, gy):
        w, K = self._weight()
        mask = [self.need_input_grad, True, True]
        if gy.is_cuda or K == 1:
            gx, gw, gb = aten.convolution_backward(
                gy, self.x, w, [K * self.c_out], [1, 1], [self.padding] * 2, [1, 1], False, [0, 0], K, mask)
            self.g["weight"].copy_(gw.view_as(self.g["weight"]))
            self.g["bias"].copy_(gb.view_as(self.g["bias"]))
        else:
            xs = self.x.view(self.x.shape[0], K, self.c_in, *self.x.shape[2:])
            gys = gy.view(gy.shape[0], K, self.c_out, *gy.shape[2:])
            gxs = []
            for k in range(K):
                gx_k, gw_k, gb_k = aten.convolution_backward(
                    gys[:, k].contiguous(), xs[:, k].contiguous(), self.p["weight"][k], [self.c_out], [1, 1],
                    [self.padding] * 2, [1, 1], False, [0, 0], 1, mask)
                self.g["weight"][k].copy_(gw_k)
                self.g["bias"][k].copy_(gb_k)
                gxs.append(gx_k)
            gx = torch.cat(gxs, dim=1) if self.need_input_grad else None
        self.x = None
        return gx

    def describe(self):
        return f"Conv2d({self.c_in}→{self.c_out}, {self.k}×{self.k}, pad {self.padding})"


class MaxPool2d(Layer):
    def __init__(self, k: int = 2):
        self.k = k

    def out_shape(self, in_shape):
        c, h, w = in_shape
        return (c, h // self.k, w // self.k)

    def forward(self, x, train):
        y, idx = F.max_pool2d_with_indices(x, self.k)
        if train:
            self.x, self.idx = x, idx
        return y

    def backward(self, gy):
        gx = aten.max_pool2d_with_indices_backward(
            gy, self.x, [self.k] * 2, [self.k] * 2, [0, 0], [1, 1], False, self.idx)
        self.x = self.idx = None
        return gx

    def describe(self):
        return f"MaxPool2d({self.k})"


class BatchNorm(Layer):
    """BatchNorm with per-member statistics, for dense [K, B, F] or image [B, K*C, H, W].

    ``noise`` > 0 adds N(0, noise²) after normalisation, during training only
    (the CIFAR study's "noise injected after BN"), from per-member generators.
    """

    momentum, eps = 0.1, 1e-5  # PyTorch defaults

    def __init__(self, features: int, image_layout: bool, noise: float = 0.0):
        self.features, self.image_layout, self.noise = features, image_layout, noise
        self.generators: list[torch.Generator] | None = None
        self.feature_wise = not image_layout and noise == 0  # noise is drawn per position

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

    def _to_channels(self, x):  # dense [K, B, F] -> [1, K*F, B]: the batch as the spatial axis
        # (not [B, K*F]: ATen reduces a 2-D batch in per-thread parts, so its bits would depend on
        # the thread count; with an image axis each channel is reduced by one thread, in order)
        return x.transpose(1, 2).reshape(1, -1, x.shape[1]) if not self.image_layout else x

    def _from_channels(self, x, K):
        return x.view(K, self.features, -1).transpose(1, 2).contiguous() if not self.image_layout else x

    def forward(self, x, train):
        K = self.p["weight"].shape[0]
        xc = self._to_channels(x)
        y, mean, invstd = aten.native_batch_norm(
            xc, self.p["weight"].reshape(-1), self.p["bias"].reshape(-1),
            self.running_mean, self.running_var, train, self.momentum, self.eps)
        if train:
            self.x, self.mean, self.invstd = xc, mean, invstd
            if self.noise > 0:
                y = y + self.noise * self._noise(y, K)
        return self._from_channels(y, K)

    def _noise(self, y, K):
        if self.image_layout:  # member k owns channels [k*F, (k+1)*F)
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

    def describe(self):
        return f"BatchNorm({self.features}{', noise σ=%g' % self.noise if self.noise else ''})"


class Dropout(Layer):
    """Inverted dropout with an independent mask per member, from per-member generators."""

    def __init__(self, p: float, image_layout: bool):
        self.p_drop, self.image_layout = p, image_layout
        self.generators: list[torch.Generator] | None = None

    def forward(self, x, train):
        if not train or self.p_drop == 0:
            return x
        keep = 1.0 - self.p_drop
        if self.image_layout:  # [B, K*C, H, W]: member k owns a channel block
            B, KC = x.shape[:2]
            K = len(self.generators)
            shape = (B, KC // K, *x.shape[2:])
            u = torch.cat([torch.rand(shape, generator=g, device=x.device) for g in self.generators], dim=1)
        else:  # [K, B, F]
            u = torch.stack([torch.rand(x.shape[1:], generator=g, device=x.device) for g in self.generators])
        self.mask = (u < keep).to(x.dtype).mul_(1.0 / keep)
        return x * self.mask

    def backward(self, gy):
        if self.p_drop == 0:
            return gy
        gx = gy * self.mask
        self.mask = None
        return gx

    def describe(self):
        return f"Dropout({self.p_drop:g})"
