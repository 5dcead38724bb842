"""Applying each member's treatments to a pack's batches, batched over members.

Members whose treatment lists have the same *structure* for a split (the same
treatment types in the same order) form a group; their states are stacked
along a leading axis and each treatment runs once per group on
``[G, B, C, H, W]``. A pack of 400 window cells is one group: one multiply
per batch with a [400, H, W] mask stack.
"""

from __future__ import annotations

from collections import Counter

import torch

from ..rng import derive_seed
from .base import Context, Treatment

SAMPLE = 2048  # training images used for data-dependent state (standardize: auto)


def treatment_key(seed: int, t: Treatment, occurrence: int) -> int:
    """A member's key for one treatment: its seed and the treatment's name, not its position,
    so [invert, permute_pixels] and [permute_pixels] use the same permutation for the same seed."""
    return derive_seed(seed, "treatment", t.name, occurrence)


class _Group:
    def __init__(self, members: list[int], steps: list[Treatment], keys: list[list[int]], states: list[list[dict]], device):
        self.members = torch.tensor(members, device=device)
        self.all = None  # set by the pipeline when the group covers the whole pack in order
        self.steps = steps  # the treatments of the first member (same types as the others')
        self.member_steps = None
        self.keys = [torch.tensor([k[i] for k in keys], dtype=torch.int64, device=device) for i in range(len(steps))]
        self.states = [{n: torch.stack([s[i][n] for s in states]) for n in states[0][i]} for i in range(len(steps))]


class Pipeline:
    """The treatments of K members for one data set (train labels, image shape)."""

    def __init__(self, treatments: list[list[Treatment]], seeds: list[int], shape, n_classes: int,
                 train_x: torch.Tensor, train_y: torch.Tensor, device):
        self.K, self.device = len(seeds), device
        self.groups: dict[str, list[_Group]] = {}
        sample = train_x[:SAMPLE].to(device).float().div_(255)
        for split in ("train", "test"):
            by_structure: dict[tuple, list[int]] = {}
            for k, ts in enumerate(treatments):
                structure = tuple(type(t).__name__ for t in ts if t.acts_on(split))
                by_structure.setdefault(structure, []).append(k)
            groups = []
            for structure, members in by_structure.items():
                if not structure:
                    continue
                keys, states = [], []
                for k in members:
                    active = [t for t in treatments[k] if t.acts_on(split)]
                    seen: Counter = Counter()
                    mk, ms, x = [], [], sample
                    for t in active:
                        mk.append(treatment_key(seeds[k], t, seen[t.name]))
                        seen[t.name] += 1
                        ctx = Context(tuple(shape), n_classes, train_y, x, torch.device(device))
                        ms.append(t.state(mk[-1], ctx))
                        if not t.on_labels:
                            x = t.apply(x[None], torch.arange(len(x), device=device)[None], _one(ms[-1]),
                                        torch.tensor([mk[-1]], device=device), 0)[0]
                    keys.append(mk)
                    states.append(ms)
                g = _Group(members, active, keys, states, device)
                g.member_steps = [[t for t in treatments[k] if t.acts_on(split)] for k in members]
                g.all = len(by_structure) == 1 and members == list(range(self.K))
                groups.append(g)
            self.groups[split] = groups

    def images(self, x: torch.Tensor, idx: torch.Tensor, split: str, epoch: int) -> torch.Tensor:
        """uint8 [K, B, C, H, W] (or [B, ...] shared by all members) -> float [K, B, C, H, W] in petri's input scale."""
        if x.dim() == 4:
            x = x.unsqueeze(0).expand(self.K, *x.shape)
            idx = idx.unsqueeze(0).expand(self.K, -1)
        out = torch.mul(x, 1.0 / 255) if x.stride(0) != 0 else torch.mul(x[:1], 1.0 / 255).expand_as(x)
        for g in self.groups[split]:
            image_steps = [i for i, t in enumerate(g.steps) if not t.on_labels]
            if not image_steps:
                continue
            part = out if g.all else out[g.members]
            gidx = idx if g.all else idx[g.members]
            for i in image_steps:
                part = self._apply(g, i, part, gidx, epoch)
            if g.all:
                out = part
            else:
                out = out.contiguous() if out.stride(0) == 0 else out
                out[g.members] = part
        return out

    @staticmethod
    def _apply(g: _Group, i: int, x, idx, epoch):
        # Parameters that differ between members (a window's row/col) live in the stacked state;
        # parameters that shape the computation itself must agree, so split on them if they do not.
        steps = [ms[i] for ms in g.member_steps]
        if all(s == steps[0] for s in steps) or steps[0].state.__func__ is not Treatment.state:
            return steps[0].apply(x, idx, g.states[i], g.keys[i], epoch)
        out = torch.empty_like(x) if x.stride(0) != 0 else x.contiguous().clone()
        for t in {s.model_dump_json(): s for s in steps}.values():
            sel = torch.tensor([j for j, s in enumerate(steps) if s == t], device=x.device)
            out[sel] = t.apply(x[sel], idx[sel], {n: v[sel] for n, v in g.states[i].items()}, g.keys[i][sel], epoch)
        return out

    def labels(self, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Training labels [K, B] after label treatments (others pass through)."""
        for g in self.groups["train"]:
            for i, t in enumerate(g.steps):
                if t.on_labels:
                    if g.all:
                        y = t.apply_labels(y, idx, g.states[i])
                    else:
                        y = y.clone()
                        y[g.members] = t.apply_labels(y[g.members], idx[g.members], g.states[i])
        return y


def _one(state: dict) -> dict:
    return {n: v[None] for n, v in state.items()}
