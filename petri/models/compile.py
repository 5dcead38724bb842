"""Layer lists -> shapes, population layers, or a plain ``nn.Sequential``.

``shapes`` walks a list with one member's activation shape, so a list that does not fit its data
(a 5×5 kernel on a 2×2 map, a dense layer on an image) is refused before anything is built, naming
the layer's place. ``compile_layers`` builds the population form, inserting the switch into the
channels layout before the first layer that wants it and letting an activation work in place when
the layer before it returns a tensor nobody else keeps.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from torch import nn

from .layers.base import Layer, LayerSpec, Shape, ToImage


class Misfit(ValueError):
    """A layer that does not fit its input: ``path`` its place in the list (nested lists included)."""

    def __init__(self, path: list, name: str, shape: Shape, reason: str):
        super().__init__(reason)
        self.path, self.name, self.shape, self.reason = path, name, shape, reason

    def where(self, prefix: str) -> str:
        loc = prefix
        for i, p in enumerate(self.path):
            loc += f"[{p}]" if isinstance(p, int) else f".{p}"
        return f"{loc} ({self.name}): {self.reason} (input {'×'.join(map(str, self.shape))})"


def shapes(specs: list[LayerSpec], shape: Shape) -> list[tuple[LayerSpec, Shape]]:
    """Each layer with its output shape; Misfit where one does not fit."""
    out = []
    for i, s in enumerate(specs):
        try:
            new = s.out_shape(shape)
        except Misfit as e:  # inside a nested list
            raise Misfit([i, "layers", *e.path], e.name, e.shape, e.reason) from None
        except ValueError as e:
            raise Misfit([i], s.name, shape, str(e)) from None
        out.append((s, new))
        shape = new
    return out


def resolve(specs: list[LayerSpec], n_classes: int) -> list[LayerSpec]:
    """Layers whose size is "classes" get the data set's class count (nested lists too)."""
    out = []
    for s in specs:
        if getattr(s, "units", None) == "classes":
            s = s.model_copy(update={"units": n_classes})
        if hasattr(s, "nested"):
            s = s.model_copy(update={f: resolve(getattr(s, f), n_classes) for f in s.nested})
        out.append(s)
    return out


def compile_layers(specs: list[LayerSpec], shape: Shape, layout: str = "member") -> list[Layer]:
    """Population layers for ``specs`` on inputs of one member's ``shape`` in ``layout``."""
    layers: list[Layer] = []
    for i, (s, out) in enumerate(shapes(specs, shape)):
        if len(shape) == 3 and layout == "member" and s.wants_channels(shape):
            layers.append(ToImage())
            layout = "channels"
        layer = s.population(shape, layout)
        layer.in_channels = layout == "channels"
        layer.out_numel = math.prod(out)  # one member's output per image
        layer.spec_key = layer_key(s, i)
        layer.overwrite_input = bool(layers) and layers[-1].fresh_output
        layers.append(layer)
        shape = out
        if len(shape) == 1:
            layout = "member"
    return layers


def layer_key(spec: LayerSpec, i: int) -> str:
    """A layer's name in the plain form and in weights files: its kind and place, e.g. "conv2d_0"."""
    return f"{spec.name}_{i}"


def modules(specs: list[LayerSpec], shape: Shape) -> nn.Sequential:
    """The same list as standard ``torch.nn`` modules (one member, [B, ...] tensors), each named by
    ``layer_key`` (``model[0]`` still indexes it)."""
    out = OrderedDict()
    for i, (s, new) in enumerate(shapes(specs, shape)):
        out[layer_key(s, i)] = s.module(shape)
        shape = new
    return nn.Sequential(out)


def by_name(tensors: dict, module: nn.Module) -> dict:
    """A state_dict keyed by position (``3.body.0.weight``, weights files from before layers were
    named) re-keyed by the module's names (``residual_3.body.conv2d_0.weight``)."""
    out = {}
    for key, t in tensors.items():
        parts, m = key.split("."), module
        for j, part in enumerate(parts[:-1]):
            if part.isdigit() and isinstance(m, nn.Sequential) and part not in m._modules:
                parts[j] = list(m._modules)[int(part)]
            m = m._modules.get(parts[j]) if m is not None and hasattr(m, "_modules") else None
        out[".".join(parts)] = t
    return out


def member_state(layers: list[Layer], k: int, prefix: str = "") -> dict:
    """Member k's parameters and buffers, keyed as the ``modules`` Sequential's state_dict."""
    out = {}
    for layer in layers:
        if hasattr(layer, "spec_key"):
            out |= {f"{prefix}{layer.spec_key}.{name}": t for name, t in layer.member_state(k).items()}
    return out


def walk(layers: list[Layer]):
    """Every layer, containers before their children (the order parameters are laid out in)."""
    for layer in layers:
        yield layer
        yield from walk(layer.children())
