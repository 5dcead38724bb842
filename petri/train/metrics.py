"""Numbers of a finished cell, computed once from its test logits: expected calibration error,
accuracy per class, the confusion matrix, and users' own metrics (``petri.register_metric``).

A metric is a function of one member's test logits ``[N, C]`` (float) and labels ``[N]`` (int64)
returning a float; it runs where the cell trains (a Ray worker imports the study's plugins first).
A cell records the built-in metrics and its study's own: those its plugins register and the study's
``[analysis] metric``; their code is part of the cell's identity (an edited metric makes new cells).
A study compares any of them with ``[analysis] metric = "ece"`` (or ``"class_acc:3"``, or a user's name).
"""

from __future__ import annotations

import math
import re
from typing import Callable, NamedTuple

import torch

from ..errors import SpecError
from ..usercode import code as plugin_code
from ..specs import first_paragraph

Metric = Callable[[torch.Tensor, torch.Tensor], float]


class Registered(NamedTuple):
    fn: Metric
    about: str  # what it measures, in a line
    higher: bool  # higher is better
    code: str | None  # a user's metric: its plugin file's (or source's) digest; None: petri's own


METRICS: dict[str, Registered] = {}
# Per-epoch numbers beyond the ledger's fixed columns: name -> what it is. Each is computed in the
# loop's epoch row (``shard.Shard.end_epoch``), kept in the ledger's ``epochs.metrics`` (JSON) and is a
# column of ``Results.epochs()``: adding one is its line here and its computation there.
EPOCH_METRICS: dict[str, str] = {
    "weight_norm": "the L2 norm of the member's parameters after the epoch (weights, biases, norm layers' "
                   "scales and shifts; not running statistics)",
}
_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
# Per-epoch numbers (the ledger's epoch rows) and what is derived from them: not registrable names.
EPOCH = ("test_acc", "test_loss", "val_acc", "val_loss", "train_acc", "train_loss", "train_eval_acc",
         "train_eval_loss", "gap")


def register_metric(name: str, fn: Metric, about: str = "", higher_is_better: bool = True) -> Metric:
    """Register ``fn(logits [N, C], labels [N]) -> float`` as metric ``name`` (lower-case letters,
    digits, _), computed on each cell's test set when it finishes; ``higher_is_better`` says which
    direction a verdict calls "better". A cell records it when its study's plugins register it or the
    study compares it (``[analysis] metric``); the plugin file's source is part of those cells' identity.
    Returns ``fn``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in EPOCH or name in ("class_acc", "confusion"):
        raise SpecError(f"register_metric: {name!r} is not allowed; a metric name is 1-40 lower-case letters, digits "
                        f"and _ starting with a letter, other than {', '.join(EPOCH)}, class_acc, confusion")
    if not callable(fn):
        raise SpecError(f"register_metric: {name!r}: {fn!r} is not a function of (logits, labels)")
    METRICS[name] = Registered(fn, about or first_paragraph(fn.__doc__), bool(higher_is_better), plugin_code(fn))
    return fn


def user_metrics(names) -> dict[str, str]:
    """Of ``names``, the users' registered metrics -> their code's digest (what enters a cell's identity)."""
    return {n: METRICS[n].code for n in names if n in METRICS and METRICS[n].code}


def expected_calibration_error(logits: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """ECE (Guo et al. 2017): |accuracy − confidence| over 15 equal-width confidence bins, weighted by
    the share of images in each bin; a fraction (0: calibrated)."""
    conf, pred = logits.float().softmax(-1).max(-1)
    hit = (pred == labels).float()
    edges = torch.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.float().mean().item() * abs(hit[inside].mean().item() - conf[inside].mean().item())
    return ece


METRICS["ece"] = Registered(expected_calibration_error, "expected calibration error (15 bins), a fraction", False, None)


def final_metrics(logits: torch.Tensor, labels: torch.Tensor, n_classes: int, own: tuple[str, ...] = ()) -> dict:
    """Petri's metrics, the users' metrics ``own`` (a cell's study's), accuracy per class and the
    confusion matrix (rows: true class, columns: predicted) of one member's test logits [N, C]."""
    logits, labels = logits.detach().float().cpu(), labels.cpu()
    pred = logits.argmax(-1)
    confusion = torch.bincount(labels * n_classes + pred, minlength=n_classes * n_classes).view(n_classes, n_classes)
    per_class = confusion.diag().double() / confusion.sum(1).clamp(min=1).double()
    out: dict = {"class_acc": per_class.tolist(), "confusion": confusion.tolist()}
    for name, m in METRICS.items():
        if m.code and name not in own:
            continue
        value = float(m.fn(logits, labels))
        out[name] = value if math.isfinite(value) else None
    return out


def metric_value(name: str, epoch: dict, final: dict | None) -> float | None:
    """A cell's value of metric ``name``: from its last epoch row, or from its final metrics."""
    if name == "gap":  # eval-mode train accuracy − test accuracy: the generalisation gap
        a, b = epoch.get("train_eval_acc"), epoch.get("test_acc")
        return None if a is None or b is None else a - b
    if name in EPOCH:
        return epoch.get(name)
    if not final:
        return None
    if name.startswith("class_acc:"):
        c = int(name.split(":", 1)[1])
        return final["class_acc"][c] if c < len(final.get("class_acc", [])) else None
    return final.get(name)


def check_metric(name, n_classes: int, where: str) -> str:
    """``name`` if a study may compare it, else one line saying what is allowed."""
    if isinstance(name, str) and (name in EPOCH or name in METRICS):
        return name
    if isinstance(name, str) and (m := re.fullmatch(r"class_acc:(\d+)", name)) and int(m.group(1)) < n_classes:
        return name
    raise SpecError(f"{where}: {name!r} is not a metric; allowed: {', '.join(EPOCH)}, "
                    f"{', '.join(METRICS)}, class_acc:0 .. class_acc:{n_classes - 1} (register your own with "
                    "petri.register_metric in a plugin)")


def is_fraction(name: str) -> bool:
    """Accuracies, the gap and ECE are fractions: shown in percent, differences in percentage points."""
    return name.endswith("_acc") or name in ("gap", "ece") or name.startswith("class_acc:")


def higher_is_better(name: str) -> bool:
    """Accuracies and users' metrics (unless registered otherwise): higher; losses, ECE and the gap: lower."""
    if name in METRICS:
        return METRICS[name].higher
    return not (name.endswith("_loss") or name == "gap")
