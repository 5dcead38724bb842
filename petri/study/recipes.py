"""Recipe tables: a variant's overrides merged into the study's base recipe, then validated.

A variant writes only what it changes (``recipe = { optimizer = { lr = 0.1 } }``); a sub-table with
another ``name`` replaces the base's (``model = "mnist_cnn"``), a table of positions patches the
inherited layer list (``layers = { 8 = "relu" }``). Sweep axes (``study/sweeps.py``) pass through the
merge as values.
"""

from __future__ import annotations

import copy

from pydantic import ValidationError

from ..errors import SpecError
from ..models import parse_model
from ..specs import translate
from ..train.recipe import Recipe, parse_optimizer, parse_schedule
from .sweeps import is_axis


def recipe_from_dict(d: dict, where: str = "recipe") -> Recipe:
    """A validated recipe; every wrong field of it (its model's, optimizer's and schedule's too) in one error."""
    if not isinstance(d, dict):
        raise SpecError(f"{where}: must be a table")
    if "model" not in d:
        raise SpecError(f"{where}.model: missing; a model such as {{ name = \"mlp\", hidden = [64] }} or a list of layers")
    d, mistakes, said = dict(d), [], []
    opt = d.get("optimizer")
    if isinstance(opt, dict) and "name" not in opt:  # { lr = 0.01 } tunes the default optimiser
        d["optimizer"] = {"name": Recipe.model_fields["optimizer"].default.name, **opt}
    for key, parse in (("model", parse_model), ("optimizer", parse_optimizer), ("schedule", parse_schedule)):
        if key in d:
            try:
                d[key] = parse(d[key], f"{where}.{key}")
            except SpecError as e:  # said here; the rest of the recipe is still checked
                mistakes += e.parts
                said.append(f"{where}.{key}:")
                del d[key]
    try:
        recipe = Recipe.model_validate(d, strict=True)
    except ValidationError as e:  # (a model said above is "missing" here)
        mistakes += [m for m in translate(e, where, Recipe).parts if not m.startswith(tuple(said))]
    if mistakes:
        raise SpecError(mistakes)
    return recipe


def merge(base: dict, over: dict) -> dict:
    """Deep merge of recipe dicts; a sub-table with a different ``name`` replaces the base one."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if k == "model":  # a list of layers or a bare name is a model table too
            v, out[k] = model_table(v), model_table(out.get(k))
        if k == "layers" and isinstance(v, dict) and not is_axis(v) and isinstance(out.get(k), list):
            out[k] = _patch_layers(out[k], v)  # { 8 = "relu" }: the inherited list with layer 8 replaced
            continue
        if isinstance(v, dict) and isinstance(out.get(k), dict) and not is_axis(v) \
                and v.get("name", out[k].get("name")) == out[k].get("name"):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _patch_layers(layers: list, patch: dict) -> list:
    """A layer list with some positions replaced: ``{ 8 = "relu", 3 = { name = "dropout", p = 0.2 } }``."""
    out = copy.deepcopy(layers)
    for key, layer in patch.items():
        if not (isinstance(key, str) and key.isdigit() and int(key) < len(layers)):
            raise SpecError(f"model.layers.{key}: a patch of the inherited layer list names positions 0.."
                            f"{len(layers) - 1} (layers = {{ 2 = \"relu\" }}); or write the whole list")
        out[int(key)] = copy.deepcopy(layer)
    return out


def model_table(v):
    """A model as a table: a list of layers, a bare name or a table of layers without a name."""
    if isinstance(v, list):
        return {"name": "layers", "layers": v}
    if isinstance(v, str):
        return {"name": v}
    if isinstance(v, dict) and "layers" in v and "name" not in v and not is_axis(v):
        return {"name": "layers", **v}
    return v
