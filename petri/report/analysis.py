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
    best: float  # test accuracy at the best epoch (by validation accuracy if there is one, else by test), mean
    best_on: str  # "val" or "test": what chose the best epoch (on test it is optimistic: never used in verdicts)
    final_loss: float
    epochs: float  # epochs run, mean over seeds
    status: dict[str, int]  # cells per status
    by_seed: dict[int, float] = field(default_factory=dict)
    hashes: frozenset = frozenset()  # its cells (two places may hold the same ones)
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


def summarize(cells: list[dict], epochs: list[dict], baseline: str, baseline_point: dict | str | None = None
              ) -> list[Row]:
    """cells: the study's places (``study.current.load_current``); epochs: their epoch rows.
    Effects are paired by seed against the reference: the baseline variant, at ``baseline_point`` if
    it is a sweep (a point's values, or "best": its point with the highest mean final accuracy)."""
    by_cell: dict[str, list[dict]] = {}
    for e in {(e["cell_hash"], e["epoch"]): e for e in epochs}.values():  # a cell's epochs once, however many places
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
                on_val = es[-1]["val_acc"] is not None
                bests.append(max(es, key=lambda e: e["val_acc"] if on_val else e["test_acc"])["test_acc"])
                losses.append(es[-1]["test_loss"])
                lens.append(len(es))
                by_seed[c["seed"]] = es[-1]["test_acc"]
        mean, hw = t_interval(finals)
        on = "val" if any(e["val_acc"] is not None for c in cs for e in by_cell.get(c["hash"], [])[:1]) else "test"
        rows.append(Row(variant, json.loads(point), len(cs), len(finals), mean, hw, _mean(bests), on,
                        _mean(losses), _mean(lens), dict(Counter(c["status"] for c in cs)), by_seed,
                        frozenset(c["hash"] for c in cs)))
    variants = list(dict.fromkeys(r.variant for r in rows))  # as the study lists them; points as numbers
    rows.sort(key=lambda r: (variants.index(r.variant), [point_key(v) for v in r.point.values()]))
    _compare(rows, reference(rows, baseline, baseline_point))
    return rows


def point_key(v):
    """Sweep values in order: numbers as numbers (32 < 128 < 512), then anything else as text."""
    return (0, float(v), "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0.0, str(v))


def reference(rows: list[Row], baseline: str, point: dict | str | None) -> Row | None:
    """The row every other is compared with; None when there is none (a swept baseline, no point)."""
    base = [r for r in rows if r.variant == baseline]
    if point == "best":
        scored = [r for r in base if r.n]
        return max(scored, key=lambda r: r.mean) if scored else None
    if isinstance(point, dict):
        return next((r for r in base if r.point == point), None)
    return base[0] if len(base) == 1 else None


def _mean(xs):
    return sum(xs) / len(xs) if xs else math.nan


def _compare(rows: list[Row], base: Row | None) -> None:
    if base is None:
        return
    ref = base.by_seed
    for r in rows:
        if r is not base and r.hashes == base.hashes:
            r.verdict = "same cells as the reference"  # a grid point equal to the baseline: nothing to test
    others = [r for r in rows if r is not base and r.hashes != base.hashes]
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
    base.verdict = "baseline"


def sweep_axes(rows: list[Row], variant: str) -> list[str]:
    pts = [r.point for r in rows if r.variant == variant]
    return list(pts[0]) if pts else []


def fmt_acc(mean: float, hw: float) -> str:
    """A mean accuracy with its 95 % half-width, in percent: "96.21 ± 0.28"."""
    if math.isnan(mean):
        return "—"
    return f"{100 * mean:.2f}" + ("" if math.isnan(hw) else f" ± {100 * hw:.2f}")


def fmt_effect(e: Paired | None) -> str:
    """A paired difference in percentage points with its interval: "-4.98 [-5.31, -4.65]"."""
    if e is None or math.isnan(e.mean):
        return "—"
    if math.isnan(e.half_width):
        return f"{100 * e.mean:+.2f}"
    return f"{100 * e.mean:+.2f} [{100 * (e.mean - e.half_width):+.2f}, {100 * (e.mean + e.half_width):+.2f}]"


def fmt_p(p: float) -> str:
    return "—" if p is None or math.isnan(p) else (f"{p:.2g}" if p >= 1e-4 else "<1e-4")
