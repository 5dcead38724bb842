"""Sweeps: any parameter written ``{ values = [...] }`` or ``{ range = [start, stop] }`` /
``{ range = [start, stop, step] }`` (stop excluded) is a sweep axis; a variant's axes multiply.

One walker (``find_axes``) finds the axes of a variant's tree (its merged recipe and its treatments);
each axis is checked once (``axis_length``), counted before any cell is built (``count_cells``: a
study over ``MAX_CELLS`` is refused by arithmetic, even a float range with a tiny step) and then
expanded (``axis_values``).
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import SpecError
from ..specs import echo, fmt_loc

MAX_CELLS = 100_000  # cells in one study: counted from the axes (arithmetic) before any is built


def is_axis(v) -> bool:
    return isinstance(v, dict) and set(v) in ({"values"}, {"range"})


def find_axes(node, path: list | None = None) -> list[tuple[list, dict]]:
    """Every axis in ``node`` (a variant's tree) with its path, in the order written."""
    path = path or []
    if is_axis(node):
        return [(path, node)]
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    return [axis for k, v in items for axis in find_axes(v, path + [k])]


def axis_where(where: str, path: list) -> str:
    """An axis's place in errors: ``t.toml: variants.x.recipe.optimizer.lr``."""
    return f"{where}.{fmt_loc(path)}" if path else where


def axis_length(v: dict, where: str) -> int:
    """How many values the axis ``v`` takes (its form checked here); a range's length by arithmetic."""
    if "values" in v:
        if not isinstance(v["values"], list) or not v["values"]:
            raise SpecError(f"{where}: values must be a non-empty list")
        return len(v["values"])
    start, stop, step = _range(v["range"], where)
    n = (stop - start) / step
    return math.ceil(n) if n < 10 * MAX_CELLS else 10 * MAX_CELLS


def _range(r, where: str) -> tuple:
    if not isinstance(r, list) or len(r) not in (2, 3) or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in r):
        raise SpecError(f"{where}: range must be [start, stop] or [start, stop, step] with finite numbers (got {echo(r)})")
    start, stop, step = (r + [1])[:3]
    if step == 0:
        raise SpecError(f"{where}: range {echo(r)}: step must not be 0")
    if not (stop - start) / step > 0:  # (+inf where the arithmetic overflows: a huge axis, counted as such)
        raise SpecError(f"{where}: range {r} is empty; stop is excluded and step must move start towards stop")
    return start, stop, step


def axis_values(v: dict, where: str) -> list:
    if "values" in v:
        axis_length(v, where)
        return v["values"]
    start, stop, step = _range(v["range"], where)
    if all(isinstance(x, int) for x in (start, stop, step)):
        return list(range(start, stop, step))
    n = int(round((stop - start) / step + 0.5 - 1e-9))
    return [round(start + i * step, 12) for i in range(n) if (start + i * step < stop if step > 0 else start + i * step > stop)]


def count_cells(axes: dict[str, list[tuple[list, int]]], n_seeds: int, where: str) -> None:
    """Refuse a study over MAX_CELLS before building any cell: ``axes`` is each variant's axis lengths;
    the count is their product per variant times the seeds."""
    total = 0
    for vname, lengths in axes.items():
        n = 1
        for length in lengths:
            n *= length
            if n * n_seeds > MAX_CELLS:
                break
        total += n * n_seeds
        if total > MAX_CELLS:
            raise SpecError(f"{where}: variants.{vname}: the study has over {MAX_CELLS:,} cells (at least {total:,} with "
                            f"{n_seeds} seeds); split it into smaller studies, or sweep fewer values")


def labels(paths: list[list]) -> list[str]:
    """Short axis labels: the last key, or more of the path where two would clash."""
    out = [fmt_loc(p[-2:]) if isinstance(p[-1], int) and len(p) > 1 else str(p[-1]) for p in paths]  # layers[2]
    for depth in range(2, 6):
        if len(set(out)) == len(out):
            break
        out = [fmt_loc(p[-depth:]) if out.count(lab) > 1 else lab for p, lab in zip(paths, out)]
    return out


def set_at(node, path: list, value) -> None:
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value


def value_at(cell, path: list):
    """What ``cell`` used at a sweep axis's ``path`` (["recipe", "optimizer", "lr"], ["treatments", 0, "p"]),
    defaults included; a layer or other named table as its name; None where the cell has no such place."""
    node: Any = {"recipe": cell.recipe.model_dump(mode="json"),
                 "treatments": [t.model_dump(mode="json") for t in cell.treatments]}
    for p in path:
        try:
            node = node[p]
        except (KeyError, IndexError, TypeError):
            return None
    return node["name"] if isinstance(node, dict) and "name" in node else node
