"""The population training loop: K cells of one architecture trained as one.

Each member brings its own seed (initial weights, data order), treatments,
learning rate and weight decay. Its numbers do not depend on the other
members: the loss is a sum of per-member means, every random stream is keyed
by the member's seed, and a diverged or stopped member is frozen in place.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..data import Dataset
from ..models import build
from ..rng import derive_seed
from ..treatments.base import Treatment
from ..treatments.pipeline import Pipeline
from .early_stop import Stopper
from .loss import cross_entropy
from .optim import Optimizer, lr_factor
from .recipe import Recipe
from .splits import Split, make_splits


@dataclass
class Member:
    """One cell as the loop sees it."""

    seed: int
    treatments: list[Treatment] = field(default_factory=list)
    lr: float | None = None  # None: the recipe's
    weight_decay: float | None = None


@dataclass
class Result:
    status: str = "running"  # then done / stopped-early / diverged
    epochs: list[dict] = field(default_factory=list)  # one metrics dict per finished epoch


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@torch.no_grad()
def evaluate(net, pipe: Pipeline, split: Split, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss [K] and accuracy [K] on a split (evaluation-time treatments, BN in eval mode)."""
    loss_sum = torch.zeros(net.K, device=net.device)
    hits = torch.zeros(net.K, device=net.device)
    for i in range(0, len(split.y), batch_size):
        x = pipe.images(split.x[i:i + batch_size], split.ids[i:i + batch_size], "test", 0)
        y = split.y[i:i + batch_size].expand(net.K, -1)
        loss, _, correct = cross_entropy(net.forward(x, train=False), y, with_grad=False)
        loss_sum += loss * len(y[0])
        hits += correct
    n = len(split.y)
    return loss_sum / n, hits / n


GATHER_BYTES = 4 << 20  # training images are gathered several steps at a time, up to this many bytes


def _batches(flat_x: torch.Tensor, order: torch.Tensor, B: int, buf: torch.Tensor):
    """Each step's images [K, B, F] (the last batch may be shorter), in the epoch's order [K, N].

    Rows are gathered for several steps at once into ``buf``: one index_select of thousands of rows
    costs a fraction of what many 100-row ones do. Each yielded batch is a view, valid until the next.
    """
    (K, N), F = order.shape, flat_x.shape[1]
    full = N // B
    per_gather = max(1, buf.numel() // (K * B * F))
    step_major = order[:, :full * B].reshape(K, full, B).transpose(0, 1)  # [steps, K, B]
    for s0 in range(0, full, per_gather):
        idx = step_major[s0:s0 + per_gather].reshape(-1)
        yield from torch.index_select(flat_x, 0, idx, out=buf[:idx.numel() * F].view(-1, F)).view(-1, K, B, F)
    if N > full * B:
        idx = order[:, full * B:].reshape(-1)
        yield torch.index_select(flat_x, 0, idx, out=buf[:idx.numel() * F].view(-1, F)).view(K, -1, F)


@torch.no_grad()
def train_pack(data: Dataset, recipe: Recipe, members: list[Member],
               on_epoch: Callable[[int, list[Result]], None] | None = None) -> list[Result]:
    device = resolve_device(recipe.device)
    train, val, test = make_splits(data, recipe, device)
    seeds = [m.seed for m in members]
    K, N, B = len(members), len(train.y), recipe.batch_size
    net = build(recipe.model, data.spec.shape, len(data.spec.classes), seeds, device)
    pipe = Pipeline([m.treatments for m in members], seeds, data.spec.shape, len(data.spec.classes),
                    train.x, data.train_y.to(device), device)
    opt = Optimizer(recipe.optimizer, net.theta,
                    [m.lr if m.lr is not None else recipe.optimizer.lr for m in members],
                    [m.weight_decay if m.weight_decay is not None else recipe.optimizer.weight_decay for m in members])
    orders = [torch.Generator().manual_seed(derive_seed(s, "order")) for s in seeds]
    stoppers = [Stopper(recipe.early_stopping) if recipe.early_stopping else None for _ in members]
    results = [Result() for _ in members]
    healthy = torch.ones(K, dtype=torch.bool, device=device)  # loss finite and below diverge_loss so far
    live = (True,) * K  # members still training: not stopped early, not diverged
    steps = math.ceil(N / B)
    step = 0

    flat_x = train.x.reshape(N, -1)  # [N, C*H*W] uint8 (4× less memory traffic than float): index_select rows
    raw_buf = torch.empty(max(K * B * flat_x.shape[1], GATHER_BYTES), dtype=torch.uint8, device=device)
    x_buf = torch.empty(K * B * flat_x.shape[1], device=device)  # batch buffers, reused every step

    for epoch in range(1, recipe.epochs + 1):
        order = torch.stack([torch.randperm(N, generator=g) for g in orders]).to(device)  # [K, N]
        flat_order = order.reshape(-1)  # index_select: far faster than 2-D advanced indexing
        ids_epoch = train.ids.index_select(0, flat_order).view(K, N)  # indices in the full split (treatment keys)
        y_epoch = pipe.labels(train.y.index_select(0, flat_order).view(K, N), ids_epoch)  # [K, N] after label treatments
        loss_sum = torch.zeros(K, device=device)
        hits = torch.zeros(K, dtype=torch.int64, device=device)
        t0 = time.perf_counter()
        for s, raw in enumerate(_batches(flat_x, order, B, raw_buf)):  # raw: uint8 [K, B, C*H*W]
            ids, y = ids_epoch[:, s * B:(s + 1) * B], y_epoch[:, s * B:(s + 1) * B]
            shape = (*raw.shape[:2], *data.spec.shape)  # the last batch of an epoch may be short
            x = pipe.images(raw.view(shape), ids, "train", epoch, x_buf[:raw.numel()].view(shape))  # float
            logits = net.forward(x, train=True)  # [K, B, classes]
            loss, g_logits, correct = cross_entropy(logits, y)
            # Exploded, or NaN (NaN compares False)? Noted here, acted on at the epoch's end (no sync per
            # step): a diverged member's NaNs stay in its own rows, and its last good epoch is what counts.
            healthy &= loss <= recipe.diverge_loss
            net.backward(g_logits)
            opt.step(net.theta, net.grad, live, lr_factor(recipe.schedule, step, steps, steps * recipe.epochs))
            loss_sum += loss
            hits += correct
            step += 1
        alive = healthy.tolist()  # one sync per epoch; diverged members are frozen from here on
        train_seconds = time.perf_counter() - t0
        test_loss, test_acc = evaluate(net, pipe, test, recipe.eval_batch_size)
        val_loss, val_acc = evaluate(net, pipe, val, recipe.eval_batch_size) if val else (None, None)
        seconds = time.perf_counter() - t0
        for k, r in enumerate(results):
            if r.status != "running":
                continue
            if not alive[k]:
                r.status = "diverged"
                continue
            m = {"epoch": epoch,
                 "train_loss": float(loss_sum[k]) / steps, "train_acc": float(hits[k]) / N,
                 "val_loss": float(val_loss[k]) if val else None, "val_acc": float(val_acc[k]) if val else None,
                 "test_loss": float(test_loss[k]), "test_acc": float(test_acc[k]),
                 "images_per_s": N / train_seconds, "seconds": seconds, "pack_size": K}
            r.epochs.append(m)
            if stoppers[k] and stoppers[k].update(m):
                r.status = "stopped-early"
        live = tuple(r.status == "running" for r in results)
        if on_epoch:
            on_epoch(epoch, results)
        if not any(live):
            break
    for r in results:
        if r.status == "running":
            r.status = "done"
    return results
