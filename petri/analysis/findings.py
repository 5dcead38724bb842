"""From a snapshot's places to the numbers every table shows: per-(variant, point) rows and the study's
family of comparisons (``family.py``), tested from the design (``design.py``)."""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..train.metrics import higher_is_better, is_fraction
from .design import Estimate
from .family import ALPHA, Comparison, Design, analyse
from .records import Place, Snapshot, Status, cell_label, point_label


@dataclass
class Row:
    """One (variant, sweep point): its places' final numbers and, unless it is the reference, its
    comparison with the reference (a member of the study's family)."""

    variant: str
    point: dict
    cells: int
    n: int  # places with a final value of the analysed metric
    mean: float  # of the analysed metric
    half_width: float  # of its 95 % interval under the design's model
    best: float  # test accuracy at the best epoch (by validation accuracy if there is one, else by test), mean
    best_on: str  # "val" or "test": what chose the best epoch (on test it is optimistic: never used in verdicts)
    final_loss: float
    epochs: float  # epochs run, mean over seeds
    status: dict[str, int]  # cells per status
    by_seed: dict[int, float] = field(default_factory=dict)  # the analysed metric's final value per place
    hashes: frozenset = frozenset()  # its cells (two places may hold the same ones)
    effect: Comparison | None = None
    verdict: str = ""
    val: float = math.nan  # mean final validation accuracy (what "best" points are chosen on)
    on_test: bool = False  # its cells chose their stopping epoch on the test set: kept out of verdicts
    at_chance: int = 0  # finished cells whose test accuracy is no better than a constant guess
    est: Estimate | None = None
    places: list[Place] = field(default_factory=list)

    @property
    def label(self) -> str:
        return cell_label(self.variant, self.point)

    @property
    def key(self) -> tuple[str, str]:
        return self.variant, json.dumps(self.point)

    @property
    def sd(self) -> float:
        """The sample SD between its places' values (the spread a noise study is about)."""
        v = list(self.by_seed.values())
        return float(statistics.stdev(v)) if len(v) > 1 else math.nan

    @property
    def diverged(self) -> int:
        return self.status.get("diverged", 0)

    @property
    def missing(self) -> int:
        """Cells without a final result: pending, running, interrupted or failed."""
        return sum(v for k, v in self.status.items() if k not in ("done", "stopped-early", "diverged"))


@dataclass
class Findings:
    """Everything a report, ``petri show`` and the API say about a study's numbers."""

    snapshot: Snapshot
    rows: list[Row]
    family: list[Comparison]  # every comparison of the study, tested as one family
    m: int  # the family's size (comparisons with a test)
    analysis: object  # study.questions.Analysis
    design: Design = field(default_factory=Design)

    @property
    def level(self) -> float:
        """The family-wise intervals' confidence level: 1 - α / (m · looks)."""
        return 1 - ALPHA / (max(self.m, 1) * self.analysis.looks)

    @property
    def declared(self) -> list[Comparison]:
        """The comparisons beyond "each against the reference": declared ones, crossed designs."""
        return [c for c in self.family if c.kind != "vs reference"]

    @property
    def reference(self) -> Row | None:
        return next((r for r in self.rows if r.verdict == "baseline"), None)


def findings(snap: Snapshot, analysis=None) -> Findings:
    """The rows and the family of ``snap`` (``analysis``: the study's [analysis], or another question).
    Rows are compared with the reference (the baseline variant, at its reference point in a sweep: a
    point's values, or "best": its point with the highest mean validation accuracy); with the
    comparisons the study declares; and simple effects and interactions where variants and a sweep
    cross: one family."""
    from ..study.questions import Analysis

    analysis = analysis or snap.analysis or Analysis()
    metric = analysis.metric
    chance = getattr(analysis, "failed", "withhold") == "chance"
    groups: dict[tuple, list[Place]] = {}
    for p in snap.places:
        groups.setdefault(p.key, []).append(p)
    design = Design(snap.levels(), snap.uses(), list(snap.factors),
                    {k: 1 / ps[0].n_test for k, ps in groups.items() if ps[0].n_test and _counts_images(metric)})
    rows, failed, at_chance = [], {}, {}
    for key, ps in groups.items():
        finals, bests, losses, lens, by_seed, vals = [], [], [], [], {}, []
        for p in ps:
            value = p.value(metric)
            if p.status is Status.DIVERGED and chance and p.chance() is not None:
                by_seed[p.seed] = p.chance()  # a diverged cell counts as a constant guess
                continue
            if not p.status.finished or value is None:
                continue
            finals.append(value)
            by_seed[p.seed] = value
            es = p.epochs
            if es:
                on_val = es[-1]["val_acc"] is not None
                tested = [e for e in es if e["test_acc"] is not None]  # (recipe.eval_every: not every epoch)
                bests.append(max(tested, key=lambda e: e["val_acc"] if on_val else e["test_acc"])["test_acc"])
                losses.append(es[-1]["test_loss"])
                lens.append(len(es))
                if on_val:
                    vals.append(es[-1]["val_acc"])
        est = design.estimate(by_seed, [key])
        hw = est.half_width(0.95) if est.n >= 2 else math.nan
        on = "val" if any(p.epochs and p.epochs[0]["val_acc"] is not None for p in ps) else "test"
        status = dict(Counter(str(p.status) for p in ps))
        failed[key] = 0 if chance else status.get("diverged", 0)
        at_chance[key] = sum(1 for p in ps if p.at_chance)
        rows.append(Row(ps[0].variant, dict(ps[0].point), len(ps), len(by_seed), est.mean, hw, _mean(bests), on,
                        _mean(losses), _mean(lens), status, by_seed, frozenset(p.hash for p in ps),
                        val=_mean(vals), on_test=any(p.on_test for p in ps), at_chance=at_chance[key], est=est,
                        places=ps))
    variants = list(dict.fromkeys(r.variant for r in rows))  # as the study lists them; points as numbers
    rows.sort(key=lambda r: (variants.index(r.variant), [point_key(v) for v in r.point.values()]))
    base = reference(rows, snap.baseline, snap.baseline_point)
    family = _family(rows, base, analysis)
    tainted = {r.key for r in rows if r.on_test}  # selected on test data: never in a verdict
    family = [c for c in family if not any(k in tainted for k, _ in c.terms)]
    for c in family:
        c.higher_better = higher_is_better(metric)
    m = analyse(family, {r.key: r.by_seed for r in rows}, ALPHA, analysis.looks, design=design, failed=failed,
                chance=at_chance, withhold_failed=not chance)
    agreement(family, {r.key: r for r in rows})
    for r in rows:
        if base is not None and r is not base and r.hashes == base.hashes:
            r.verdict = "same cells as the reference"  # a grid point equal to the baseline: nothing to test
        elif r.on_test:
            r.effect, r.verdict = None, "stopped on test data: not compared"
        elif r.effect is not None:
            r.verdict = r.effect.verdict
    if base is not None:
        base.verdict = "baseline"
    return Findings(snap, rows, family, m, analysis, design)


def agreement(family: list[Comparison], rows: dict) -> None:
    """Per two-sided comparison, from the cells' kept test predictions: the share of test images the two
    sides classify differently (Summers & Dinneen's measure of diversity), averaged over the paired places;
    with one seed, McNemar's exact test of the two cells on the same test images — whether these two trained
    models differ on this test set, a narrower question than whether the variants do."""
    from scipy.stats import binomtest

    for c in family:
        if len(c.terms) != 2 or not c.diffs:
            continue
        (ka, _), (kb, _) = c.terms
        pa = {p.seed: p for p in rows[ka].places}
        pb = {p.seed: p for p in rows[kb].places}
        pairs = [(pa[s].predictions(), pb[s].predictions()) for s in c.diffs if s in pa and s in pb]
        pairs = [(x, y) for x, y in pairs if x and y and "test" in x and "test" in y and len(x["test"]) == len(y["test"])]
        if not pairs:
            continue
        c.disagree = float(np.mean([np.mean(x["test"] != y["test"]) for x, y in pairs]))
        if c.n == 1:
            (x, y), = pairs
            right_a, right_b = x["test"] == x["test.labels"], y["test"] == y["test.labels"]
            only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
            c.p_mcnemar = float(binomtest(only_a, only_a + only_b).pvalue) if only_a + only_b else 1.0
            c.reason = "; ".join(x for x in (c.reason, f"one seed: McNemar's exact test on its cells' test images "
                                             f"gives p = {c.p_mcnemar:.2g} ({only_a} images only A classifies right, "
                                             f"{only_b} only B) — whether these two trained models differ on this test "
                                             "set, not whether the variants do") if x)


def _counts_images(metric: str) -> bool:
    """An accuracy on the test set moves in steps of one test image."""
    return metric == "test_acc"


def point_key(v):
    """Sweep values in order: numbers as numbers (32 < 128 < 512), then anything else as text."""
    return (0, float(v), "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0.0, str(v))


def reference(rows: list[Row], baseline: str | None, point: dict | str | None) -> Row | None:
    """The row every other is compared with; None when there is none (a swept baseline, no point)."""
    base = [r for r in rows if r.variant == baseline]
    if point == "best":  # on validation accuracy: the test set chooses nothing that it then judges
        scored = [r for r in base if r.n and not math.isnan(r.val)]
        return max(scored, key=lambda r: r.val) if scored else None
    if isinstance(point, dict):
        return next((r for r in base if r.point == point), None)
    return base[0] if len(base) == 1 else None


def _mean(xs):
    return sum(xs) / len(xs) if xs else math.nan


def _family(rows: list[Row], base: Row | None, analysis) -> list[Comparison]:
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


def percent(analysis) -> bool:
    return is_fraction(analysis.metric)
