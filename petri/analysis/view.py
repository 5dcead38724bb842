"""One view of a study: a snapshot of its ledger (``records.py``) and everything computed from it — the
findings, the tables' context, each row's sweep values. What ``petri show`` prints, the report writes
and ``petri.Results`` returns all come from one view, so no two of their tables come from different
states of the ledger."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from . import tables as T
from .columns import Context
from .findings import Findings, findings
from .records import Snapshot


@dataclass
class View:
    """One snapshot of a study and everything computed from it: what ``petri show`` prints and the
    report writes, so that no two of their tables come from different states of the ledger."""

    snapshot: Snapshot
    findings: Findings
    context: Context
    axes: dict  # (variant, point) key -> the value each sweep axis had

    @property
    def percent(self) -> bool:
        return self.context.percent

    def effects(self):
        return T.EFFECTS.frame(T.effects_records(self.findings, self.axes), self.context)

    def comparisons(self, detect: float | None = None):
        ctx = replace(self.context, extra={**self.context.extra, "detect": detect})
        return T.COMPARISONS.frame(self.findings.family, ctx)

    def metric_estimates(self):
        """(row, metric, estimate) for every recorded metric of every (variant, point) row: its mean over
        the finished places, with the design's model (crossed sources included)."""
        f = self.findings
        names = dict.fromkeys(["test_acc", "test_loss", "train_eval_acc", "gap", *self.context.extra["finals"]])
        for r in f.rows:
            for m in names:
                vals = {p.seed: p.value(m) for p in r.places if p.status.finished}
                vals = {s: x for s, x in vals.items() if x is not None}
                if vals:
                    yield r, m, f.design.estimate(vals, [r.key])

    def metrics(self):
        """Every recorded metric per (variant, point) (``Results.metrics``): each one's mean over the
        finished places and its 95 % half-width from the design's model (crossed sources included)."""
        import pandas as pd

        rows = [{"variant": r.variant, **self.axes.get(r.key, r.point), "metric": m, "n": e.n, "mean": e.mean,
                 "ci95": e.half_width(0.95) if e.n >= 2 else math.nan} for r, m, e in self.metric_estimates()]
        df = pd.DataFrame(rows, columns=["variant", *self.context.axes, "metric", "n", "mean", "ci95"])
        return df.astype({"variant": "category", "metric": "category", "n": "int64"})


def context(f: Findings, axes_extra: list[str]) -> Context:
    snap = f.snapshot
    finals = sorted({k for p in snap.places for k, v in (p.final or {}).items() if isinstance(v, (int, float))})
    classes = max((len(p.final.get("class_acc", [])) for p in snap.places if p.final), default=0)
    finals += [f"class_acc:{i}" for i in range(classes)]
    finals += sorted({k for p in snap.places for k in p.values if k not in finals})
    from .records import EPOCH_COLUMNS

    finals = [m for m in finals if m not in (*EPOCH_COLUMNS, "gap")]  # (columns of their own already)
    from ..train.metrics import is_fraction

    return Context(f.analysis.metric, is_fraction(f.analysis.metric), tuple(snap.axes), tuple(snap.crossing), f.level,
                   {"reference": snap.reference, "m": f.m, "trailing": axes_extra, "finals": tuple(finals)})


def view(snap: Snapshot, analysis=None) -> View:
    f = findings(snap, analysis)
    axes, extra = snap.sweep_values()
    return View(snap, f, context(f, extra), axes)
