"""One shard of a pack: some of its members, trained as one population on one thread (``loop.py``
splits a pack into shards and drives them epoch by epoch).

Reading order: ``Shard.train_epoch`` is the training loop proper (batches -> treatments -> forward ->
loss -> backward -> optimiser step); ``Shard.end_epoch`` evaluates (``evaluate``) and applies
divergence and early stopping.
"""

from __future__ import annotations

import math
import time
from itertools import islice

import numpy as np
import torch

from ..data import Dataset
from ..machine import machine
from ..rng import derive_seed, seed_of
from ..treatments.pipeline import Pipeline
from .early_stop import Stopper
from .loss import cross_entropy
from .metrics import final_metrics
from .optim import Optimizer
from .recipe import Recipe
from .splits import Split
from .state import CellState, capture, cpu_copies, restore
from .member import Member, Result


def compact_classes(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Classes [n] (predicted or true) as kept per example: compact CPU integers, one byte an image
    (int16 beyond 256 classes)."""
    return y.to("cpu", torch.uint8 if n_classes <= 256 else torch.int16).contiguous()


TRAIN_EVAL = 2000  # training images evaluated in eval mode at each epoch's end: the first of the split, every cell
UNTESTED = ("test_loss", "test_acc", "train_eval_loss", "train_eval_acc")  # None in an epoch not evaluated


def evaluate(net, pipe: Pipeline, split: Split, batch_size: int, logits: list | None = None,
             buffer: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss [K] and accuracy [K] on a split (evaluation-time treatments, BN in eval mode, no
    dropout); the logits [K, b, C] of each batch are appended to ``logits`` if given. ``buffer``: at
    least ``batch_size`` images' floats to convert each batch into (fresh multi-MB tensors cost page faults).

    Inference mode (no autograd state), the members at once; on CPU a network's image layers run member
    by member in channels-last layout (``Network.forward``). A member computes what it computes alone."""
    with torch.inference_mode():
        loss_sum = torch.zeros(net.K, device=net.device)
        hits = torch.zeros(net.K, device=net.device)
        for i in range(0, len(split.y), batch_size):
            images = split.x[i:i + batch_size]
            into = None if buffer is None else buffer[:images.numel()]
            x = pipe.images(images, split.ids[i:i + batch_size], "test", 0, into)
            y = split.y[i:i + batch_size].expand(net.K, -1)
            out = net.forward(x, train=False)
            if logits is not None:
                logits.append(out.clone())
            loss, _, correct = cross_entropy(out, y, with_grad=False)
            loss_sum += loss * len(y[0])
            hits += correct
        n = len(split.y)
        return loss_sum / n, hits / n


READ_BYTES = 4 << 20  # training images are read several steps at a time, up to this many bytes


def _batches(reader, order: torch.Tensor, ids: torch.Tensor, epoch: int, B: int, buf: torch.Tensor, start: int = 0):
    """Each step's images from step ``start`` on, uint8 [K, B, C, H, W] (the last batch may be shorter),
    in the epoch's order ``order [K, N]`` (``ids``: the same images' indices in the full split), read by
    the pipeline's reader.

    Images are read for several steps at once into ``buf``: one index_select of thousands of rows
    costs a fraction of what many 100-row ones do. Each yielded batch is a view, valid until the next.
    """
    K, N = order.shape
    full = N // B
    per_read = max(1, buf.numel() // (K * B * reader.image_bytes))
    step_major = [t[:, :full * B].reshape(K, full, B).transpose(0, 1) for t in (order, ids)]  # [steps, K, B]
    for s0 in range(start, full, per_read):
        pos, idx = (t[s0:s0 + per_read] for t in step_major)
        yield from reader.read(pos, idx, epoch, buf).unflatten(0, (-1, K, B))
    if N > full * B and start <= full:
        yield reader.read(order[None, :, full * B:], ids[None, :, full * B:], epoch, buf).unflatten(0, (K, -1))


def _f32(x) -> float:
    """A float32 result as the shortest decimal that is that float32 (0.9452, not 0.9452000260353088):
    what the ledger, the CSVs and the DataFrames show, without digits the computation never had."""
    return float(str(np.float32(float(x))))


def _sample(pool: int, n: int, replace: bool, seed: int) -> torch.Tensor:
    """A member's training images: ``n`` positions in the training split of ``pool`` images, drawn from
    its ``data`` seed alone (with replacement: a bootstrap sample)."""
    g = torch.Generator().manual_seed(derive_seed(seed, "data"))
    return torch.randint(pool, (n,), generator=g) if replace else torch.randperm(pool, generator=g)[:n]


@torch.no_grad()
def flip_bit(row: torch.Tensor, seed: int, bit: int) -> int:
    """Flip bit ``bit`` of one non-zero float32 in ``row`` (a member's parameters, in place), the one
    drawn from ``seed``; returns its index in the row."""
    nonzero = row.nonzero().view(-1).cpu()
    g = torch.Generator().manual_seed(derive_seed(seed, "perturb"))
    j = int(nonzero[torch.randint(len(nonzero), (1,), generator=g)])
    word = row[j:j + 1].view(torch.int32)
    word ^= (1 << bit) if bit < 31 else -(1 << 31)  # bit 31 is int32's sign bit
    return j


class Shard:
    """Some of a pack's members, trained as one population: its own network, optimiser, treatments
    and buffers; the pack's splits are shared (read only)."""

    def __init__(self, data: Dataset, recipe: Recipe, members: list[Member], results: list[Result],
                 train: Split, val: Split | None, test: Split, device: torch.device, pack_size: int,
                 shared: dict):
        self.recipe, self.results, self.train, self.val, self.test = recipe, results, train, val, test
        self.pack_size = pack_size
        self.machine = machine(device)  # what computes this shard's numbers (recorded with each epoch)
        seeds = [m.seed for m in members]
        sample = recipe.data_sample
        self.K, self.N = len(members), (sample.size if sample and sample.size else len(train.y))
        self.steps = math.ceil(self.N / recipe.batch_size)  # optimiser steps per epoch
        self.samples = [_sample(len(train.y), self.N, sample.replace, seed_of(s, "data"))
                        for s in seeds] if sample else None  # each member's training images [N]
        self.n_classes = len(data.spec.classes)
        self.train_eval = Split(*(t[:TRAIN_EVAL] for t in (train.x, train.y, train.ids)))
        self.net = recipe.model.build(data.spec.shape, len(data.spec.classes), seeds, device)
        if recipe.perturb_init:  # before anything reorders the weights: the same logical weight in any pack
            for k, s in enumerate(seeds):
                flip_bit(self.net.theta[k, :self.net.P], seed_of(s, "perturb"), recipe.perturb_init.bit)
        self.pipe = Pipeline([m.treatments for m in members], seeds, data.spec.shape, len(data.spec.classes),
                             train.x, data.train_y.to(device), device, absorb_order=self.net.absorbs_input_order,
                             reader_cache=shared)
        for k, order in self.pipe.absorbed.items():  # fixed pixel permutations, taken into the first layer
            self.net.absorb_input_order(k, order)
        self.lrs = [m.lr if m.lr is not None else recipe.optimizer.lr for m in members]
        self.own_metrics = [m.metrics for m in members]
        self.opt = Optimizer(recipe.optimizer, self.net.theta, self.lrs,
                             [m.weight_decay if m.weight_decay is not None else recipe.optimizer.weight_decay
                              for m in members])
        self.orders = [torch.Generator().manual_seed(derive_seed(seed_of(s, "order"), "order")) for s in seeds]
        self.stoppers = [Stopper(recipe.early_stopping) if recipe.early_stopping else None for _ in members]
        self.live = (True,) * self.K  # members still training: not stopped early, not diverged
        self.step = 0
        self.at = 0  # steps of the current epoch taken
        self.inner = 0  # steps of the next epoch already taken (resumed from a checkpoint within it)
        self.partial: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # ... and each member's losses, hits
        self.best: list[tuple[int, dict] | None] = [None] * self.K  # (epoch, weights) with early stopping
        self.best_pred: list[dict | None] = [None] * self.K  # ... and that epoch's predicted classes
        for k, m in enumerate(members):
            if m.state is not None:
                self._resume(k, m.state)
        self.cancelled = False  # set by train_pack when the pack is abandoned (Ctrl-C, another shard failed)
        # Training images stay uint8 until a batch is read (4× less memory traffic than float).
        self.raw_buf = torch.empty(max(self.K * recipe.batch_size * self.pipe.reader.image_bytes, READ_BYTES),
                                   dtype=torch.uint8, device=device)
        self.x_buf = torch.empty(self.K * recipe.batch_size * math.prod(data.spec.shape), device=device)  # reused
        self.eval_buf: torch.Tensor | None = None

    def _resume(self, k: int, state: CellState) -> None:
        """Member k exactly as it was after ``state.epoch`` epochs (and ``state.inner`` steps of the next)."""
        tensors = dict(state.tensors)
        if state.inner:
            self.inner = state.inner
            self.partial[k] = (tensors.pop("epoch.losses"), tensors.pop("epoch.hits"))
        restore(self.net, self.opt, k, {"order": self.orders[k]}, tensors)
        self.step = state.step
        self.opt.steps.fill_(state.step)
        if self.stoppers[k] and state.stopper:
            self.stoppers[k].load(state.stopper)
        if state.best is not None:
            self.best[k] = (state.best_epoch, state.best)
        self.best_pred[k] = state.best_predictions

    def _lr_factor(self, step: int) -> float:
        """The schedule's multiplier of the base rate at optimiser step ``step`` (0-based)."""
        return self.recipe.schedule.factor(step, self.steps, self.steps * self.recipe.epochs)

    def begin_epoch(self, epoch: int) -> None:
        self.loop, self.epoch_over = self.train_epoch(epoch), False

    def advance(self, n: int | None) -> None:
        """Train up to ``n`` more steps of the epoch (all that are left with None)."""
        taken = sum(1 for _ in islice(self.loop, n))
        self.epoch_over = n is None or taken < n

    @torch.no_grad()  # grad mode is per thread: shards may run on worker threads
    def train_epoch(self, epoch: int):
        """The training loop proper: a generator, one step per ``next`` (``train_pack`` may pause
        between two steps to checkpoint a long epoch)."""
        if not any(self.live):
            return
        K, N, B, pipe, train = self.K, self.N, self.recipe.batch_size, self.pipe, self.train
        self.order_states = [g.get_state() for g in self.orders]  # a checkpoint within the epoch keeps these
        order = torch.stack([torch.randperm(N, generator=g) for g in self.orders])  # [K, N]
        if self.samples is not None:  # positions in each member's own sample -> positions in the split
            order = torch.stack([s.index_select(0, o) for s, o in zip(self.samples, order)])
        order = order.to(self.x_buf.device)
        flat_order = order.reshape(-1)  # index_select: far faster than 2-D advanced indexing
        ids_epoch = train.ids.index_select(0, flat_order).view(K, N)  # indices in the full split (treatment keys)
        y_epoch = pipe.labels(train.y.index_select(0, flat_order).view(K, N), ids_epoch)  # after label treatments
        self.losses = torch.empty(K, self.steps, device=order.device)  # each step's batch loss per member
        self.hits = torch.zeros(K, dtype=torch.int64, device=order.device)
        start, self.inner = self.inner, 0  # resumed within this epoch: its first steps are behind it
        for k, (losses, hits) in self.partial.items():
            self.losses[k, :start], self.hits[k] = losses, hits[0]
        self.partial, self.at, self.epoch_images = {}, start, max(0, N - start * B)  # images this call trains
        batches = _batches(pipe.reader, order, ids_epoch, epoch, B, self.raw_buf, start)  # uint8 [K, B, C, H, W]
        for s, raw in enumerate(batches, start):
            if self.cancelled:
                return
            ids, y = ids_epoch[:, s * B:(s + 1) * B], y_epoch[:, s * B:(s + 1) * B]
            x = pipe.images(raw, ids, "train", epoch, self.x_buf[:raw.numel()].view(raw.shape))  # float
            logits = self.net.forward(x, train=True)  # [K, B, classes]
            loss, g_logits, correct = cross_entropy(logits, y)
            self.net.backward(g_logits)
            self.opt.step(self.net.theta, self.net.grad, self.live, self._lr_factor(self.step))
            self.losses[:, s] = loss  # divergence is judged from these at the epoch's end (no sync per step)
            self.hits += correct
            self.step += 1
            self.at = s + 1
            yield

    def _evaluate(self, split: Split, logits: list | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.eval_buf is None:  # kept for the pack's life: one batch of images shared by the members
            self.eval_buf = torch.empty(self.recipe.eval_batch_size * math.prod(split.x.shape[1:]),
                                        device=self.x_buf.device)
        return evaluate(self.net, self.pipe, split, self.recipe.eval_batch_size, logits, self.eval_buf)

    @torch.no_grad()
    def end_epoch(self, epoch: int, t0: float, train_seconds: float) -> None:
        """Evaluate, record each running member's epoch, and apply divergence and early stopping.

        The validation split (what early stopping monitors) is evaluated every epoch; the test split and
        the first ``TRAIN_EVAL`` training images every ``recipe.eval_every`` epochs and at a member's last
        and best epochs (early stopping's). A member's other epochs record no test numbers (None); which
        epochs a member evaluates depends on its own course only, never on its pack's."""
        if not any(self.live):
            return
        recipe, N, val, es = self.recipe, self.N, self.val, self.recipe.early_stopping
        # Exploded, or NaN (NaN compares False), at any step? Then diverged: frozen from here on, its NaNs
        # stay in its own rows, and its last good epoch is what counts. One host sync per epoch.
        self.alive = alive = (self.losses <= recipe.diverge_loss).all(dim=1).tolist()
        val_logits: list[torch.Tensor] = []
        val_loss, val_acc = self._evaluate(val, val_logits) if val else (None, None)
        scheduled = epoch % recipe.eval_every == 0 or epoch == recipe.epochs or bool(es and es.monitor.startswith("test"))
        tested: dict | None = None

        def test():  # the test split (logits kept for members that finish) and the training images seen as test ones
            logits: list[torch.Tensor] = []
            # The training images as the test images are seen (eval mode, no augmentation, true labels), so that
            # train and test accuracy compare: the running mean over the epoch has dropout on and lags the weights.
            return {"test": self._evaluate(self.test, logits), "logits": logits, "fit": self._evaluate(self.train_eval)}

        if scheduled:
            tested = test()
        factor = self._lr_factor(self.step - 1)  # the epoch's last step's
        rows: dict[int, dict] = {}
        for k, r in enumerate(self.results):
            if r.status != "running":
                continue
            if not alive[k]:
                r.status = "diverged"
                continue
            m = {"epoch": epoch,
                 "train_loss": _f32(float(self.losses[k].sum()) / self.losses.shape[1]),
                 "train_acc": float(self.hits[k]) / N,
                 "val_loss": _f32(val_loss[k]) if val else None, "val_acc": _f32(val_acc[k]) if val else None,
                 **(self._tested(tested, k) if tested else dict.fromkeys(UNTESTED)),
                 "images_per_s": self.epoch_images / train_seconds, "seconds": None, "pack_size": self.pack_size,
                 "machine": self.machine, "lr": self.lrs[k] * factor,
                 "weight_norm": float(self.net.theta[k, :self.net.P].norm())}  # (train.metrics.EPOCH_METRICS)
            if self.stoppers[k] and self.stoppers[k].update(m):
                r.status = "stopped-early"
            elif epoch == recipe.epochs:
                r.status = "done"  # the epoch budget is spent
            rows[k] = m
        best = {k for k in rows if self.stoppers[k] and self.stoppers[k].since_best == 0}
        due = {k for k in rows if scheduled or k in best or self.results[k].status != "running"}
        if due and tested is None:
            tested = test()
        seconds = time.perf_counter() - t0
        for k, m in rows.items():
            r = self.results[k]
            m |= self._tested(tested, k) if k in due else dict.fromkeys(UNTESTED)
            m["seconds"] = seconds
            r.epochs.append(m)
            if k in due:  # this epoch's predicted classes: kept at a new best epoch and at the last
                preds = {"test": self._classes(torch.cat([c[k] for c in tested["logits"]]))}
                if val_logits:
                    preds["val"] = self._classes(torch.cat([c[k] for c in val_logits]))
                if k in best:
                    self.best_pred[k] = {n: t.clone() for n, t in preds.items()}  # (not the final's tensors)
            if r.status != "running":  # finished: the numbers of its test logits (calibration, per class, users')
                r.final = final_metrics(torch.cat([c[k] for c in tested["logits"]]), self.test.y, self.n_classes,
                                        self.own_metrics[k])
                r.predictions = {**preds, "test.labels": self._classes(self.test.y, labels=True),
                                 **({"val.labels": self._classes(val.y, labels=True)} if val_logits else {}),
                                 **{f"best.{n}": t for n, t in (self.best_pred[k] or {}).items()}}

    def _classes(self, x: torch.Tensor, labels: bool = False) -> torch.Tensor:
        return compact_classes(x if labels else x.argmax(-1), self.n_classes)

    @staticmethod
    def _tested(tested: dict, k: int) -> dict:
        (test_loss, test_acc), (fit_loss, fit_acc) = tested["test"], tested["fit"]
        return {"test_loss": _f32(test_loss[k]), "test_acc": _f32(test_acc[k]),
                "train_eval_loss": _f32(fit_loss[k]), "train_eval_acc": _f32(fit_acc[k])}

    @torch.no_grad()
    def keep_states(self, epoch: int) -> None:
        """After ``end_epoch``: each member's state for a checkpoint, a new best epoch's weights, a
        finished member's final weights (see ``_keep``)."""
        if not any(self.live):
            return
        for k, r in enumerate(self.results):
            recorded = bool(r.epochs) and r.epochs[-1]["epoch"] == epoch
            if recorded and self.stoppers[k] and self.stoppers[k].since_best == 0:  # a new best epoch
                self.best[k] = (epoch, cpu_copies(self.net.member_state(k)))
            if recorded or not self.alive[k]:
                self._keep(k, r, epoch)

    def close_epoch(self, epoch: int, seconds: dict[str, float]) -> None:
        """Each member that recorded ``epoch`` gets its share of the pack's ``seconds`` (training,
        evaluation, checkpoints; the pack's divided evenly over the members that recorded the epoch, so
        that a study's rows sum to its packs' time); then only running members go on."""
        for r in self.results:
            if r.epochs and r.epochs[-1]["epoch"] == epoch:
                r.epochs[-1] |= seconds
        self.live = tuple(r.status == "running" for r in self.results)

    def _keep(self, k: int, r: Result, epoch: int) -> None:
        """A running member's state (for a checkpoint); a finished one's final weights, and its best
        epoch's with early stopping. A diverged member keeps none (its last update was the bad one)."""
        best = self.best[k]
        if r.status == "running":
            r.state = self._state(k, epoch, self.orders[k])
        elif r.status in ("done", "stopped-early"):
            r.state, r.weights = None, cpu_copies(self.net.member_state(k))
            if best:
                r.best_epoch, r.best = best

    def keep_within(self, epoch: int) -> None:
        """Each running member's state ``self.at`` steps into ``epoch`` (a checkpoint of a long epoch):
        its order generator as the epoch began (a resume draws the epoch's order again), and the
        epoch's losses and hits so far."""
        for k, r in enumerate(self.results):
            if r.status == "running":
                order = torch.Generator()
                order.set_state(self.order_states[k])
                r.state = self._state(k, epoch - 1, order, self.at, {"epoch.losses": self.losses[k, :self.at],
                                                                     "epoch.hits": self.hits[k:k + 1]})

    def _state(self, k: int, epoch: int, order: torch.Generator, inner: int = 0, extra: dict | None = None
               ) -> CellState:
        best, stopper = self.best[k], self.stoppers[k]
        tensors = capture(self.net, self.opt, k, {"order": order}) | cpu_copies(extra or {})
        return CellState(epoch, self.step, tensors, stopper.state() if stopper else None, best[1] if best else None,
                         best[0] if best else None, inner=inner, best_predictions=self.best_pred[k])
