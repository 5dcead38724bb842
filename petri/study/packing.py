"""Cells -> packs: cells that can train as one population.

Cells share a pack when everything but seed, treatments, learning rate and
weight decay agrees (same data, architecture, batch size, epoch budget,
optimiser kind, schedule, ...). K per pack comes from a memory budget.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field

import torch

from ..data import get_spec
from ..train.loop import Member, resolve_device
from ..train.memory import member_bytes
from ..train.recipe import Recipe
from ..train.state import CellState
from .spec import Cell


@dataclass
class Pack:
    recipe: Recipe  # the first cell's recipe; members override lr and weight decay
    cells: list[Cell]
    states: dict[str, CellState] = field(default_factory=dict)  # cell hash -> where it resumes from
    limit: int = 0  # the most members a pack of this shape may hold here (memory, the CPU cap)

    def members(self) -> list[Member]:
        return [Member(c.seeds, list(c.treatments), c.recipe.optimizer.lr, c.recipe.optimizer.weight_decay,
                       self.states.get(c.hash), c.metrics) for c in self.cells]

    @property
    def start(self) -> int:
        """Epochs its cells have behind them (all the same: a pack resumes from one epoch)."""
        return next(iter(self.states.values())).epoch if self.states else 0


def pack_key(cell: Cell) -> str:
    r = cell.recipe.model_dump(mode="json")
    r["optimizer"].pop("lr")
    r["optimizer"].pop("weight_decay")
    return json.dumps([cell.data, r], sort_keys=True)


CPU_BUDGET = 256 << 20  # bytes: on CPU a pack pays off while its working set stays near the caches
CPU_MAX_MEMBERS = 32  # measured sweet spot for mlp [64] on 2 cores (benchmarks/README.md)


def default_budget(device: torch.device) -> int:
    """GPU: 60 % of free memory. CPU: cache-sized (stacking members only saves per-step overhead), but
    never below one member per thread (``cpu_members``)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.6)
    return CPU_BUDGET


def cpu_members(member_bytes: int) -> int:
    """At least one member per intra-op thread where memory allows (an eighth of RAM): each shard then
    runs on one thread with all cores busy (for conv nets faster than one member on all threads, and
    the same bits as any other pack: a lone member's convolution gradients run on one thread)."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 8 << 30
    return max(1, min(torch.get_num_threads(), ram // 8 // member_bytes))


def make_packs(cells: list[Cell], max_members: int | None = None, budget: int | None = None,
               states: dict[str, CellState] | None = None) -> list[Pack]:
    """Cells that can train together, K per pack from a memory budget; cells resuming from a checkpoint
    pack with others resuming from the same point (epoch, and step within the next)."""
    states = states or {}
    groups: dict[tuple, list[Cell]] = {}
    for c in cells:
        at = (states[c.hash].epoch, states[c.hash].inner) if c.hash in states else (0, 0)
        groups.setdefault((pack_key(c), at), []).append(c)
    packs = []
    for members in groups.values():
        recipe = members[0].recipe
        k = max_members
        if k is None:
            device = resolve_device(recipe.device)
            per = max(1, member_bytes(recipe, get_spec(members[0].data)))
            k = max(1, (budget or default_budget(device)) // per)
            k = min(CPU_MAX_MEMBERS, max(k, cpu_members(per))) if device.type == "cpu" else min(256, k)
        n = -(-len(members) // k)  # packs needed; cells spread evenly over them (33 cells: 17 + 16, not 32 + 1)
        bounds = [round(i * len(members) / n) for i in range(n + 1)]
        for a, b in zip(bounds, bounds[1:]):
            chunk = members[a:b]
            packs.append(Pack(recipe, chunk, {c.hash: states[c.hash] for c in chunk if c.hash in states}, k))
    return packs


def split_by(packs: list[Pack]) -> list[str]:
    """Why each pack is its own: the recipe fields whose values differ between packs (what one population
    cannot mix: architecture, batch size, optimiser settings other than lr and weight decay, ...), the
    epoch its cells resume from, or the size limit on a pack."""
    def flat(d, prefix=""):
        out = {}
        for k, v in d.items():
            out |= flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": json.dumps(v)}
        return out

    keys = []
    for p in packs:
        data, recipe = json.loads(pack_key(p.cells[0]))
        recipe.pop("model")
        keys.append(flat(recipe) | {"model": p.recipe.model.label(), "data": data})
    fields = {f for key in keys for f in key}
    differing = sorted(f for f in fields if len({key.get(f) for key in keys}) > 1)
    shapes = [(json.dumps(key, sort_keys=True), p.start) for p, key in zip(packs, keys)]
    count = Counter(shapes)
    reasons = []
    for p, key, shape in zip(packs, keys, shapes):
        why = [f"{f}={key.get(f, '—')}" for f in differing]
        if p.start:
            why.append(f"resumes at epoch {p.start}")
        same = count[shape]
        if same > 1:
            why.append(f"one of {same} packs of the same shape: at most {p.limit} members per pack")
        reasons.append("; ".join(why))
    return reasons
