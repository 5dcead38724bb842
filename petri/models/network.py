"""A population network: layers plus one member-major parameter buffer.

``theta [K, P']`` holds every member's parameters (row k = member k; P' is P
rounded up to a multiple of 256), ``grad [K, P']`` their gradients. Member k's initial weights come from a
generator seeded by ``derive_seed(seed_k, "init")`` alone, so a member gets the
same weights whether it trains alone or as one of 64, and all cells with the
same seed start from the same weights (common random numbers).
"""

from __future__ import annotations

import math

import torch

from ..rng import derive_seed, seed_of
from .compile import member_state, walk
from .layers import Layer, ParamDecl, ToImage
from .layers.dense import Linear

ROW_ALIGN = 256  # floats
EVAL_CHUNK_BYTES = 2 << 20  # evaluation on CPU: a member's images go through its image layers in chunks whose
# largest activation is about this size (cache-sized; the chunk depends on the layer shapes only, never on K)


def _init_param(d: ParamDecl, scheme: str, g: torch.Generator) -> torch.Tensor:
    if d.kind == "ones":
        return torch.ones(d.shape)
    if d.kind == "zeros" or (d.kind == "bias" and scheme == "glorot"):
        return torch.zeros(d.shape)
    if scheme == "glorot":  # Keras glorot_uniform
        bound = math.sqrt(6.0 / (d.fan_in + d.fan_out))
    else:  # PyTorch default: kaiming_uniform(a=sqrt(5)) for weights, U(±1/sqrt(fan_in)) for biases
        bound = 1.0 / math.sqrt(d.fan_in)
    return torch.empty(d.shape).uniform_(-bound, bound, generator=g)


class Network:
    """K members of one architecture, trained as one."""

    def __init__(self, layers: list[Layer], in_shape: tuple[int, ...], seeds: list[int],
                 init: str = "torch", device: torch.device | str = "cpu"):
        self.layers, self.in_shape, self.seeds = layers, tuple(in_shape), list(seeds)
        self.K, self.device = len(seeds), torch.device(device)
        decls = [(layer, d) for layer in walk(layers) for d in layer.params()]
        self.P = sum(layer.n_params() for layer in layers)  # parameters per member
        # Rows are padded to a multiple of ROW_ALIGN floats (zeros that stay zero): elementwise kernels then
        # never split a member's row into vector body + scalar tail differently for different K, which
        # keeps a member's numbers bitwise identical alone or packed.
        width = -(-self.P // ROW_ALIGN) * ROW_ALIGN
        self.theta = torch.zeros(self.K, width, device=self.device)
        self.grad = torch.zeros(self.K, width, device=self.device)
        self._bind(decls)
        self._init(decls, init)
        self.absorbed: dict[int, torch.Tensor] = {}  # member -> the pixel order its first layer took in
        # (the ToImage switch, the end of the layers in the channels layout) or None: evaluated per member
        entry = next((i for i, layer in enumerate(layers) if isinstance(layer, ToImage)), None)
        self._image_run = None if entry is None else \
            (entry, next(i for i in range(entry + 1, len(layers) + 1) if i == len(layers) or not layers[i].in_channels))
        first = next((i for i, layer in enumerate(layers) if layer.n_params()), len(layers))
        for i, layer in enumerate(layers):
            layer.need_input_grad = i > first  # nothing before the first parameter needs a gradient
        for i, layer in enumerate(walk(layers)):
            layer.K = self.K
            layer.init_buffers(self.K, self.device)
            if hasattr(layer, "generators"):  # dropout masks and BN noise: own stream per member and layer
                layer.generators = [torch.Generator(device=self.device).manual_seed(derive_seed(seed_of(s, "dropout"), "noise", i))
                                    for s in self.seeds]

    def _bind(self, decls) -> None:
        offset, views, grads = 0, {}, {}
        for layer, d in decls:
            n = math.prod(d.shape)
            views.setdefault(id(layer), {})[d.name] = self.theta[:, offset:offset + n].view(self.K, *d.shape)
            grads.setdefault(id(layer), {})[d.name] = self.grad[:, offset:offset + n].view(self.K, *d.shape)
            offset += n
        for layer in walk(self.layers):
            layer.bind(views.get(id(layer), {}), grads.get(id(layer), {}))

    def _init(self, decls, scheme: str) -> None:
        for k, seed in enumerate(self.seeds):
            g = torch.Generator().manual_seed(derive_seed(seed_of(seed, "init"), "init"))
            row = torch.cat([_init_param(d, scheme, g).reshape(-1) for _, d in decls]) if decls else torch.empty(0)
            self.theta[k, :self.P].copy_(row)

    def forward(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        """x [K, B, C, H, W] float -> logits [K, B, classes]."""
        if not train and self._image_run and not x.is_cuda:
            return self._evaluate_per_member(x)
        for layer in self.layers:
            x = layer.forward(x, train)
        return x

    def _evaluate_per_member(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluation on CPU: the layers in the channels layout run member by member, each member's
        images ``[B, C, H, W]`` channels last (oneDNN's convolutions and ATen's pooling run vectorised
        over channels there, and no member's activations are interleaved with another's: no copies
        into ``[B, K*C, H, W]``); the dense layers after them run as one population. A member computes
        what it computes alone."""
        a, b = self._image_run
        for layer in self.layers[:a]:
            x = layer.forward(x, False)
        run = self.layers[a + 1:b]
        chunk = max(1, EVAL_CHUNK_BYTES // (4 * max(layer.out_numel for layer in walk(run))))  # images
        features = []
        for k in range(self.K):
            parts = []
            for x_k in x[k].split(chunk):
                h = x_k.contiguous(memory_format=torch.channels_last)  # [b, C, H, W]
                for layer in run:
                    h = layer.member_forward(h, k)
                parts.append(h)
            features.append(torch.cat(parts))  # [B, F]
        if features[0].dim() == 4:  # a list that ends in the channels layout: [B, K*C, H, W], as in training
            return torch.cat(features, dim=1)
        x = torch.stack(features)  # [K, B, F]
        for layer in self.layers[b:]:
            x = layer.forward(x, False)
        return x

    def backward(self, g_logits: torch.Tensor) -> None:
        """Fill ``self.grad`` from d(loss)/d(logits) [K, B, classes] (overwrites, no accumulation)."""
        g = g_logits
        for layer in reversed(self.layers):
            g = layer.backward(g)
            if g is None:
                break

    def _input_layers(self) -> list[Layer] | None:
        """The layers through the first Linear, if every layer before it is feature-wise."""
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Linear):
                return self.layers[:i + 1]
            if not layer.feature_wise:
                return None
        return None

    @property
    def absorbs_input_order(self) -> bool:
        """Whether a fixed reordering of a member's input pixels can be taken into its weights."""
        return self._input_layers() is not None

    def absorb_input_order(self, k: int, pixel_order: torch.Tensor) -> None:
        """Member k, given images, computes from here on what it computed on the same images with their
        pixels reordered, ``x[..., i] -> x[..., pixel_order[i]]`` (all channels of a pixel together).
        Exact up to the GEMM's summation order: a permutation is a reparametrisation, the initial
        weights only move, and SGD and Adam treat every weight alike."""
        self._reorder(k, pixel_order.to(self.device))
        self.absorbed[k] = pixel_order.to(self.device)

    def _reorder(self, k: int, pixel_order: torch.Tensor) -> None:
        C, H, W = self.in_shape
        order = (torch.arange(C, device=self.device)[:, None] * (H * W) + pixel_order).view(-1)
        for layer in self._input_layers():
            layer.reorder_inputs(k, order)

    def member_state(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's weights and buffers, keyed as the state_dict of its plain ``torch.nn`` form
        (a permutation the first layer absorbed is undone: the module takes images as they are)."""
        order = self.absorbed.get(k)
        if order is None:
            return member_state(self.layers, k)
        saved = self.theta[k].clone()
        try:  # reorder member k's rows back, read them out, restore
            self._reorder(k, torch.argsort(order))
            return {n: t.clone() for n, t in member_state(self.layers, k).items()}
        finally:
            self.theta[k].copy_(saved)

    def member_tensors(self, k: int) -> dict[str, torch.Tensor]:
        """Views of everything member k carries from step to step: its parameter row and its buffers."""
        out = {"theta": self.theta[k, :self.P]}
        for i, layer in enumerate(walk(self.layers)):
            out |= {f"buffer.{i}.{n}": t for n, t in layer.member_buffers(k).items()}
        return out

    def member_generators(self, k: int) -> dict[str, torch.Generator]:
        """Member k's random streams (dropout masks, BN noise), by a name stable across packs."""
        return {f"noise.{i}": layer.generators[k] for i, layer in enumerate(walk(self.layers))
                if getattr(layer, "generators", None)}
