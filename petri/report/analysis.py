"""From ledger rows to the numbers a report shows: per-variant summaries and paired effects."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field

from ..study.questions import Analysis
from ..train.metrics import higher_is_better, metric_value
from .family import ALPHA, Comparison, analyse
from .stats import t_interval

OK = ("done", "stopped-early")


@dataclass
class Row:
    """One (variant, sweep point): its seeds' final numbers and, unless it is the reference, its
    comparison with the reference (a member of the study's family)."""

    variant: str
    point: dict
    cells: int
    n: int  # seeds with a finished result
    mean: float  # of the analysed metric (test accuracy unless the study's [analysis] names another)
    half_width: float
    best: float  # test accuracy at the best epoch (by validation accuracy if there is one, else by test), mean
    best_on: str  # "val" or "test": what chose the best epoch (on test it is optimistic: never used in verdicts)
    final_loss: float
    epochs: float  # epochs run, mean over seeds
    status: dict[str, int]  # cells per status
    by_seed: dict[int, float] = field(default_factory=dict)  # the analysed metric's final value per seed
    hashes: frozenset = frozenset()  # its cells (two places may hold the same ones)
    effect: Comparison | None = None
    verdict: str = ""
    val: float = math.nan  # mean final validation accuracy (what "best" points are chosen on)
    on_test: bool = False  # its cells chose their stopping epoch on the test set: kept out of verdicts

    @property
    def label(self) -> str:
        return cell_label(self.variant, self.point)

    @property
    def key(self) -> tuple[str, str]:
        return self.variant, json.dumps(self.point)

    @property
    def diverged(self) -> int:
        return self.status.get("diverged", 0)

    @property
    def missing(self) -> int:
        """Cells without a final result: pending, running or failed."""
        return sum(v for k, v in self.status.items() if k not in OK + ("diverged",))


@dataclass
class Findings:
    """Everything a report, ``petri show`` and the API say about a study's numbers."""

    rows: list[Row]
    family: list[Comparison]  # every comparison of the study, tested as one family
    m: int  # the family's size (comparisons with a test)
    analysis: Analysis

    @property
    def level(self) -> float:
        """The family-wise intervals' confidence level: 1 - α / (m · looks)."""
        return 1 - ALPHA / (max(self.m, 1) * self.analysis.looks)

    @property
    def declared(self) -> list[Comparison]:
        """The comparisons beyond "each against the reference": declared ones, crossed designs."""
        return [c for c in self.family if c.kind != "vs reference"]


def prior_looks(runs: list[dict], seeds: list[int]) -> int:
    """Earlier runs of a fixed-size study that had results on another set of seeds: each was a look at
    its verdicts (seeds added by hand after a finished run). Runs from before seeds were recorded are
    not counted."""
    sets = {r["seeds"] for r in runs if r.get("seeds") and r["status"] == "done"}
    return len(sets - {json.dumps(seeds)})


def looks_line(runs: list[dict], study) -> str | None:
    n = 0 if study.adaptive else prior_looks(runs, study.seeds)
    if not n:
        return None
    return (f"These verdicts were computed before on other seeds ({n} earlier run{'s' if n != 1 else ''} with "
            "results): a fixed-size test does not cover repeated looks, so verdicts reached by adding seeds until "
            "they appear are optimistic; adaptive seeds (seeds = { min, max }) is the way to look after every round.")


def adaptive_line(state: dict | None) -> str | None:
    """One sentence on an adaptive study's looks and why it stopped (or that it has not yet)."""
    if not state or not state.get("looks"):
        return None
    looks = state["looks"]
    seen = ", ".join(f"{lk['seeds']} ({lk['undecided']} undecided)" for lk in looks)
    end = f"stopped at {looks[-1]['seeds']} seeds: {state['stopped']}" if state.get("stopped") else "not stopped yet"
    return f"Adaptive seeds, looked at after {len(looks)} round(s) with {seen}; {end}."


def point_label(point: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items())


def cell_label(variant: str, point: dict) -> str:
    return variant + (f" ({point_label(point)})" if point else "")


def summarize(cells: list[dict], epochs: list[dict], baseline: str, baseline_point: dict | str | None = None,
              analysis: Analysis | None = None) -> list[Row]:
    """The per-(variant, point) rows of ``findings``."""
    return findings(cells, epochs, baseline, baseline_point, analysis).rows


def findings(cells: list[dict], epochs: list[dict], baseline: str, baseline_point: dict | str | None = None,
             analysis: Analysis | None = None) -> Findings:
    """cells: the study's places (``study.current.load_current``); epochs: their epoch rows.
    Rows are compared with the reference (the baseline variant, at ``baseline_point`` if it is a sweep:
    a point's values, or "best": its point with the highest mean); with the comparisons the study
    declares, and simple effects and interactions where variants and a sweep cross: one family."""
    analysis = analysis or Analysis()
    metric = analysis.metric
    by_cell: dict[str, list[dict]] = {}
    for e in {(e["cell_hash"], e["epoch"]): e for e in epochs}.values():  # a cell's epochs once, however many places
        by_cell.setdefault(e["cell_hash"], []).append(e)
    groups: dict[tuple, list[dict]] = {}
    for c in cells:
        groups.setdefault((c["variant"], c["point"]), []).append(c)
    rows = []
    for (variant, point), cs in groups.items():
        finals, bests, losses, lens, by_seed, vals = [], [], [], [], {}, []
        for c in cs:
            es = sorted(by_cell.get(c["hash"], []), key=lambda e: e["epoch"])
            value = metric_value(metric, es[-1], json.loads(c["final"]) if c.get("final") else None) if es else None
            if c["status"] in OK and value is not None:
                finals.append(value)
                on_val = es[-1]["val_acc"] is not None
                tested = [e for e in es if e["test_acc"] is not None]  # (recipe.eval_every: not every epoch)
                bests.append(max(tested, key=lambda e: e["val_acc"] if on_val else e["test_acc"])["test_acc"])
                losses.append(es[-1]["test_loss"])
                lens.append(len(es))
                by_seed[c["seed"]] = value
                if es[-1]["val_acc"] is not None:
                    vals.append(es[-1]["val_acc"])
        mean, hw = t_interval(finals)
        on = "val" if any(e["val_acc"] is not None for c in cs for e in by_cell.get(c["hash"], [])[:1]) else "test"
        rows.append(Row(variant, json.loads(point), len(cs), len(finals), mean, hw, _mean(bests), on,
                        _mean(losses), _mean(lens), dict(Counter(c["status"] for c in cs)), by_seed,
                        frozenset(c["hash"] for c in cs), val=_mean(vals), on_test=any(_on_test(c) for c in cs)))
    variants = list(dict.fromkeys(r.variant for r in rows))  # as the study lists them; points as numbers
    rows.sort(key=lambda r: (variants.index(r.variant), [point_key(v) for v in r.point.values()]))
    base = reference(rows, baseline, baseline_point)
    family = _family(rows, base, analysis)
    tainted = {r.key for r in rows if r.on_test}  # selected on test data: never in a verdict
    family = [c for c in family if not any(k in tainted for k, _ in c.terms)]
    for c in family:
        c.higher_better = higher_is_better(metric)
    m = analyse(family, {r.key: r.by_seed for r in rows}, ALPHA, analysis.looks)
    for r in rows:
        if base is not None and r is not base and r.hashes == base.hashes:
            r.verdict = "same cells as the reference"  # a grid point equal to the baseline: nothing to test
        elif r.on_test:
            r.effect, r.verdict = None, "stopped on test data: not compared"
        elif r.effect is not None:
            r.verdict = r.effect.verdict
    if base is not None and not analysis.compare:  # (declared comparisons: nothing is against the reference)
        base.verdict = "baseline"
    return Findings(rows, family, m, analysis)


def point_key(v):
    """Sweep values in order: numbers as numbers (32 < 128 < 512), then anything else as text."""
    return (0, float(v), "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0.0, str(v))


def reference(rows: list[Row], baseline: str, point: dict | str | None) -> Row | None:
    """The row every other is compared with; None when there is none (a swept baseline, no point)."""
    base = [r for r in rows if r.variant == baseline]
    if point == "best":  # on validation accuracy: the test set chooses nothing that it then judges
        scored = [r for r in base if r.n and not math.isnan(r.val)]
        return max(scored, key=lambda r: r.val) if scored else None
    if isinstance(point, dict):
        return next((r for r in base if r.point == point), None)
    return base[0] if len(base) == 1 else None


def _on_test(place: dict) -> bool:
    """Whether a cell's early stopping monitored a test metric (early_stopping.on_test)."""
    try:
        es = json.loads(place.get("config") or "{}").get("recipe", {}).get("early_stopping") or {}
    except (TypeError, ValueError):
        return False
    return bool(es.get("on_test"))


def _mean(xs):
    return sum(xs) / len(xs) if xs else math.nan


def _family(rows: list[Row], base: Row | None, analysis: Analysis) -> list[Comparison]:
    """Each row against the reference (without declared comparisons), then each declared "A - B" (or,
    without any, each variant crossing the baseline's sweep against it): A against B at every point
    they share, each side's sweep effect at each point against the first, and the interaction as a
    difference of differences. A contrast that is already in the family is not tested twice."""
    family: list[Comparison] = []
    seen: set = set()

    def add(c: Comparison, row: Row | None = None) -> None:
        key = frozenset(c.terms)
        if key in seen or not c.terms:
            return
        seen.add(key)
        family.append(c)
        if row is not None:
            row.effect = c

    if not analysis.compare and base is not None:
        for r in rows:
            if r is not base and r.hashes != base.hashes:
                add(Comparison(r.label, base.label, "vs reference", ((r.key, 1.0), (base.key, -1.0)), analysis.margin,
                               point_label(r.point)), r)
    questions = [(q.a, q.b, q.margin) for q in analysis.compare]
    if not questions and base is not None:  # a crossed design: the baseline's sweep shared by another variant
        mine = [r.point for r in rows if r.variant == base.variant]
        if len(mine) >= 2:
            for v in dict.fromkeys(r.variant for r in rows if r.variant != base.variant):
                if sum(1 for r in rows if r.variant == v and r.point in mine) >= 2:
                    questions.append((v, base.variant, analysis.margin))
    for a, b, margin in questions:
        ra = {json.dumps(r.point): r for r in rows if r.variant == a}
        rb = {json.dumps(r.point): r for r in rows if r.variant == b}
        if list(ra) == ["{}"] or list(rb) == ["{}"]:  # one side is not swept: it meets every point of the other
            pairs = [(x, y) for x in ra.values() for y in rb.values()]
        else:
            pairs = [(ra[p], rb[p]) for p in ra if p in rb]
        for x, y in pairs:
            add(Comparison(x.label, y.label, "simple effect", ((x.key, 1.0), (y.key, -1.0)), margin,
                           point_label(x.point or y.point)))
        if len(pairs) < 2 or list(ra) == ["{}"] or list(rb) == ["{}"]:
            continue
        (x0, y0), rest = pairs[0], pairs[1:]
        for side, first in ((a, x0), (b, y0)):
            for x in (p[0] if side == a else p[1] for p in rest):
                add(Comparison(x.label, first.label, "simple effect", ((x.key, 1.0), (first.key, -1.0)), margin,
                               f"{side}: {point_label(x.point)} vs {point_label(first.point)}"))
        for x, y in rest:
            add(Comparison(f"({a} − {b}) at {point_label(x.point)}", f"({a} − {b}) at {point_label(x0.point)}",
                           "interaction", ((x.key, 1.0), (y.key, -1.0), (x0.key, -1.0), (y0.key, 1.0)), margin,
                           f"{point_label(x.point)} vs {point_label(x0.point)}"))
    return family


def sweep_axes(rows: list[Row], variant: str) -> list[str]:
    pts = [r.point for r in rows if r.variant == variant]
    return list(pts[0]) if pts else []


def fmt_acc(mean: float, hw: float) -> str:
    """A mean accuracy with its 95 % half-width, in percent: "96.21 ± 0.28"."""
    if math.isnan(mean):
        return "—"
    return f"{100 * mean:.2f}" + ("" if math.isnan(hw) else f" ± {100 * hw:.2f}")


def fmt_effect(e: Comparison | None, scale: float = 100, family_wise: bool = True) -> str:
    """A difference with its (family-wise) interval, in percentage points for accuracies: "-4.98 [-5.31, -4.65]"."""
    if e is None or math.isnan(e.mean):
        return "—"
    lo, hi = (e.lo_fw, e.hi_fw) if family_wise else (e.lo, e.hi)
    if math.isnan(lo):
        return f"{scale * e.mean:+.2f}"
    return f"{scale * e.mean:+.2f} [{scale * lo:+.2f}, {scale * hi:+.2f}]"


def fmt_p(p: float) -> str:
    return "—" if p is None or math.isnan(p) else (f"{p:.2g}" if p >= 1e-4 else "<1e-4")
