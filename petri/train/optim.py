"""Optimisers on stacked parameters: ``theta [K, P]`` updated in place.

Each member has its own learning rate and weight decay. Members that share
both are updated together by PyTorch's own fused kernels (``_fused_adam_``,
``_fused_sgd_``: one pass over parameters, gradients and state), called once
per distinct (rate, decay) on the rows of the members that are still
training; a frozen member (stopped or diverged) is simply left out, so its
parameters and optimiser state stay as they were. Semantics are
torch.optim's SGD and Adam with ``fused=True`` (weight decay as L2 added to
the gradient). Rows are padded to a multiple of 256 floats (see
``models.network``), so a member's row goes through the same vector lanes
whether it is updated alone or with others.
"""

from __future__ import annotations

import math

import torch

from .recipe import SGD, Adam, Schedule


class Optimizer:
    def __init__(self, spec: Adam | SGD, theta: torch.Tensor, lrs: list[float], wds: list[float]):
        self.spec, self.lrs, self.wds = spec, [float(v) for v in lrs], [float(v) for v in wds]
        self._runs: dict[tuple, list] = {}  # the row views of each fused call, per set of live members
        if isinstance(spec, Adam):
            self.m, self.v = torch.zeros_like(theta), torch.zeros_like(theta)
            self.steps = torch.zeros((), device=theta.device)  # the fused kernel's step counter (bias correction)
        elif spec.momentum > 0:
            self.momentum = torch.zeros_like(theta)

    def groups(self, live: tuple[bool, ...]) -> list[tuple[float, float, list[slice]]]:
        """(rate, decay, row slices) per distinct hyper-parameter pair among live members."""
        groups: dict[tuple[float, float], list[slice]] = {}
        k, K = 0, len(live)
        while k < K:
            if not live[k]:
                k += 1
                continue
            end = k + 1  # extend the run over neighbours with the same rate and decay
            while end < K and live[end] and (self.lrs[end], self.wds[end]) == (self.lrs[k], self.wds[k]):
                end += 1
            groups.setdefault((self.lrs[k], self.wds[k]), []).append(slice(k, end))
            k = end
        return [(lr, wd, rows) for (lr, wd), rows in groups.items()]

    def _calls(self, theta, grad, live):
        """Per group: rate, decay and the row views each fused call takes (built once per ``live``)."""
        key = (live, theta.data_ptr(), grad.data_ptr())
        if key not in self._runs:
            state = [self.m, self.v] if isinstance(self.spec, Adam) else \
                [self.momentum] if self.spec.momentum > 0 else []
            self._runs[key] = [(lr, wd, [[t[r] for r in rows] for t in (theta, grad, *state)])
                               for lr, wd, rows in self.groups(live)]
        return self._runs[key]

    def step(self, theta: torch.Tensor, grad: torch.Tensor, live: tuple[bool, ...], factor: float = 1.0) -> None:
        """One update of the ``live`` members' rows, at their rates times the schedule ``factor``."""
        s = self.spec
        if isinstance(s, Adam):
            self.steps.add_(1)  # members that are left out are frozen for good: one shared counter
        for lr, wd, views in self._calls(theta, grad, live):
            if isinstance(s, Adam):
                params, grads, m, v = views
                torch._fused_adam_(params, grads, m, v, [], [self.steps] * len(params), lr=lr * factor,
                                   beta1=s.beta1, beta2=s.beta2, weight_decay=wd, eps=s.eps,
                                   amsgrad=False, maximize=False)
            else:
                params, grads, *momentum = views
                torch._fused_sgd_(params, grads, momentum[0] if momentum else [], weight_decay=wd,
                                  momentum=s.momentum, lr=lr * factor, dampening=0.0, nesterov=s.nesterov,
                                  maximize=False, is_first_step=False)


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
