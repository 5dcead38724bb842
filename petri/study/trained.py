"""Trained cells back out of a study directory: one cell's weights as an ordinary ``torch.nn.Module``.

A cell is named as a user names it (variant, seed and, in a sweep, its point); its weights are the
file ``DIR/cells/<hash>/weights.safetensors`` (``best.safetensors``: the best epoch's, with early
stopping), in the state_dict layout of the model's plain form: ``nn.Sequential`` of standard layers
for layer lists and presets, the user's own module for a registered one.
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from ..data import get_spec
from ..models.compile import by_name
from ..errors import SpecError, StoreError
from . import cellstore
from .current import current_study
from .spec import Cell


def find_cell(directory: str | Path, variant: str, seed: int, point: dict | None = None) -> Cell:
    """The study's cell (as last run) for ``variant``, ``seed`` and sweep ``point``; one-line errors
    list what exists."""
    study = current_study(directory)
    matches = [c for c in study.cells if c.variant == variant and c.seed == seed]
    if not matches:
        variants = sorted({c.variant for c in study.cells})
        if variant not in variants:
            raise SpecError(f"variant {variant!r} is not a variant of {study.name}; variants: {', '.join(variants)}")
        raise SpecError(f"seed {seed}: {variant!r} has no such seed; seeds: {', '.join(map(str, study.seeds))}")
    if len(matches) > 1 or point:
        chosen = [c for c in matches if dict(c.point) == (point or {})]
        if not chosen:
            points = "; ".join(json.dumps(dict(c.point)) for c in matches)
            raise SpecError(f"point: {variant!r} is a sweep; give one of its points (point= in Python, --point on the "
                            f"command line): {points}")
        matches = chosen
    return matches[0]


def load_model(directory: str | Path, variant: str, seed: int, point: dict | None = None,
               best: bool = False) -> nn.Module:
    """The trained network of one cell, as a plain ``torch.nn.Module`` in eval mode.

    Run it on images as the cell's test split saw them: float [B, C, H, W] in [0, 1], after the cell's
    test-time treatments (e.g. ``1 - x`` for ``invert``). ``best``: the best epoch's weights (kept when
    early stopping monitors a metric)."""
    return cell_module(directory, find_cell(directory, variant, seed, point), best)


def cell_module(directory: str | Path, cell: Cell, best: bool = False) -> nn.Module:
    """``load_model`` for a cell of the study already found."""
    path = cellstore.weights_path(directory, cell.hash, best)
    got = cellstore.load(path)
    if got is None:
        what = "best-epoch weights (kept only with early stopping)" if best else "weights"
        raise StoreError(f"{path}: no {what} for {cell.variant} seed {cell.seed}: the cell is not finished, "
                         "diverged, ran with keep_weights = false, or the file is damaged")
    tensors, _ = got
    dspec = get_spec(cell.data)
    module = cell.recipe.model.module(dspec.shape, len(dspec.classes))
    module.load_state_dict(by_name(tensors, module), strict=True)
    return module.eval()


def export_weights(directory: str | Path, variant: str, seed: int, to: str | Path, point: dict | None = None,
                   best: bool = False) -> Path:
    """Copy one cell's weights (safetensors) to ``to``; returns the path written."""
    load_model(directory, variant, seed, point, best)  # the file verifies and fits its model
    cell = find_cell(directory, variant, seed, point)
    data = cellstore.weights_path(directory, cell.hash, best).read_bytes()
    to = Path(to)
    if to.is_dir():
        raise SpecError(f"--to: {to} is a folder; give a file name such as weights.safetensors")
    try:
        to.parent.mkdir(parents=True, exist_ok=True)
        to.write_bytes(data)
    except OSError as e:
        raise StoreError(f"--to: cannot write {to} ({e.strerror})") from None
    return to
