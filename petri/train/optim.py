"""Optimisers on stacked parameters: ``theta [K, P]`` updated in place.

Each member has its own learning rate and weight decay. Members that share
both are updated together by PyTorch's own fused kernels (``_fused_adam_``,
``_fused_adamw_``, ``_fused_sgd_``: one pass over parameters, gradients and state), called once
per distinct (rate, decay) on the rows of the members that are still
training; a frozen member (stopped or diverged) is simply left out, so its
parameters and optimiser state stay as they were. Semantics are
torch.optim's SGD, Adam and AdamW with ``fused=True`` (SGD and Adam: weight decay as L2 added to
the gradient; AdamW: decoupled), and RMSprop's own update written out as torch.optim does it
(PyTorch has no fused RMSprop kernel). Rows are padded to a multiple of 256 floats (see
``models.network``), so a member's row goes through the same vector lanes
whether it is updated alone or with others.
"""

from __future__ import annotations

import torch

from .recipe import SGD, Adam, AdamW, RMSprop


class Optimizer:
    def __init__(self, spec: Adam | SGD, theta: torch.Tensor, lrs: list[float], wds: list[float]):
        self.spec, self.lrs, self.wds = spec, [float(v) for v in lrs], [float(v) for v in wds]
        self._runs: dict[tuple, list] = {}  # the row views of each fused call, per set of live members
        # per-parameter state, [K, P] each, in the order the update takes it
        self.state: dict[str, torch.Tensor] = {n: torch.zeros_like(theta) for n in spec.state_names()}
        self.steps = torch.zeros((), device=theta.device)  # optimiser steps taken (Adam's bias correction)

    def member_state(self, k: int) -> dict[str, torch.Tensor]:
        """Views of member k's optimiser state rows, by name."""
        return {f"opt.{n}": t[k] for n, t in self.state.items()}

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
            self._runs[key] = [(lr, wd, [[t[r] for r in rows] for t in (theta, grad, *self.state.values())])
                               for lr, wd, rows in self.groups(live)]
        return self._runs[key]

    def step(self, theta: torch.Tensor, grad: torch.Tensor, live: tuple[bool, ...], factor: float = 1.0) -> None:
        """One update of the ``live`` members' rows, at their rates times the schedule ``factor``."""
        s = self.spec
        self.steps.add_(1)  # members that are left out are frozen for good: one shared counter
        for lr, wd, views in self._calls(theta, grad, live):
            if isinstance(s, (Adam, AdamW)):
                params, grads, m, v = views
                fused = torch._fused_adamw_ if isinstance(s, AdamW) else torch._fused_adam_
                fused(params, grads, m, v, [], [self.steps] * len(params), lr=lr * factor, beta1=s.beta1,
                      beta2=s.beta2, weight_decay=wd, eps=s.eps, amsgrad=False, maximize=False)
            elif isinstance(s, RMSprop):
                _rmsprop(s, lr * factor, wd, *views)
            else:
                params, grads, *momentum = views
                torch._fused_sgd_(params, grads, momentum[0] if momentum else [], weight_decay=wd,
                                  momentum=s.momentum, lr=lr * factor, dampening=0.0, nesterov=s.nesterov,
                                  maximize=False, is_first_step=False)


def _rmsprop(s: RMSprop, lr: float, wd: float, params, grads, square_avg, *rest) -> None:
    """torch.optim.RMSprop's single-tensor update, op for op, on each run of rows."""
    grad_avg = rest[0] if s.centered else None
    buf = rest[-1] if s.momentum > 0 else None
    for i, (p, g, sq) in enumerate(zip(params, grads, square_avg)):
        if wd:
            g = g.add(p, alpha=wd)
        sq.mul_(s.alpha).addcmul_(g, g, value=1 - s.alpha)
        if grad_avg is not None:
            grad_avg[i].lerp_(g, 1 - s.alpha)
            avg = sq.addcmul(grad_avg[i], grad_avg[i], value=-1).sqrt_()
        else:
            avg = sq.sqrt()
        avg = avg.add_(s.eps)
        if buf is not None:
            buf[i].mul_(s.momentum).addcdiv_(g, avg)
            p.add_(buf[i], alpha=-lr)
        else:
            p.addcdiv_(g, avg, value=-lr)
