"""Optimisers on stacked parameters: ``theta [K, P]`` updated in place.

Per-member learning rate and weight decay are ``[K, 1]`` tensors. Semantics
match torch.optim's SGD and Adam (weight decay as L2 added to the gradient).
A frozen member (stopped or diverged) gets learning rate 0 and a zeroed
gradient, so its parameters and optimiser state stay as they were.
"""

from __future__ import annotations

import math

import torch

from .recipe import SGD, Adam, Schedule


class Optimizer:
    def __init__(self, spec: Adam | SGD, theta: torch.Tensor, lrs: list[float], wds: list[float]):
        self.spec, self.t = spec, 0
        self.lr = torch.tensor(lrs, device=theta.device).reshape(-1, 1)  # [K, 1]
        self.wd = torch.tensor(wds, device=theta.device).reshape(-1, 1)  # [K, 1]
        self.decay = any(w > 0 for w in wds)
        self.buf = torch.zeros_like(theta)  # scratch
        if isinstance(spec, Adam):
            self.m, self.v = torch.zeros_like(theta), torch.zeros_like(theta)
            self.steps = torch.zeros((), device=theta.device)  # the fused kernel's step counter
        elif spec.momentum > 0:
            self.momentum = torch.zeros_like(theta)

    def step(self, theta: torch.Tensor, grad: torch.Tensor, lr: torch.Tensor, factor: float = 1.0) -> None:
        """One update with per-member rates ``lr [K, 1]`` (0 = frozen) times the schedule ``factor``."""
        self.t += 1
        s = self.spec
        if self.decay:
            grad.addcmul_(theta, self.wd)
        if isinstance(s, Adam):
            # PyTorch's fused Adam kernel (one pass) computes the update u = m̂ / (√v̂ + ε) into a zeroed
            # scratch buffer (rate 1), then each member's row moves by its own rate: buf holds -u.
            self.buf.zero_()
            self.steps.add_(1)
            torch._fused_adam_([self.buf], [grad], [self.m], [self.v], [], [self.steps], lr=1.0,
                               beta1=s.beta1, beta2=s.beta2, weight_decay=0.0, eps=s.eps,
                               amsgrad=False, maximize=False)
            theta.addcmul_(self.buf, lr, value=factor)
            return
        if s.momentum > 0:
            self.momentum.mul_(s.momentum).add_(grad)
            update = grad.add_(self.momentum, alpha=s.momentum) if s.nesterov else self.momentum
        else:
            update = grad
        theta.addcmul_(update, lr, value=-factor)


def lr_factor(schedule: Schedule, step: int, steps_per_epoch: int, total_steps: int) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` (0-based)."""
    if schedule.name == "constant":
        return 1.0
    if schedule.name == "step":
        return schedule.gamma ** ((step // steps_per_epoch) // schedule.step_epochs)
    progress = step / max(1, total_steps - 1)
    if schedule.name == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    # onecycle (as torch's OneCycleLR, cosine annealing): start -> 1 -> final
    start = 1.0 / schedule.div_factor
    final = start / schedule.final_div_factor
    if progress < schedule.warmup:
        t = progress / schedule.warmup
        return start + (1 - start) * 0.5 * (1 - math.cos(math.pi * t))
    t = (progress - schedule.warmup) / max(1e-12, 1 - schedule.warmup)
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * t))
