"""What a layer is: a typed spec (what the user writes) and its population form (what trains).

A **spec** (``LayerSpec``) is one entry of a network's layer list: a name plus parameters, validated
by pydantic, registered in ``LAYERS``. It knows the shape it produces from the shape it gets (one
member's view: ``(C, H, W)`` for images, ``(F,)`` for features; a misfit raises ``ValueError`` with
the reason), builds its population layer, and builds the plain ``torch.nn`` module it stands for
(what ``load_model`` hands back, and what the tests check the population form against).

A **population layer** (``Layer``) evaluates K members at once, with an explicit backward. Two
activation layouts:

* ``member``: ``[K, B, *shape]`` (members leading); dense layers batch with ``bmm``;
* ``channels``: ``[B, K*C, H, W]`` (members as channel groups), used by convolutions, pooling and
  image BatchNorm; per-member statistics fall out of per-channel ones.

Parameters are views into one member-major buffer ``theta [K, P]`` (and gradients into
``grad [K, P]``), so the optimiser is a few ops on two tensors and a member's weights are one row.
Backward uses ATen's own backward kernels; ``tests/test_layers.py`` checks every registered layer
against autograd and against its ``torch.nn`` module.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ...specs import Registry, Spec

Shape = tuple[int, ...]  # one member's activation: (C, H, W) or (F,)


@dataclass(frozen=True)
class ParamDecl:
    """A parameter of one member: name, shape, and how to initialise it."""

    name: str
    shape: tuple[int, ...]
    fan_in: int
    fan_out: int
    kind: str  # "weight", "bias", "ones" or "zeros"


class Layer:
    """Population layer base: no parameters, identity shape. Subclasses override what they need."""

    need_input_grad = True  # set False on layers before and at the first parameter layer
    feature_wise = False  # treats each dense input feature alone: a reordering of the features passes through
    fresh_output = False  # returns a new tensor nobody else keeps: the next activation may work in place
    overwrite_input = False  # set by the compiler when the input may be overwritten (see fresh_output)
    in_channels = False  # set by the compiler: takes the channels layout [B, K*C, H, W]
    out_numel = 0  # set by the compiler: one member's output elements per image
    K = 1  # members, set by the network

    def params(self) -> list[ParamDecl]:
        """This layer's own parameters (a container's children declare theirs)."""
        return []

    def children(self) -> list[Layer]:
        return []

    def n_params(self) -> int:
        """Parameters per member, children included."""
        return sum(math.prod(d.shape) for d in self.params()) + sum(c.n_params() for c in self.children())

    def bind(self, views: dict[str, torch.Tensor], grads: dict[str, torch.Tensor]) -> None:
        """Receive the [K, ...] parameter and gradient views of this layer."""
        self.p, self.g = views, grads

    def init_buffers(self, K: int, device) -> None:
        """Per-member state that is not trained (BatchNorm's running statistics)."""

    def forward(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        raise NotImplementedError

    def backward(self, gy: torch.Tensor) -> torch.Tensor | None:
        raise NotImplementedError

    def member_forward(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Member k alone, in evaluation, on its own images ``[B, C, H, W]`` (on CPU, channels last):
        what the network computes between entering and leaving the channels layout when it evaluates
        (``Network.forward``). The default suits layers whose evaluation is one op for any K."""
        return self.forward(x, False)

    def reorder_inputs(self, k: int, order: torch.Tensor) -> None:
        """Reindex member k's per-feature parameters so that, given x, it computes what it computed
        on x[..., order] (only for feature-wise layers and Linear)."""
        raise NotImplementedError

    def member_state(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's parameters and buffers as its ``torch.nn`` module's state_dict holds them."""
        return {}

    def member_buffers(self, k: int) -> dict[str, torch.Tensor]:
        """Views of member k's buffers (not trained, but part of its state: saved, restored)."""
        return {}


@contextmanager
def alone_on_one_thread(K: int, x: torch.Tensor):
    """For a lone member (K = 1) on CPU, run what follows on one thread. A member of a larger pack runs
    on its shard's one thread; ops that split a reduction across threads (a convolution's weight
    gradient, MKL's transposed narrow GEMM) would otherwise round differently alone."""
    if K != 1 or x.is_cuda:
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


_beside: tuple[int, ThreadPoolExecutor] | None = None


def one_thread_each(here, beside):
    """Run ``here()`` in this thread and ``beside()`` on a helper thread at once, each on one intra-op
    thread; returns both results. For a lone member's two independent gradients: the numbers of the
    one-thread kernels (as in a pack's shard), the wall time of two threads."""
    global _beside
    if _beside is None or _beside[0] != os.getpid():  # a forked child gets its own helper thread
        _beside = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="petri-beside"))

    def run_beside():
        torch.set_num_threads(1)  # this thread's own OpenMP team; process-wide default restored below
        return beside()

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pending = _beside[1].submit(run_beside)
        try:
            first = here()
        finally:
            second = pending.result()  # also before the restore: the helper's set_num_threads(1) comes first
        return first, second
    finally:
        torch.set_num_threads(n)


class ToImage(Layer):
    """[K, B, C, H, W] -> [B, K*C, H, W] (entry into the channels layout); the compiler inserts it."""

    def forward(self, x, train):
        self.B = x.shape[1]
        return x.transpose(0, 1).reshape(self.B, -1, *x.shape[3:])

    def backward(self, gy):
        return gy.reshape(self.B, self.K, -1, *gy.shape[2:]).transpose(0, 1)


class LayerSpec(Spec):
    """One entry of a layer list. Subclasses set ``name`` (a Literal with a default) and parameters."""

    name: str
    about: ClassVar[str] = ""  # one line for `petri models`
    # (parameters, input shape) pairs the registry tests build this layer with
    examples: ClassVar[tuple[tuple[dict, Shape], ...]] = ()
    shown: ClassVar[tuple[str, ...]] = ()  # parameters a summary shows even at their defaults

    def out_shape(self, shape: Shape) -> Shape:
        """The output shape for one member's input ``shape``; ValueError (the reason) if it does not fit."""
        return shape

    def wants_channels(self, shape: Shape) -> bool:
        """Whether, on images, this layer works in the channels layout [B, K*C, H, W]."""
        return False

    def population(self, shape: Shape, layout: str) -> Layer:
        raise NotImplementedError

    def module(self, shape: Shape) -> nn.Module:
        raise NotImplementedError

    def label(self) -> str:
        """Short description for summaries: the name and the parameters that differ from defaults."""
        from ...specs import canonical

        set_ = canonical(self)
        params = {k: getattr(self, k) for k in type(self).model_fields if k != "name" and (k in set_ or k in self.shown)}
        return self.name + (" " + ", ".join(f"{k}={v}" for k, v in params.items()) if params else "")


def needs_image(shape: Shape, what: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ValueError(f"{what} needs an image input (C×H×W), got {len(shape) == 1 and shape[0]} features")
    return shape


def needs_features(shape: Shape, what: str) -> int:
    if len(shape) != 1:
        raise ValueError(f"{what} needs a feature vector, got an image {'×'.join(map(str, shape))}; "
                         "add \"flatten\" (or global_avg_pool) before it")
    return shape[0]


def _prepare(cls, table: dict, where: str) -> dict:
    """Nested layer lists (a residual block's) are parsed entry by entry, so errors name their place."""
    for field in getattr(cls, "nested", ()):
        if field in table:
            items = table[field]
            if not isinstance(items, list) or not items:
                raise_list(f"{where}.{field}")
            table[field] = [LAYERS.parse(item, f"{where}.{field}[{i}]") for i, item in enumerate(items)]
    return table


def raise_list(where: str):
    from ...errors import SpecError

    raise SpecError(f"{where}: must be a non-empty list of layers, e.g. [{{ name = \"dense\", units = 64 }}, \"relu\"]")


LAYERS = Registry("layer", prepare=_prepare)
register_layer = LAYERS.register
