"""The population training loop: K cells of one architecture trained as one.

Each member brings its own seed (initial weights, data order), treatments,
learning rate and weight decay. Its numbers do not depend on the other
members: the loss is a sum of per-member means, every random stream is keyed
by the member's seed, and a diverged or stopped member is frozen in place.

Reading order: ``train_pack`` (at the bottom) splits the pack into shards (one per CPU thread, one
on a GPU) and runs each epoch on all of them, checkpointing within long epochs (``_Within``); one
shard's epoch, the training loop proper, is ``shard.Shard``.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Callable

import torch

from ..data import Dataset
from .memory import working_set_bytes
from .recipe import Recipe
from .member import Member, Result  # noqa: F401 (re-exported: what the loop takes and gives)
from .shard import Shard
from .splits import make_splits


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


SHARD_BYTES = 8 << 20  # per shard: parameters, gradients, Adam moments and the float batch (cache-sized)


def shard_count(K: int, device: torch.device, member_bytes: int) -> int:
    """On CPU, a pack trains as shards spread over the intra-op threads, each shard's ops on one
    thread: threads then never touch each other's data, and a shard's working set stays near the
    caches (on two cores here, +25–65 % images/s against all ops split across both threads).
    Each thread gets the same number of shards. Shards change where members run, never their numbers."""
    if device.type != "cpu":
        return 1
    threads = torch.get_num_threads()
    per_shard = max(1, SHARD_BYTES // member_bytes)
    return min(K, threads * math.ceil(K / (threads * per_shard)))


@contextmanager
def shard_runner(n: int):
    """Runs a function on every shard: in this thread for one shard, else on up to one thread per
    intra-op thread at once, each worker with one intra-op thread."""
    if n == 1:
        yield lambda fn, shards: [fn(s) for s in shards]
        return
    threads = torch.get_num_threads()
    try:
        with ThreadPoolExecutor(min(n, threads), initializer=torch.set_num_threads, initargs=(1,)) as pool:
            def run(fn, shards):
                futures = [pool.submit(fn, s) for s in shards]
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                for f in [*done, *futures]:  # the first error surfaces at once, not after the other shards
                    f.result()
            yield run
    finally:
        torch.set_num_threads(threads)  # the workers' set_num_threads(1) also changed torch's process-wide default


class _Within:
    """Checkpoints within long epochs: an epoch runs in segments, each a number of steps every shard
    takes (so they stop at the same step), doubled while a segment is shorter than an eighth of the
    interval; after a segment, if ``every`` seconds have passed since the last checkpoint, every
    running member's state goes to ``on_checkpoint``."""

    def __init__(self, on_checkpoint: Callable[[list[Result]], None], every: float):
        self.on_checkpoint, self.every = on_checkpoint, every
        self.last, self.seg = time.perf_counter(), 8  # the latest checkpoint; steps per segment

    def train(self, run, shards: list[Shard], epoch: int, results: list[Result]) -> float:
        """Train the epoch; returns the seconds spent checkpointing (not training)."""
        paused = 0.0
        while not all(s.epoch_over for s in shards):
            t = time.perf_counter()
            run(lambda s: s.advance(self.seg), shards)
            now = time.perf_counter()
            self.seg *= 2 if now - t < self.every / 8 else 1
            if now - self.last >= self.every and not all(s.epoch_over for s in shards):
                for s in shards:
                    s.keep_within(epoch)
                self.on_checkpoint(results)
                self.last = time.perf_counter()
                paused += self.last - now
        return paused


def build_shards(data: Dataset, recipe: Recipe, members: list[Member], results: list[Result]) -> list[Shard]:
    """The pack as shards (``shard_count``), sharing its splits and padded image copies."""
    device = resolve_device(recipe.device)
    train, val, test = make_splits(data, recipe, device)
    n = shard_count(len(members), device, working_set_bytes(recipe, data.spec))
    bounds = [round(i * len(members) / n) for i in range(n + 1)]
    shared: dict = {}  # the pack's padded copies of the training images, if a leading crop / flip needs them
    return [Shard(data, recipe, members[a:b], results[a:b], train, val, test, device, len(members), shared)
            for a, b in zip(bounds, bounds[1:])]


@torch.no_grad()
def train_pack(data: Dataset, recipe: Recipe, members: list[Member],
               on_epoch: Callable[[int, list[Result]], None] | None = None, keep_state: bool = False,
               on_checkpoint: Callable[[list[Result]], None] | None = None, checkpoint_every: float = 300.0
               ) -> list[Result]:
    """Train ``members`` as one population from where their states leave them (epoch 0 without one).
    ``keep_state``: after each epoch, every running member's ``CellState`` (checkpoints), and a finished
    member's final (and best) weights, as ``torch.nn`` state_dicts, are on its ``Result``.
    ``on_checkpoint``: within an epoch, whenever ``checkpoint_every`` seconds have passed since the
    last epoch's end or checkpoint, it gets the results with every running member's state on them."""
    starts = {(m.state.epoch, m.state.inner) if m.state else (0, 0) for m in members}
    if len(starts) != 1:
        raise ValueError(f"a pack's members resume from one point (epoch, step); got {sorted(starts)}")
    start = starts.pop()[0]
    results = [Result() for _ in members]
    shards = build_shards(data, recipe, members, results)
    within = _Within(on_checkpoint, checkpoint_every) if on_checkpoint else None
    with shard_runner(len(shards)) as run:
        try:
            for epoch in range(start + 1, recipe.epochs + 1):
                t0 = time.perf_counter()
                for s in shards:
                    s.begin_epoch(epoch)
                paused = 0.0  # seconds spent on checkpoints within the epoch
                if within:
                    paused = within.train(run, shards, epoch, results)
                else:
                    run(lambda s: s.advance(None), shards)
                t1 = time.perf_counter()
                train_seconds = t1 - t0 - paused  # the pack's training time, evaluation excluded
                run(lambda s: s.end_epoch(epoch, t0, train_seconds), shards)
                t2 = time.perf_counter()
                if keep_state:
                    run(lambda s: s.keep_states(epoch), shards)
                t3 = time.perf_counter()
                recorded = sum(1 for r in results if r.epochs and r.epochs[-1]["epoch"] == epoch) or 1
                seconds = {"train_seconds": train_seconds, "eval_seconds": t2 - t1, "checkpoint_seconds": paused + t3 - t2}
                for s in shards:
                    s.close_epoch(epoch, {k: v / recorded for k, v in seconds.items()})
                if within and keep_state:
                    within.last = time.perf_counter()  # an epoch's end is a checkpoint too
                if on_epoch:
                    on_epoch(epoch, results)
                if not any(any(s.live) for s in shards):
                    break
        except BaseException:  # Ctrl-C, or a failing shard: the other shards stop at their next step
            for s in shards:
                s.cancelled = True
            raise
    return results
