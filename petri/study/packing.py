"""Cells -> packs: cells that can train as one population.

Cells share a pack when everything but seed, treatments, learning rate and
weight decay agrees (same data, architecture, batch size, epoch budget,
optimiser kind, schedule, ...). K per pack comes from a memory budget.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch

from ..data import get_spec
from ..train.loop import Member, resolve_device
from ..train.recipe import Recipe
from .spec import Cell


@dataclass
class Pack:
    recipe: Recipe  # the first cell's recipe; members override lr and weight decay
    cells: list[Cell]

    def members(self) -> list[Member]:
        return [Member(c.seed, list(c.treatments), c.recipe.optimizer.lr, c.recipe.optimizer.weight_decay)
                for c in self.cells]


def pack_key(cell: Cell) -> str:
    r = cell.recipe.model_dump(mode="json")
    r["optimizer"].pop("lr")
    r["optimizer"].pop("weight_decay")
    return json.dumps([cell.data, r], sort_keys=True)


def member_bytes(recipe: Recipe, data: str) -> int:
    """Rough memory per member: parameters ×5 (weights, grads, two moments, scratch) plus
    activations of one training batch ×3 (kept for backward, gradients, temporaries)."""
    dspec = get_spec(data)
    shape, n = dspec.shape, len(dspec.classes)
    return 4 * (5 * recipe.model.n_params(shape, n) + 3 * recipe.model.activations(shape, n) * recipe.batch_size)


CPU_BUDGET = 256 << 20  # bytes: on CPU a pack pays off while its working set stays near the caches
CPU_MAX_MEMBERS = 32  # measured sweet spot for mlp [64] on 2 cores (benchmarks/README.md)


def default_budget(device: torch.device) -> int:
    """GPU: 60 % of free memory. CPU: cache-sized: stacking members only saves per-step overhead,
    and a pack whose activations spill out of cache (conv nets at K > 1) trains slower than K = 1."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.6)
    return CPU_BUDGET


def make_packs(cells: list[Cell], max_members: int | None = None, budget: int | None = None) -> list[Pack]:
    groups: dict[str, list[Cell]] = {}
    for c in cells:
        groups.setdefault(pack_key(c), []).append(c)
    packs = []
    for members in groups.values():
        recipe = members[0].recipe
        k = max_members
        if k is None:
            device = resolve_device(recipe.device)
            cap = CPU_MAX_MEMBERS if device.type == "cpu" else 256
            k = max(1, min(cap, (budget or default_budget(device)) // max(1, member_bytes(recipe, members[0].data))))
        for i in range(0, len(members), k):
            packs.append(Pack(recipe, members[i:i + k]))
    return packs
