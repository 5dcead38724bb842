"""A cell's complete training state between two steps: what a checkpoint holds and a resume restores.

Per cell, not per pack, so a resumed cell may train in a pack of any size: its parameter row and
buffers (BatchNorm statistics), its optimiser state rows and step count, every random stream it
draws from (data order, dropout masks, BN noise; treatments draw from stateless hashes of the
epoch), and its early-stopping state. Usually taken at an epoch's end; within a long epoch
(``inner`` > 0) also the epoch's losses and hits so far (``epoch.*``), with the order generator as
the epoch began. Tensors are CPU copies; ``meta`` is JSON-ready.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class CellState:
    epoch: int  # epochs finished
    step: int  # optimiser steps taken
    tensors: dict[str, torch.Tensor]  # "theta", "buffer.*", "opt.*", "rng.*" (generator states, uint8)
    stopper: dict | None = None  # early stopping: best value, epochs since
    best: dict[str, torch.Tensor] | None = None  # the best epoch's weights so far (with early stopping)
    best_epoch: int | None = None
    meta: dict = field(default_factory=dict)
    inner: int = 0  # steps of epoch ``epoch + 1`` taken (a checkpoint within it), else 0
    best_predictions: dict[str, torch.Tensor] | None = None  # the best epoch's predicted classes ("test", "val")

    def to_meta(self) -> dict:
        return {"epoch": self.epoch, "step": self.step, "stopper": self.stopper, "best_epoch": self.best_epoch,
                "inner": self.inner, **self.meta}


def cpu_copies(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies, by name (a state that later steps cannot change)."""
    return {n: t.detach().to("cpu", copy=True).contiguous() for n, t in tensors.items()}


def capture(net, opt, k: int, generators: dict[str, torch.Generator]) -> dict[str, torch.Tensor]:
    """CPU copies of member k's tensors and random-stream states."""
    out = cpu_copies({**net.member_tensors(k), **opt.member_state(k)})
    out |= {f"rng.{n}": g.get_state().clone() for n, g in {**net.member_generators(k), **generators}.items()}
    return out


def restore(net, opt, k: int, generators: dict[str, torch.Generator], tensors: dict[str, torch.Tensor]) -> None:
    """Put member k back exactly as ``capture`` found it; a missing or misshapen entry is an error."""
    views = {**net.member_tensors(k), **opt.member_state(k)}
    gens = {**net.member_generators(k), **generators}
    expected = set(views) | {f"rng.{n}" for n in gens}
    if set(tensors) != expected:
        raise ValueError(f"state does not fit this network: missing {sorted(expected - set(tensors))[:3]}, "
                         f"unexpected {sorted(set(tensors) - expected)[:3]}")
    for n, v in views.items():
        if v.shape != tensors[n].shape:
            raise ValueError(f"state does not fit this network: {n} has shape {tuple(tensors[n].shape)}, "
                             f"expected {tuple(v.shape)}")
        v.copy_(tensors[n])
    for n, g in gens.items():
        g.set_state(tensors[f"rng.{n}"])
