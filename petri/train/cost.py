"""What one pack costs on this machine, in seconds: the raw material of a dry run's estimate.

``measure`` builds the pack as ``train_pack`` does (its start-up: splits, networks, treatments),
takes two warm-up steps (allocations, oneDNN's kernels), then times training steps in chunks until
about ``seconds`` have passed and keeps the fastest chunk's step, the faster of two warmed-up batches
of evaluation, and the capture of every member's state (a checkpoint's part in memory). The training
images are the recipe's (a slice would sit in the caches and time too fast), but only a few steps are
taken.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from ..data import Dataset
from .loop import Member, Result, shard_runner, build_shards
from .recipe import Recipe
from .splits import Split


@dataclass(frozen=True)
class PackCost:
    startup: float  # s: building the pack
    step: float  # s per optimiser step of the whole pack (all its members)
    eval_image: float  # s per image evaluated by the whole pack (all its members at once)
    capture: float  # s to copy every member's state out (each epoch's checkpoint, before its files)
    state_bytes: int  # bytes of every member's state: what one epoch's checkpoint files hold

    def to_json(self) -> dict:
        return asdict(self)


@torch.no_grad()
def measure(data: Dataset, recipe: Recipe, members: list[Member], seconds: float = 0.5) -> PackCost:
    t0 = time.perf_counter()
    members = [Member(m.seed, m.treatments, m.lr, m.weight_decay) for m in members]  # from epoch 0
    shards = build_shards(data, recipe, members, [Result() for _ in members])
    startup = time.perf_counter() - t0
    with shard_runner(len(shards)) as run:
        for s in shards:
            s.begin_epoch(1)
        run(lambda s: s.advance(2), shards)
        # Chunks of steps double until one takes a tenth of the budget; the step kept is the fastest
        # chunk's: another process on the machine slows some chunks and never speeds one up, and what
        # the whole run will meet a half-second measurement cannot know anyway (benchmarks/README.md).
        # A chunk that ends on an epoch's short last batch is no full step's time: kept only if no
        # other chunk was timed.
        short = shards[0].N % recipe.batch_size != 0
        per_step, partial, chunk, timed, epoch = [], [], 1, 0.0, 1
        while timed < seconds and len(per_step) < 64:
            before = shards[0].at
            if shards[0].epoch_over:  # a short epoch: time the next one's steps (counted from 0)
                epoch, before = epoch + 1, 0
                for s in shards:
                    s.begin_epoch(epoch)
            t = time.perf_counter()
            run(lambda s: s.advance(chunk), shards)
            dt = time.perf_counter() - t
            timed += dt
            if shards[0].at > before:
                ended_short = short and shards[0].at == shards[0].steps
                (partial if ended_short else per_step).append(dt / (shards[0].at - before))
            if dt < seconds / 10 and chunk < 1 << 16:
                chunk *= 2
        step = min(per_step or partial or [timed])
        test = shards[0].test
        n = min(recipe.eval_batch_size, len(test.y))
        warm, batch = (Split(test.x[a:b], test.y[a:b], test.ids[a:b]) for a, b in ((0, min(n, 16)), (0, n)))
        run(lambda s: s._evaluate(warm), shards)
        evals = []
        for _ in range(2):  # the faster of two, as for the steps
            t = time.perf_counter()
            run(lambda s: s._evaluate(batch), shards)
            evals.append((time.perf_counter() - t) / n)
        eval_image = min(evals)
        t = time.perf_counter()
        states: list = []
        run(lambda s: states.extend(s._state(k, 1, s.orders[k]) for k in range(s.K)), shards)
        capture = time.perf_counter() - t
    state_bytes = sum(v.numel() * v.element_size() for st in states for v in st.tensors.values())
    return PackCost(startup, step, eval_image, capture, state_bytes)
