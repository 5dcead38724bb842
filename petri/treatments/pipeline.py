"""Applying each member's treatments to a pack's batches, batched over members.

Reading comes first: on the training split, a member's leading crop and flip are done by the
read of its images from the data set (``rows.Reader``). Then two mechanisms, both per split:

1. **Folded static prefix.** Leading treatments that are per-pixel affine maps
   (invert, window_keep / window_drop, standardize) or fixed pixel permutations
   (permute_pixels) are composed, per member, into one scale and shift
   ``[K, 1, C, H, W]`` applied in the uint8 → [0, 1] conversion (a copy, a
   multiply, an add: nothing beyond what every batch needs), followed by at most
   one pixel permutation: a gather, or nothing at all when the model absorbs it
   (a dense first layer takes the permutation into its weights' rows once).
2. **Grouped tail.** The remaining image treatments run per *group*: members
   whose tails have the same treatment types in the same order. Their states
   are stacked and each treatment runs once on ``[G, B, C, H, W]``.

Label treatments (label_noise) transform the labels of a whole epoch at once.
"""

from __future__ import annotations

import math
from collections import Counter

import torch

from ..rng import derive_seed, seed_of
from .base import Context, Treatment
from .pixels import PermutePixels
from .rows import Reader, leading_reads

SAMPLE = 2048  # training images used for data-dependent state (standardize: auto)


def treatment_key(seed: int, t: Treatment, occurrence: int) -> int:
    """A member's key for one treatment: its seed and the treatment's name, not its position,
    so [invert, permute_pixels] and [permute_pixels] use the same permutation for the same seed."""
    return derive_seed(seed, "treatment", t.name, occurrence)


class _Group:
    """Members sharing a sequence of treatment types; per-member states stacked on axis 0."""

    def __init__(self, members: list[int], steps: list[list[Treatment]], keys: list[list[int]],
                 states: list[list[dict]], K: int, device):
        self.all = members == list(range(K))  # covers the whole pack in order: no gather needed
        self.members = torch.tensor(members, device=device)
        self.steps = steps  # [member][step]
        self.keys = [torch.tensor([k[i] for k in keys], dtype=torch.int64) for i in range(len(steps[0]))]  # CPU: hashed on the host
        self.states = [{n: torch.stack([s[i][n] for s in states]) for n in states[0][i]}
                       for i in range(len(steps[0]))]

    def run(self, i: int, x, idx, epoch, labels: bool = False):
        """Step i on x [G, B, ...]; members whose stateless parameters differ run separately."""
        ts = [s[i] for s in self.steps]

        def call(t, x, idx, st, keys):
            return t.apply_labels(x, idx, st) if labels else t.apply(x, idx, st, keys, epoch)

        if all(t == ts[0] for t in ts) or type(ts[0]).state is not Treatment.state:
            return call(ts[0], x, idx, self.states[i], self.keys[i])
        out = x.clone()
        for t in {t.model_dump_json(): t for t in ts}.values():
            rows = [j for j, s in enumerate(ts) if s == t]
            sel = torch.tensor(rows, device=x.device)
            out[sel] = call(t, x[sel], idx[sel], {n: v[sel] for n, v in self.states[i].items()}, self.keys[i][rows])
        return out


class Pipeline:
    """The treatments of K members for one data set.

    ``reader_cache``: the pack's cache of padded data-set copies; given, a member's leading crop and
    flip on the training split are done by ``reader`` (see ``rows``), which then must read the
    training batches. ``absorb_order``: the model can absorb a fixed reordering of its input pixels (its first
    parameter layer is dense). A member's composed permutation, when it is the same for train and
    test, is then not applied to the images but listed in ``absorbed`` for the model to take into
    its first layer's weights: a gather of every pixel per step becomes a one-off reindexing.
    """

    def __init__(self, treatments: list[list[Treatment]], seeds: list[int], shape, n_classes: int,
                 train_x: torch.Tensor, train_y: torch.Tensor, device, absorb_order: bool = False,
                 reader_cache: dict | None = None):
        self.K, self.device, self.shape = len(seeds), device, tuple(shape)
        sample = train_x[:SAMPLE].to(device) * (1.0 / 255)
        folds: dict[str, list] = {}  # split -> per member (scale, shift, perm, image tail)
        labels: dict[tuple, list] = {}
        leads: list[list] = []  # per member: the leading crop / flip that reading the images does
        for split in ("train", "test"):
            folds[split] = []
            for k, ts in enumerate(treatments):
                active = [t for t in ts if t.acts_on(split)]
                keys, states = self._states(active, seed_of(seeds[k], "augment"), shape, n_classes, sample, train_y)
                steps = list(zip(active, keys, states))
                image = [s for s in steps if not s[0].on_labels]
                if split == "train":
                    n = leading_reads(image) if reader_cache is not None else 0
                    leads.append([(t, key) for t, key, _ in image[:n]])
                    image = image[n:]
                    lab = [s for s in steps if s[0].on_labels]
                    labels.setdefault(tuple(type(t).__name__ for t, _, _ in lab), []).append((k, lab))
                folds[split].append(self._fold(image))
        self.absorbed: dict[int, torch.Tensor] = {}  # member -> pixel order its model takes in (see above)
        for k in range(self.K):
            perms = [folds[split][k][2] for split in ("train", "test")]
            if absorb_order and perms[0] is not None and perms[1] is not None and torch.equal(*perms):
                self.absorbed[k] = perms[0]
        self.scale: dict[str, torch.Tensor | float] = {}
        self.shift: dict[str, torch.Tensor | None] = {}
        self.image_groups: dict[str, list[_Group]] = {}
        for split in ("train", "test"):
            tails: dict[tuple, list] = {}
            for k, (_, _, perm, tail) in enumerate(folds[split]):
                if perm is not None and k not in self.absorbed:  # the composed permutation: one gather
                    tail = [(PermutePixels(), 0, {"perm": perm}), *tail]
                tails.setdefault(tuple(type(t).__name__ for t, _, _ in tail), []).append((k, tail))
            scale = torch.stack([f[0] for f in folds[split]]).view(self.K, 1, *shape)
            shift = torch.stack([f[1] for f in folds[split]]).view(self.K, 1, *shape)
            folded = bool((scale != 1.0 / 255).any() or (shift != 0).any())
            self.scale[split] = scale if folded else 1.0 / 255
            self.shift[split] = shift if bool((shift != 0).any()) else None
            self.image_groups[split] = [self._group(v) for s, v in tails.items() if s]
        self.label_groups = [self._group(v) for s, v in labels.items() if s]
        # Training batches must come from here (their leading crop / flip is done by the read).
        self.reader = Reader(train_x, leads, {} if reader_cache is None else reader_cache)

    def _fold(self, steps):
        """A member's leading affine and permutation treatments, composed: (scale, shift) per pixel
        [C, H*W] applied to the uint8 pixels, then the pixel order ``perm`` [H*W] (None: unchanged),
        and the remaining image treatments."""
        C = self.shape[0]
        scale = torch.full((C, math.prod(self.shape[1:])), 1.0 / 255, device=self.device)
        shift, perm = torch.zeros_like(scale), None
        for n, (t, key, st) in enumerate(steps):
            q = t.permutation(st)
            if q is not None:
                perm = q if perm is None else perm[q]  # x[perm][q] == x[perm[q]]
                continue
            aff = t.affine(st)
            if aff is None:
                return scale, shift, perm, steps[n:]
            a, b = (torch.as_tensor(v, dtype=scale.dtype, device=self.device).expand(self.shape).reshape(scale.shape)
                    for v in aff)
            if perm is not None:  # it acts on permuted pixels: pixel i there is pixel perm[i] before
                a, b = torch.empty_like(a).index_copy_(1, perm, a), torch.empty_like(b).index_copy_(1, perm, b)
            scale = scale * a
            shift = shift * a + b
        return scale, shift, perm, []

    def _states(self, active, seed, shape, n_classes, sample, train_y):
        keys, states, seen, x = [], [], Counter(), sample
        for t in active:
            keys.append(treatment_key(seed, t, seen[t.name]))
            seen[t.name] += 1
            states.append(t.state(keys[-1], Context(tuple(shape), n_classes, train_y, x, torch.device(self.device))))
            if not t.on_labels:  # data-dependent state sees the images as the preceding treatments left them
                one = {n: v[None] for n, v in states[-1].items()}
                x = t.apply(x[None].clone(), torch.arange(len(x), device=x.device)[None], one,
                            torch.tensor([keys[-1]]), 0)[0]
        return keys, states

    def _group(self, entries) -> _Group:
        members = [k for k, _ in entries]
        return _Group(members, [[t for t, _, _ in e] for _, e in entries], [[key for _, key, _ in e] for _, e in entries],
                      [[s for _, _, s in e] for _, e in entries], self.K, self.device)

    def images(self, x: torch.Tensor, idx: torch.Tensor, split: str, epoch: int,
               buffer: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 [K, B, C, H, W] (or [B, C, H, W] shared by all members) -> float [K, B, C, H, W].

        ``buffer``: a float tensor with ``x``'s shape (or elements) to convert into, instead of a fresh
        allocation (the loop reuses one per shard: fresh multi-MB allocations cost page faults).
        """
        if x.dim() == len(self.shape) + 1:  # one batch for every member (evaluation)
            x, idx = x.unsqueeze(0), idx.unsqueeze(0).expand(self.K, -1)
        scale, shift = self.scale[split], self.shift[split]
        # Convert, then scale in place: a mixed-dtype multiply (uint8 * float) is 2-4x slower, even into a buffer.
        out = x.float() if buffer is None else buffer.view(x.shape).copy_(x)
        if isinstance(scale, torch.Tensor) and out.shape[0] != self.K:  # per-member scale: [K, 1, C, H, W]
            out = out.expand(self.K, *out.shape[1:]).contiguous()
        out.mul_(scale)  # conversion to [0, 1] and the folded treatments
        if shift is not None:  # only with a per-member scale
            out.add_(shift)  # two exact ops (no fused multiply-add): identical in every SIMD lane
        if out.shape[0] != self.K:
            out = out.expand(self.K, *out.shape[1:])
        for g in self.image_groups[split]:
            if out.stride(0) == 0:
                out = out.contiguous()
            part, gidx = (out, idx) if g.all else (out[g.members], idx[g.members])
            for i in range(len(g.steps[0])):
                part = g.run(i, part, gidx, epoch)
            if g.all:
                out = part
            else:
                out[g.members] = part
        return out

    def labels(self, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Training labels [K, N] after label treatments (members without them pass through)."""
        for g in self.label_groups:
            part, gidx = (y, idx) if g.all else (y[g.members], idx[g.members])
            for i in range(len(g.steps[0])):
                part = g.run(i, part, gidx, 0, labels=True)
            if g.all:
                y = part
            else:
                y = y.clone()
                y[g.members] = part
        return y

    @property
    def groups(self) -> dict[str, list[_Group]]:
        """Tail groups per split (for inspection and tests)."""
        return self.image_groups
