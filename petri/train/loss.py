"""Softmax cross-entropy per member, with its gradient, in one pass."""

from __future__ import annotations

import torch

_ALIGN = 64  # floats; the exp buffer's length is a multiple of this, see below


def cross_entropy(logits: torch.Tensor, y: torch.Tensor, with_grad: bool = True):
    """logits [K, B, C], labels [K, B] ->
    (mean loss per member [K], d(sum of member losses)/d(logits) [K, B, C] or None, correct count [K]).

    The total loss is the *sum* over members of each member's batch mean, so a
    member's gradient is exactly what it would be if it trained alone.

    Written with plain ops (2× faster than log_softmax + softmax for C = 10).
    ``exp`` runs on a buffer whose length is a multiple of 64 floats, so no
    element falls into a kernel's scalar tail, whose rounding may differ from
    the SIMD body: members stay bitwise identical alone or packed.
    """
    K, B, C = logits.shape
    top, pred = logits.max(dim=-1, keepdim=True)  # [K, B, 1] each; pred: the first maximum, as argmax
    n = K * B * C
    buf = torch.empty(-(-n // _ALIGN) * _ALIGN, device=logits.device)  # the padding's values are never read
    e = buf[:n].view(K, B, C)
    torch.sub(logits, top, out=e)
    buf.exp_()
    total = e.sum(dim=-1, keepdim=True)  # [K, B, 1]
    target = y.unsqueeze(-1)
    loss = (total.log() + top - logits.gather(-1, target)).mean(dim=(1, 2))
    correct = (pred == target).sum(dim=(1, 2))
    if not with_grad:
        return loss, None, correct
    grad = e.div_(total.mul_(B))  # softmax / B
    grad.scatter_add_(-1, target, _constant(target.shape, -1.0 / B, grad.dtype, grad.device))
    return loss, grad, correct


_cache: dict = {}


def _constant(shape, value, dtype, device) -> torch.Tensor:
    key = (tuple(shape), value, dtype, device)
    if key not in _cache:
        _cache.clear()
        _cache[key] = torch.full(shape, value, dtype=dtype, device=device)
    return _cache[key]
