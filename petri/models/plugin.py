"""A user's own ``torch.nn.Module`` as a petri model, trained in population form through ``torch.func``.

``register_model("lenet5", make_lenet5)`` registers a factory that returns one member's module; its
keyword parameters become the model's parameters in study files (``model = { name = "lenet5",
width = 6 }``), typed from the factory's annotations and defaults. Parameters named ``input_shape``
(``(C, H, W)``) and ``n_classes`` are filled in by petri from the data set.

K members train as one (``ModuleNetwork``): each member's module is built from its own seed
(``torch.manual_seed(derive_seed(seed, "init"))`` around the factory call, so its own init code runs),
the parameters are stacked into the same ``theta [K, P]`` rows the built-in networks and optimisers
use, buffers (BatchNorm statistics) are stacked ``[K, ...]``, and ``functional_call`` runs the
members on their rows; autograd gives the gradients. On a GPU one ``vmap``-ed call runs all members;
on CPU each member's call runs alone (as the built-in convolutions do there): faster than ``vmap``
on these cores, and the very kernels a member uses alone. A member's numbers do not depend on the
other members; a lone member (K = 1) runs its ops on all threads, where some of PyTorch's kernels
(a small ``nn.Linear``, a convolution's weight gradient) round differently than on the one thread
of a larger pack's shard: alone vs packed agree within 1e-3 relative in the losses (the built-in
layers, which pin those ops, agree to the bit).
Dropout modules (``nn.Dropout``, ``nn.Dropout2d``) draw their masks from per-member generators
outside the call, so a member's masks are the same alone or packed; any other random draw in
``forward`` is refused (``vmap``'s randomness="error", used to check a module at parse time).
"""

from __future__ import annotations

import contextvars
import copy
import inspect
import math
import typing
from typing import Any, Callable, ClassVar, Literal

import torch
from pydantic import Field, create_model
from torch import nn
from torch.func import functional_call, vmap

from ..errors import SpecError
from ..usercode import code as plugin_code
from ..specs import first_paragraph
from ..rng import derive_seed, seed_of
from .base import MODELS, ModelSpec, Shape, SummaryRow
from .network import ROW_ALIGN

FILLED = ("input_shape", "n_classes")  # factory parameters petri fills in from the data set
_masks: contextvars.ContextVar[dict] = contextvars.ContextVar("petri_dropout_masks")


class PluginModel(ModelSpec):
    """Base of registered module models; subclasses are made by ``register_model``."""

    plugin: ClassVar[bool] = True
    factory: ClassVar[Callable[..., nn.Module]]
    code: ClassVar[str]  # sha256 of the plugin file (or the factory's source)

    def code_id(self):
        return self.code

    def kwargs(self, in_shape: Shape, n_classes: int) -> dict:
        given = {k: getattr(self, k) for k in type(self).model_fields if k != "name"}
        wanted = inspect.signature(self.factory).parameters
        filled = {"input_shape": tuple(in_shape), "n_classes": n_classes}
        return given | {k: v for k, v in filled.items() if k in wanted}

    def module(self, in_shape, n_classes):
        m = type(self).factory(**self.kwargs(in_shape, n_classes))
        if not isinstance(m, nn.Module):
            raise SpecError(f"model {self.name!r}: the factory returned {type(m).__name__}, not a torch.nn.Module")
        return m

    def check(self, in_shape, n_classes, where="model"):
        key = (self.model_dump_json(), tuple(in_shape), n_classes)
        if key in _checked:
            return
        shape = "×".join(map(str, in_shape))
        try:  # first as plain PyTorch runs it: its own errors, as the user would see them
            with torch.no_grad():
                self.module(in_shape, n_classes).eval()(torch.zeros(2, *in_shape))
        except SpecError as e:
            raise SpecError(f"{where}: {e}") from None
        except Exception as e:  # noqa: BLE001
            raise SpecError(f"{where}: model {self.name!r} fails on a batch of {shape} images: {_why(e)}") from None
        try:
            net = ModuleNetwork(lambda: self.module(in_shape, n_classes), in_shape, [0, 1], "cpu", self.name,
                                use_vmap=True)  # what a GPU runs: vmap refuses stray random draws
            with torch.no_grad():
                x = torch.rand(2, 2, *in_shape)
                out = net.forward(x, train=True)
                net.backward(torch.ones_like(out))
                net.forward(x, train=False)
        except SpecError as e:
            raise SpecError(f"{where}: {e}") from None
        except Exception as e:  # noqa: BLE001 - whatever the user's module raises, said in one line
            raise SpecError(f"{where}: model {self.name!r} cannot train in population form: {_why(e)}") from None
        if tuple(out.shape[2:]) != (n_classes,):
            raise SpecError(f"{where}: model {self.name!r} gives outputs of shape {tuple(out.shape[2:])} per image; "
                            f"the data set has {n_classes} classes")
        _checked.add(key)

    def summary(self, in_shape, n_classes):
        m = self.module(in_shape, n_classes)
        rows: list[SummaryRow] = []

        def hook(name, mod):
            def record(_, __, out):
                if isinstance(out, torch.Tensor):
                    params = sum(p.numel() for p in mod.parameters(recurse=False))
                    rows.append(SummaryRow(f"{name} ({type(mod).__name__})", tuple(out.shape[1:]), params))
            return record

        handles = [mod.register_forward_hook(hook(name, mod)) for name, mod in m.named_modules()
                   if name and not list(mod.children())]
        with torch.no_grad():
            m.eval()(torch.zeros(1, *in_shape))
        for h in handles:
            h.remove()
        total = sum(p.numel() for p in m.parameters())
        if sum(r.params for r in rows) != total:  # parameters outside leaf modules: one row for them
            rows.append(SummaryRow("(other parameters)", (), total - sum(r.params for r in rows)))
        return rows

    def build(self, in_shape, n_classes, seeds, device="cpu"):
        return ModuleNetwork(lambda: self.module(in_shape, n_classes), in_shape, seeds, device, self.name)


_checked: set = set()


def _why(e: BaseException) -> str:
    """What went wrong in the user's module, in one line, with the line of their file that did it."""
    text = f"{type(e).__name__}: {e}".split("\n")[0]
    where = _user_line(e)
    if "random operation" in text:
        return ("its forward draws random numbers outside nn.Dropout / nn.Dropout2d modules (e.g. F.dropout or "
                "torch.randn); use those modules, whose masks petri draws per member" + where)
    if "in-place operation" in text and "captured" in text:
        return "its forward changes a tensor in place that is not a parameter or buffer of the module (" + text + ")" \
            + where
    if "data-dependent control flow" in text or ".item()" in text:
        return ("its forward branches on a tensor's value (`if x.sum() > 0:`, `.item()`, `bool(t)`), which one call "
                "over all members cannot do; compute both branches and pick with torch.where(cond, a, b), or use "
                "tensor ops (clamp, masks) instead" + where)
    return text[:300] + where


def _user_line(e: BaseException) -> str:
    """'; at FILE:LINE: code' for the innermost frame of the traceback outside torch and petri."""
    import traceback
    from pathlib import Path

    skip = (str(Path(torch.__file__).parent), str(Path(__file__).parents[1]))
    frames = [f for f in traceback.extract_tb(e.__traceback__) if not f.filename.startswith(skip)
              and "site-packages" not in f.filename and not f.filename.startswith("<")]
    if not frames:
        return ""
    f = frames[-1]
    return f"; at {f.filename}:{f.lineno}: {(f.line or '').strip()[:120]}"


def register_model(name: str, factory: Callable[..., nn.Module], about: str = "") -> type[PluginModel]:
    """Register ``factory`` (returning one member's ``nn.Module``) as model ``name`` for study files.

    Its keyword parameters (with defaults and annotations) become the model's parameters; ``input_shape``
    and ``n_classes``, if it takes them, come from the data set. Re-registering a name replaces it;
    built-in model names cannot be taken."""
    if name in MODELS and not MODELS[name].plugin:
        raise SpecError(f"register_model: {name!r} is a built-in model; choose another name")
    hints = typing.get_type_hints(factory) if not isinstance(factory, type) else {}
    fields: dict[str, Any] = {}
    for pname, p in inspect.signature(factory).parameters.items():
        if pname in FILLED or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if pname == "name":
            raise SpecError(f"register_model: {name!r}: a factory parameter may not be called 'name'")
        default = ... if p.default is inspect.Parameter.empty else p.default
        fields[pname] = (hints.get(pname, Any), Field(default=default))
    code = plugin_code(factory)
    cls = create_model(f"Plugin_{_ident(name)}", __base__=PluginModel, __module__=__name__,
                       name=(Literal[name], name), **fields)
    cls.factory = staticmethod(factory)
    cls.code = code
    cls.about = about or first_paragraph(inspect.getdoc(factory)) or f"user module {factory.__qualname__}"
    globals()[cls.__name__] = cls  # picklable by reference once the plugin is loaded (Ray workers)
    MODELS.register(cls)
    return cls


def _ident(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)


class _Dropout(nn.Module):
    """Stands in for nn.Dropout / nn.Dropout2d inside the vmapped call: multiplies by the mask drawn
    for this module outside vmap (``ModuleNetwork._masks``)."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def forward(self, x):
        return x * _masks.get()[self.path] if self.training else x


DROPOUTS = (nn.Dropout, nn.Dropout2d)


class ModuleNetwork:
    """K members of a user's module: the interface of ``Network`` (theta, grad, forward, backward)."""

    absorbs_input_order = False

    def __init__(self, make: Callable[[], nn.Module], in_shape: Shape, seeds: list[int], device, name: str,
                 use_vmap: bool | None = None):
        self.in_shape, self.seeds, self.K, self.device = tuple(in_shape), list(seeds), len(seeds), torch.device(device)
        self.vmap = self.device.type != "cpu" if use_vmap is None else use_vmap
        members = []
        for s in self.seeds:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(derive_seed(seed_of(s, "init"), "init"))
                members.append(make())
        template = members[0]
        for n, t in [*template.named_parameters(), *template.named_buffers()]:
            if t.is_floating_point() and t.dtype != torch.float32:
                raise SpecError(f"model {name!r}: {n} is {t.dtype}; petri trains float32 modules")
        self.names = [n for n, _ in template.named_parameters()]
        shapes = [p.shape for _, p in template.named_parameters()]
        self.P = sum(math.prod(s) for s in shapes)
        width = -(-self.P // ROW_ALIGN) * ROW_ALIGN
        self.theta = torch.zeros(self.K, width, device=self.device)
        self.grad = torch.zeros(self.K, width, device=self.device)
        self.params, self.grads, offset = {}, {}, 0
        for n, shape in zip(self.names, shapes):
            k = math.prod(shape)
            self.params[n] = self.theta[:, offset:offset + k].view(self.K, *shape)
            self.grads[n] = self.grad[:, offset:offset + k].view(self.K, *shape)
            offset += k
        with torch.no_grad():
            for k, m in enumerate(members):
                for n, p in m.named_parameters():
                    self.params[n][k].copy_(p)
        self.buffers = {n: torch.stack([dict(m.named_buffers())[n] for m in members]).to(self.device)
                        for n, _ in template.named_buffers()}
        self.dropouts = self._dropout_shapes(template)
        self.generators = {path: [torch.Generator(device=self.device).manual_seed(derive_seed(seed_of(s, "dropout"), "noise", path))
                                  for s in self.seeds] for path in self.dropouts}
        self.base = copy.deepcopy(template)
        for path in self.dropouts:
            parent, _, leaf = path.rpartition(".")
            setattr(self.base.get_submodule(parent) if parent else self.base, leaf, _Dropout(path))
        self.base = self.base.to("meta")

    def _dropout_shapes(self, template: nn.Module) -> dict[str, tuple[float, tuple[int, ...]]]:
        """Dropout module path -> (p, one member's mask shape for one image) from a probe forward."""
        found: dict[str, tuple[float, tuple[int, ...]]] = {}
        handles = []
        for path, mod in template.named_modules():
            if isinstance(mod, DROPOUTS):
                def record(m, inputs, _, path=path):
                    shape = tuple(inputs[0].shape[1:])
                    found[path] = (m.p, (shape[0], *([1] * (len(shape) - 1))) if isinstance(m, nn.Dropout2d) else shape)
                handles.append(mod.register_forward_hook(record))
        if handles:
            with torch.no_grad():
                copy.deepcopy(template).eval()(torch.zeros(1, *self.in_shape))
            for h in handles:
                h.remove()
        return found

    def _masks(self, B: int) -> dict[str, torch.Tensor]:
        out = {}
        for path, (p, shape) in self.dropouts.items():
            u = torch.stack([torch.rand((B, *shape), generator=g, device=self.device) for g in self.generators[path]])
            out[path] = (u < 1 - p).to(torch.float32).mul_(1.0 / (1 - p))
        return out

    def _call(self, params, buffers, masks, x):
        token = _masks.set(masks)
        try:
            return functional_call(self.base, (params, buffers), (x,))
        finally:
            _masks.reset(token)

    def _run(self, params, masks, x):
        if self.vmap:
            return vmap(self._call, randomness="error")(params, self.buffers, masks, x)
        member = lambda d, k: {n: v[k] for n, v in d.items()}  # noqa: E731
        return torch.stack([self._call(member(params, k), member(self.buffers, k), member(masks, k), x[k])
                            for k in range(self.K)])

    def forward(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        """x [K, B, C, H, W] float -> logits [K, B, classes]."""
        self.base.train(train)
        masks = self._masks(x.shape[1]) if train else {}
        if not train:
            return self._run(self.params, masks, x)
        self._leaves = {n: v.detach().requires_grad_() for n, v in self.params.items()}
        with torch.enable_grad():
            self._out = self._run(self._leaves, masks, x)
        return self._out.detach()

    def backward(self, g_logits: torch.Tensor) -> None:
        leaves = list(self._leaves.values())
        grads = torch.autograd.grad(self._out, leaves, g_logits, allow_unused=True)
        for n, g in zip(self._leaves, grads):
            if g is None:
                self.grads[n].zero_()
            else:
                self.grads[n].copy_(g)
        self._out = self._leaves = None

    def absorb_input_order(self, k, order):  # pragma: no cover - absorbs_input_order is False
        raise NotImplementedError

    def member_state(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's state_dict, as the user's module names it."""
        return {n: v[k] for n, v in self.params.items()} | {n: v[k] for n, v in self.buffers.items()}

    def member_tensors(self, k: int) -> dict[str, torch.Tensor]:
        return {"theta": self.theta[k, :self.P]} | {f"buffer.{n}": v[k] for n, v in self.buffers.items()}

    def member_generators(self, k: int) -> dict[str, torch.Generator]:
        return {f"noise.{path}": gens[k] for path, gens in self.generators.items()}
