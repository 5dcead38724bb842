"""What a model is: a typed spec, selected by ``name`` from ``MODELS``, that builds a population network.

Every built-in model is a layer list: ``layers`` is the user's own list, and the presets (``mlp``,
``mnist_cnn``, ``vgg``) are specs whose ``layer_specs`` expand into one. A user's ``torch.nn.Module``
(``petri.register_model``) is the other kind (``plugin.py``). Either way a model answers the same
questions: does it fit this data (``check``), what does it look like (``summary``), build K members
(``build``), and one member as a plain module (``module``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from ..errors import SpecError
from ..specs import Registry, Spec, as_table
from .compile import Misfit, compile_layers, modules, resolve, shapes
from .layers import LayerSpec
from .network import Network

Shape = tuple[int, ...]


@dataclass(frozen=True)
class SummaryRow:
    """One line of a model summary: a layer, one member's output shape, its parameters per member."""

    label: str
    shape: Shape
    params: int
    depth: int = 0  # nesting (a residual block's body)


class ModelSpec(Spec):
    """What every model answers; ``LayerModel`` (the built-in ones) and ``PluginModel`` (a user's module)."""

    name: str
    about: ClassVar[str] = ""
    plugin: ClassVar[bool] = False

    def check(self, in_shape: Shape, n_classes: int, where: str = "model") -> None:
        raise NotImplementedError

    def summary(self, in_shape: Shape, n_classes: int) -> list[SummaryRow]:
        raise NotImplementedError

    def build(self, in_shape: Shape, n_classes: int, seeds: list[int], device: torch.device | str = "cpu"):
        raise NotImplementedError

    def module(self, in_shape: Shape, n_classes: int) -> nn.Module:
        """One member as a plain ``torch.nn`` module."""
        raise NotImplementedError

    def label(self) -> str:
        """The name and the parameters that differ from their defaults (a layer list: its length)."""
        from ..specs import canonical

        params = {k: v for k, v in canonical(self).items() if k not in ("name", "layers")}
        text = self.name + (f" ({len(self.layers)} layers)" if "layers" in type(self).model_fields else "")
        return text + (" " + ", ".join(f"{k}={json.dumps(v)}" for k, v in params.items()) if params else "")

    def code_id(self) -> str | None:
        """Identity of the code behind the model, when it is not petri's (part of a cell's hash)."""
        return None

    def n_params(self, in_shape: Shape, n_classes: int) -> int:
        return sum(r.params for r in self.summary(in_shape, n_classes) if r.depth == 0)

    def activations(self, in_shape: Shape, n_classes: int) -> int:
        """Floats of one image's activations through the network (memory estimates)."""
        return math.prod(in_shape) + sum(math.prod(r.shape) for r in self.summary(in_shape, n_classes))


class LayerModel(ModelSpec):
    """A network written as a layer list (``layers``) or expanding into one (the presets)."""

    init: Literal["torch", "glorot"] = Field(
        default="torch", description="initial weights: torch (PyTorch's default) or glorot (Keras' glorot_uniform)")

    def layer_specs(self, in_shape: Shape, n_classes: int) -> list[LayerSpec]:
        raise NotImplementedError

    def resolved(self, in_shape: Shape, n_classes: int) -> list[LayerSpec]:
        return resolve(self.layer_specs(tuple(in_shape), n_classes), n_classes)

    def check(self, in_shape: Shape, n_classes: int, where: str = "model") -> None:
        """SpecError if the network does not fit images of ``in_shape`` with ``n_classes`` classes."""
        try:
            specs = self.resolved(in_shape, n_classes)
            out = shapes(specs, tuple(in_shape))
        except Misfit as e:
            raise SpecError(e.where(f"{where}.layers")) from None
        except ValueError as e:
            raise SpecError(f"{where}: {e}") from None
        final = out[-1][1] if out else tuple(in_shape)
        if final != (n_classes,):
            raise SpecError(f"{where}: the last layer gives {'×'.join(map(str, final))}, the data set has {n_classes} "
                            f"classes; end with {{ name = \"dense\", units = \"classes\" }}")

    def summary(self, in_shape: Shape, n_classes: int) -> list[SummaryRow]:
        # Memoised by the spec's JSON: a dry run of 1,203 cells asks each pack's memory and disk figures
        # (a few summaries a pack; each walks every layer's population form).
        key = (type(self), self.model_dump_json(), tuple(in_shape), n_classes)
        if key not in _SUMMARIES:
            if len(_SUMMARIES) > 256:
                _SUMMARIES.clear()
            _SUMMARIES[key] = tuple(_rows(self.resolved(in_shape, n_classes), tuple(in_shape), 0))
        return list(_SUMMARIES[key])

    def build(self, in_shape: Shape, n_classes: int, seeds: list[int], device: torch.device | str = "cpu"):
        layers = compile_layers(self.resolved(in_shape, n_classes), tuple(in_shape))
        return Network(layers, in_shape, seeds, init=self.init, device=device)

    def module(self, in_shape: Shape, n_classes: int) -> nn.Module:
        """One member as standard ``torch.nn`` layers (what ``Network.member_state`` fills)."""
        return modules(self.resolved(in_shape, n_classes), tuple(in_shape))


_SUMMARIES: dict[tuple, tuple[SummaryRow, ...]] = {}


def _rows(specs: list[LayerSpec], shape: Shape, depth: int) -> list[SummaryRow]:
    rows = []
    for s, out in shapes(specs, shape):
        layer = s.population(shape, "channels" if s.wants_channels(shape) and len(shape) == 3 else "member")
        rows.append(SummaryRow(s.label(), out, layer.n_params(), depth))
        for field in getattr(s, "nested", ()):
            rows += _rows(getattr(s, field), shape, depth + 1)
        if getattr(s, "projects", None) and s.projects(shape):  # a residual's projection: its rows add up
            rows += [replace(r, label=f"shortcut: {r.label}") for r in _rows(s.projection(shape), shape, depth + 1)]
        shape = out
    return rows


def _prepare(cls, table: dict, where: str) -> dict:
    from .layers.base import LAYERS, raise_list

    if "layers" in table and "layers" in cls.model_fields:
        items = table["layers"]
        if not isinstance(items, list) or not items:
            raise_list(f"{where}.layers")
        table["layers"] = [LAYERS.parse(item, f"{where}.layers[{i}]") for i, item in enumerate(items)]
    return table


MODELS = Registry("model", prepare=_prepare)


def parse_model(data: Any, where: str = "model") -> ModelSpec:
    """A model from what a study file says: a list of layers, a preset's name, or a table
    (``{ name = "mlp", hidden = [64] }``, or ``{ layers = [...], init = "glorot" }``)."""
    if isinstance(data, ModelSpec):
        return data
    if isinstance(data, list):
        data = {"layers": data}
    data = as_table(data, where, "model")
    if "name" not in data and "layers" in data:
        data["name"] = "layers"
    return MODELS.parse(data, where)
