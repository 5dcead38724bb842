"""From ledger rows to the numbers a report shows: per-variant summaries and paired effects."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field

from .stats import Paired, holm, paired, t_interval

ALPHA = 0.05
OK = ("done", "stopped-early")


@dataclass
class Row:
    """One (variant, sweep point): its seeds' final numbers and, unless it is the baseline, its effect."""

    variant: str
    point: dict
    cells: int
    n: int  # seeds with a finished result
    mean: float
    half_width: float
    best: float  # best test accuracy over epochs, mean over seeds
    final_loss: float
    epochs: float  # epochs run, mean over seeds
    status: dict[str, int]  # cells per status
    by_seed: dict[int, float] = field(default_factory=dict)
    effect: Paired | None = None
    p_holm: float = math.nan
    verdict: str = ""

    @property
    def label(self) -> str:
        return cell_label(self.variant, self.point)

    @property
    def diverged(self) -> int:
        return self.status.get("diverged", 0)

    @property
    def missing(self) -> int:
        """Cells without a final result: pending, running or failed."""
        return sum(v for k, v in self.status.items() if k not in OK + ("diverged",))


def point_label(point: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items())


def cell_label(variant: str, point: dict) -> str:
    return variant + (f" ({point_label(point)})" if point else "")


def summarize(cells: list[dict], epochs: list[dict], baseline: str) -> list[Row]:
    """cells: ledger cells of the current study; epochs: their epoch rows."""
    by_cell: dict[str, list[dict]] = {}
    for e in epochs:
        by_cell.setdefault(e["cell_hash"], []).append(e)
    groups: dict[tuple, list[dict]] = {}
    for c in cells:
        groups.setdefault((c["variant"], c["point"]), []).append(c)
    rows = []
    for (variant, point), cs in groups.items():
        finals, bests, losses, lens, by_seed = [], [], [], [], {}
        for c in cs:
            es = sorted(by_cell.get(c["hash"], []), key=lambda e: e["epoch"])
            if c["status"] in OK and es:
                finals.append(es[-1]["test_acc"])
                bests.append(max(e["test_acc"] for e in es))
                losses.append(es[-1]["test_loss"])
                lens.append(len(es))
                by_seed[c["seed"]] = es[-1]["test_acc"]
        mean, hw = t_interval(finals)
        rows.append(Row(variant, json.loads(point), len(cs), len(finals), mean, hw,
                        _mean(bests), _mean(losses), _mean(lens), dict(Counter(c["status"] for c in cs)), by_seed))
    _compare(rows, baseline)
    return rows


def _mean(xs):
    return sum(xs) / len(xs) if xs else math.nan


def _compare(rows: list[Row], baseline: str) -> None:
    base = [r for r in rows if r.variant == baseline]
    if not base:
        return
    ref = base[0].by_seed
    others = [r for r in rows if r.variant != baseline]
    for r in others:
        r.effect = paired(r.by_seed, ref, ALPHA)
    adjusted = holm([r.effect.p_t for r in others])
    for r, p in zip(others, adjusted):
        r.p_holm = p
        e = r.effect
        lo, hi = e.mean - e.half_width, e.mean + e.half_width
        if not math.isnan(p) and p < ALPHA and lo > 0:
            r.verdict = "better"
        elif not math.isnan(p) and p < ALPHA and hi < 0:
            r.verdict = "worse"
        elif e.n < 2:
            r.verdict = "too few seeds"
        else:
            r.verdict = "no detectable difference"
    for r in base:
        r.verdict = "baseline"


def sweep_axes(rows: list[Row], variant: str) -> list[str]:
    pts = [r.point for r in rows if r.variant == variant]
    return list(pts[0]) if pts else []


def fmt_acc(mean: float, hw: float) -> str:
    if math.isnan(mean):
        return "—"
    return f"{100 * mean:.2f} %" + ("" if math.isnan(hw) else f" ± {100 * hw:.2f}")
