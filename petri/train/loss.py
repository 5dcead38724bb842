"""Softmax cross-entropy per member, with its gradient, in one pass."""

from __future__ import annotations

import torch


def cross_entropy(logits: torch.Tensor, y: torch.Tensor, with_grad: bool = True):
    """logits [K, B, C], labels [K, B] ->
    (mean loss per member [K], d(sum of member losses)/d(logits) [K, B, C] or None, correct count [K]).

    The total loss is the *sum* over members of each member's batch mean, so a
    member's gradient is exactly what it would be if it trained alone.
    """
    logp = torch.log_softmax(logits, dim=-1)
    target = y.unsqueeze(-1)
    loss = -logp.gather(-1, target).squeeze(-1).mean(dim=1)
    correct = (logits.argmax(dim=-1) == y).sum(dim=1)
    if not with_grad:
        return loss, None, correct
    grad = torch.softmax(logits, dim=-1)  # row-wise kernel: the same per row whatever K is
    grad.scatter_add_(-1, target, _minus_ones(target.shape, grad.dtype, grad.device))
    grad.mul_(1.0 / logits.shape[1])
    return loss, grad, correct


_cache: dict = {}


def _minus_ones(shape, dtype, device) -> torch.Tensor:
    key = (tuple(shape), dtype, device)
    if key not in _cache:
        _cache.clear()
        _cache[key] = torch.full(shape, -1.0, dtype=dtype, device=device)
    return _cache[key]
