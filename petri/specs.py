"""Typed specs from user input: registries by name, and pydantic's errors in petri's words.

Everything a study file names (a model, a layer, a treatment, an optimiser) is a pydantic model
selected by its ``name`` from a registry. ``parse`` turns one entry of a study file into its spec:
a bare string is the name of a spec whose parameters all have defaults (``"relu"``), a table names
it and sets parameters (``{ name = "conv2d", filters = 6, kernel = 5 }``). Errors are one line that
names the place (``model.layers[3].kernel``), what is wrong and what is allowed.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Callable

from annotated_types import Ge
from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import SpecError

PositiveInt = Annotated[int, Ge(1)]  # (pydantic's says "> 0"; petri says "≥ 1")

ECHO = 60  # characters of a bad value echoed back in an error (a study file may hold huge values)


class Spec(BaseModel):
    """Base of every spec: unknown fields refused, immutable, no NaN or infinity."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def fmt_loc(loc) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def first_paragraph(doc: str | None) -> str:
    """A docstring's first paragraph as one line: what ``petri models`` says a thing is."""
    return " ".join((doc or "").strip().split("\n\n")[0].split())


def echo(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= ECHO else text[:ECHO - 1] + "…"


def _message(err: dict, cls: type[BaseModel] | None) -> str:
    """One pydantic error as petri says it."""
    t, ctx = err["type"], err.get("ctx") or {}
    if t in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": "≥", "greater_than": ">", "less_than_equal": "≤", "less_than": "<"}[t]
        bound = next(iter(ctx.values()))
        return f"must be {op} {bound}"
    if t in ("int_type", "int_parsing", "int_from_float"):
        return "must be an integer"
    if t in ("float_type", "float_parsing"):
        return "must be a number"
    if t == "finite_number":
        return "must be a finite number"
    if t in ("bool_type", "bool_parsing"):
        return "must be true or false"
    if t in ("string_type",):
        return "must be a string"
    if t in ("list_type", "tuple_type"):
        return "must be a list"
    if t in ("dict_type", "model_type", "model_attributes_type"):
        return "must be a table"
    if t == "literal_error":
        return f"must be one of {ctx.get('expected', '')}".replace("'", '"')
    if t == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s)"
    if t == "missing":
        return "missing (required)"
    if t == "extra_forbidden" and cls is not None:
        fields = [f for f in cls.model_fields if f != "name"]
        return f"unknown field; allowed: {', '.join(fields)}" if fields else \
            f"unknown field; {cls.model_fields['name'].default if 'name' in cls.model_fields else 'it'} takes no parameters"
    if t == "union_tag_invalid":
        return f"unknown name {ctx.get('tag')!r}; known: {ctx.get('expected_tags', '')}".replace("'", '"')
    if t == "value_error":
        return str(ctx.get("error", err["msg"]))
    return err["msg"]


def _branch(p) -> bool:
    """A loc segment that names a union branch or validator, not a field ("float", "literal['auto']")."""
    return isinstance(p, str) and ("[" in p or "(" in p or p.startswith(_INTERNAL)
                                   or p in ("float", "int", "str", "bool", "list", "dict", "tuple", "none"))


_INTERNAL = ("function-", "constrained-", "lax-or-strict", "json-or-python", "tagged-union", "nullable", "chain")


def translate(e: ValidationError, where: str, cls: type[BaseModel] | None = None) -> SpecError:
    """A pydantic error as a SpecError: each wrong field's path under ``where``, what is allowed, the
    input; several wrong fields of one table are its ``parts`` (one line, numbered)."""
    out: list[str] = []
    seen: set[tuple] = set()
    for err in e.errors():
        loc = [p for p in err["loc"] if not _branch(p)]
        if tuple(loc) in seen:  # a union's other branches failing on the same field: its first message says it
            continue
        seen.add(tuple(loc))
        field = f"{where}.{fmt_loc(loc)}" if loc and where else (fmt_loc(loc) or where)
        quiet = err["type"] in ("missing", "extra_forbidden") or not loc  # a whole-table check: no value to echo
        got = "" if quiet else f" (got {echo(err.get('input'))})"
        out.append(f"{field}: {_message(err, cls)}{got}")
    return SpecError(out)


def as_table(item: Any, where: str, kind: str) -> dict:
    """A bare name is a table with only that name."""
    if isinstance(item, str):
        return {"name": item}
    if isinstance(item, dict):
        return dict(item)
    raise SpecError(f"{where}: a {kind} is a name or a table with a name (got {echo(item)})")


class Registry:
    """Named spec classes of one kind (layers, models, treatments...).

    ``prepare(cls, table, where)`` (optional) may parse nested entries (a residual block's layers)
    before the class validates the table."""

    def __init__(self, kind: str, prepare: Callable[[type, dict, str], dict] | None = None):
        self.kind, self.classes, self.prepare = kind, {}, prepare

    def register(self, cls: type[BaseModel]) -> type[BaseModel]:
        name = cls.model_fields["name"].default
        self.classes[name] = cls
        return cls

    def __contains__(self, name) -> bool:
        return name in self.classes

    def __getitem__(self, name):
        return self.classes[name]

    def __iter__(self):
        return iter(self.classes)

    def items(self):
        return self.classes.items()

    def known(self) -> str:
        return ", ".join(self.classes)

    def parse(self, item: Any, where: str):
        if isinstance(item, BaseModel):
            return item
        table = as_table(item, where, self.kind)
        name = table.get("name")
        if not isinstance(name, str) or name not in self.classes:
            raise SpecError(f"{where}: unknown {self.kind} {echo(name)}; known {self.kind}s: {self.known()}")
        cls = self.classes[name]
        if self.prepare:
            table = self.prepare(cls, table, where)
        try:  # strict: a study file says what it means ("100" is not 100, true is not 1)
            return cls.model_validate(table, strict=True)
        except ValidationError as e:
            raise translate(e, where, cls) from None


def canonical(value: Any) -> Any:
    """JSON-ready form of a spec for hashing: fields at their defaults are left out (their names
    kept), so adding an optional field never changes the identity of what was stored before."""
    if isinstance(value, BaseModel):
        out = {}
        for fname, field in type(value).model_fields.items():
            v = getattr(value, fname)
            if fname != "name" and not field.is_required() and _same(v, field.get_default(call_default_factory=True)):
                continue
            out[fname] = canonical(v)
        return out
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    return value


def _same(a, b) -> bool:
    if isinstance(a, BaseModel) or isinstance(b, BaseModel):
        return type(a) is type(b) and canonical(a) == canonical(b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) in (int, float) and type(b) in (int, float) and a == b or a == b and type(a) is type(b)


def type_name(annotation: Any, metadata=()) -> str:
    """A field's type as a user reads it: "integer ≥ 1", "relu | tanh", "list of integer ≥ 1"."""
    import typing

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0], args[1:])
    if origin is typing.Literal:
        return " | ".join(f'"{a}"' if isinstance(a, str) else str(a) for a in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        parts = [type_name(a) for a in args if a is not type(None)]
        return " | ".join(parts) + (" (optional)" if type(None) in args else "")
    if origin in (list, tuple):
        return f"list of {type_name(args[0]) if args else 'values'}"
    base = {int: "integer", float: "number", bool: "true | false", str: "text"}.get(annotation)
    if base is None:
        base = getattr(annotation, "__name__", str(annotation))
        return "layers" if base in ("LayerSpec", "SerializeAsAny") else base
    bounds = []
    for m in metadata:
        for attr, op in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            v = getattr(m, attr, None)
            if v is not None:
                bounds.append(f"{op} {v}")
    return base + (" " + ", ".join(bounds) if bounds else "")


def describe_fields(cls: type[BaseModel]) -> list[tuple[str, str, str, str]]:
    """(parameter, type, default, description) of a spec class, ``name`` left out; a class with a
    ``described(row)`` classmethod says its own rows (a treatment: the splits it acts on)."""
    rows = []
    for fname, f in cls.model_fields.items():
        if fname == "name":
            continue
        default = "required" if f.is_required() else json_text(f.get_default(call_default_factory=True))
        row = (fname, type_name(f.annotation, f.metadata), default, f.description or "")
        rows.append(cls.described(row) if hasattr(cls, "described") else row)
    return rows


def json_text(v: Any) -> str:
    import json

    return json.dumps(v, ensure_ascii=False) if v is not None else "—"
