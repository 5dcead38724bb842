"""What the report and ``petri show`` both say, in words and text tables, from one ``analysis.view.View``:
the tables' text (declared in ``analysis/tables.py``), the noise tables, the notes under the tables and
the sentences about looks, adaptive rounds and cells not shown."""

from __future__ import annotations

import json
import math

from ..analysis import tables as T
from ..analysis.columns import number
from ..analysis.findings import Findings
from ..analysis.records import cell_label
from ..analysis.variance import RESIDUAL, Noise


def by_effect(rows):
    """The reference first, then by effect, largest first (the report's order; the study's order elsewhere)."""
    return sorted(rows, key=lambda r: (r.verdict != "baseline",
                                       -(r.effect.mean if r.effect and not math.isnan(r.effect.mean) else -9)))


def effects_text(v, terminal: bool = False) -> tuple[list[str], list[list[str]]]:
    """The variants table: without any comparison against the reference, its comparison columns are
    left out."""
    f = v.findings
    on_val = f.rows and all(r.best_on == "val" for r in f.rows)
    ctx = _with(v.context, best="best epoch's test acc % (chosen on val)" if on_val else
                "best test acc % (epoch chosen on test: optimistic, never in verdicts)")
    records = T.effects_records(f, v.axes)
    if not terminal:  # the report sorts by effect; the terminal keeps the study's order
        order = {id(r): i for i, r in enumerate(by_effect(f.rows))}
        records.sort(key=lambda rec: order[id(rec.obj)])
    head, rows = T.EFFECTS.text(records, ctx, terminal)
    if not any(r.effect for r in f.rows):  # nothing against the reference (a noise study: its spread instead)
        keep = [i for i, h in enumerate(head) if not (h.startswith(("Δ", "95 %", "p (", "P(A", "detectable", "disagree"))
                                                       or h in ("p", "verdict"))]
        sd = [number(v.context.scale * r.sd) for r in (rec.obj for rec in records)]
        head = [head[i] for i in keep] + [f"SD between seeds ({v.context.unit})"]
        rows = [[row[i] for i in keep] + [s] for row, s in zip(rows, sd)]
        if f.family:  # declared comparisons: the rows have none of their own
            head.append("verdict")
            rows = [row + [r.verdict or "see comparisons"] for row, r in zip(rows, (rec.obj for rec in records))]
    return head, rows


def comparisons_text(v, detect: float | None = None, terminal: bool = False, family=None):
    """The comparisons table (declared ones, simple effects and interactions: ``found.declared``)."""
    f = v.findings
    d = detect if detect is not None else f.analysis.margin
    need = (f"seeds to show |Δ| < {v.context.scale * d:g} {v.context.unit}" if detect is None and d else
            f"seeds to detect {v.context.scale * d:g} {v.context.unit}" if d else "seeds needed (no margin)")
    if any(c.crossed for c in f.family):
        need += " (crossed: per source)"
    ctx = _with(v.context, need=need, detect=detect)
    return T.COMPARISONS.text(f.declared if family is None else family, ctx, terminal)


def _with(ctx, **extra):
    from dataclasses import replace

    return replace(ctx, extra={**ctx.extra, **extra})


def reasons(f: Findings) -> list[str]:
    """Each comparison's reason (why no verdict, or a caution), once per distinct reason."""
    out: dict[str, list[str]] = {}
    for c in f.family:
        if c.reason:
            out.setdefault(c.reason, []).append(c.label)
    return [f"{', '.join(labels[:3])}{f' (+{len(labels) - 3})' if len(labels) > 3 else ''}: {why}"
            for why, labels in out.items()]


def table_notes(v) -> list[str]:
    """What the tables' columns mean, in sentences (shared by the HTML, the markdown and the terminal)."""
    f = v.findings
    rows, m, a = f.rows, f.m, f.analysis
    level = f"{100 * f.level:.4g} %"
    what = "final " + a.metric.replace("_", " ")
    crossed = any(c.crossed for c in f.family)
    if not f.family:  # one variant (a study of its noise), or a swept baseline without a reference point
        warnings = " ".join(v.snapshot.warnings)
        return [f"Nothing is compared: {warnings}" if warnings else "One variant: nothing is compared. n: its seeds; "
                f"{what} as mean ± 95 % interval over them; SD: the spread between seeds."]
    notes = [f"Δ: the difference in {what}, paired by seed (places missing on one side are left out of that pair)"
             + (f", against {v.snapshot.reference}. " if not a.compare else ". ")
             + f"The study's {m} comparison{'s are' if m != 1 else ' is'} one family tested at α' = 0.05 / {m * a.looks}"
             f": 'better' / 'worse' when the ({level}) interval excludes zero, exactly when the Bonferroni p < 0.05, so "
             "an interval and its verdict never disagree. Holm's p (never larger) and the unadjusted 95 % interval are "
             "shown, labelled, for reference. The p beside a verdict is the one it read (TOST's for 'equivalent', else "
             "Bonferroni's)."]
    if crossed:
        notes.append("Crossed random sources: each difference (and each variant's mean) is analysed with the crossed "
                     "random-effects model of how its places were drawn (a component per source and a residual, from "
                     "the ANOVA mean squares, clipped at zero), with Satterthwaite's degrees of freedom — places that "
                     "share a seed are not independent, so a t over all places would be too narrow.")
    if a.looks > 1:
        notes.append(f"Adaptive seeds: the study may look at its comparisons after each of {a.looks} rounds, so α is "
                     f"split over the looks too (Bonferroni α-spending: {level} intervals), which keeps looking after "
                     "every round from inflating false positives.")
    if a.margin is not None or any(c.margin for c in f.family):
        notes.append(f"Equivalence: a comparison with a margin (±{v.context.scale * (a.margin or 0):g} {v.context.unit} "
                     f"unless its own is given) is 'equivalent' when two one-sided tests at α' each show the difference "
                     f"inside ±margin — exactly when its ({100 * (1 - 2 * (1 - f.level)):.4g} %) interval lies inside "
                     "±margin; that interval is printed beside the verdict, and the p beside it is the tests' (TOST, "
                     "Bonferroni-adjusted). 'better' or 'worse' when the difference test rejects, else 'inconclusive'.")
    if any(c.n == 2 and not c.crossed for c in f.family):
        notes.append("Caution: a comparison on 2 seeds rests on a t with 1 degree of freedom (its interval is 12.7 "
                     "standard errors wide at 95 %); a verdict needs at least 2 seeds, and 5 or more are advised.")
    if not crossed:
        notes.append("Accuracies move in steps of one test image: where the paired differences spread less than 2 "
                     "test images, a verdict also needs the exact sign-flip test to reject at α' (the t's normal "
                     "approximation fails there); p (sign-flip) is shown for every comparison.")
    if any(any(c.failed) or any(c.at_chance) for c in f.family) or any(r.at_chance or r.diverged for r in rows):
        how = ("enter at chance accuracy" if getattr(a, "failed", "withhold") == "chance" else
               "withhold the verdict of every comparison they are in (the survivors alone would favour the unstable "
               "side; [analysis] failed = \"chance\" counts them at chance accuracy instead)")
        notes.append(f"Failed cells: diverged cells {how}; cells that finished at chance (test accuracy within 3 "
                     "binomial standard errors of a constant guess) enter at their measured value and are counted.")
    if any(c.n and c.n < 6 and not c.crossed for c in f.family):
        notes.append("p (Wilcoxon) is '—' with fewer than 6 paired seeds: the signed-rank test cannot reach p < 0.05 "
                     "below n = 6, so it is not reported.")
    if not all(r.best_on == "val" for r in rows):
        notes.append("The best epoch is chosen on the test set (there is no validation split): an optimistic number, "
                     "shown for reference and never used in a verdict; set val_size for an honest one.")
    notes.append("P(A beats B): the share of seeds on which A beats B (higher accuracy; lower loss, ECE or gap; ties "
                 "count half), with its exact (Clopper–Pearson) interval at the family's level; not for interactions"
                 + (" nor crossed sources, whose places are not independent trials" if crossed else "") +
                 ". 'detectable Δ' is the smallest true difference this design would detect with 80 % power at α' "
                 "(noncentral t): if it is larger than the effect you care about, add seeds (`petri plan DIR "
                 "--detect Δ` says how many).")
    return notes


METRIC_HEADS = {"test_acc": "test acc %", "test_loss": "test loss", "train_eval_acc": "train acc % (eval mode)",
                "gap": "gap (pp, train − test)", "ece": "ECE %"}


def metrics_tables(v) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """(title, note, head, rows): every recorded metric's mean ± 95 % half-width per (variant, point)
    (``View.metrics``), and a second table of the test accuracy per class when the cells recorded it."""
    from ..train.metrics import is_fraction

    def cell(m: str, e) -> str:
        scale, fmt = (100, "{:.2f}") if is_fraction(m) else (1, "{:.4f}")  # (the variants table's loss: 4 places)
        hw = e.half_width(0.95) if e.n >= 2 else math.nan
        return number(scale * e.mean, fmt) + ("" if math.isnan(hw) else f" ± {number(scale * hw, fmt)}")

    table: dict[str, dict[str, str]] = {}
    for r, m, e in v.metric_estimates():
        table.setdefault(r.label, {})[m] = cell(m, e)
    if not table:
        return []
    names = list(dict.fromkeys(m for row in table.values() for m in row))
    classes = v.snapshot.classes
    out = []
    for title, note, chosen, head in (
            ("Every metric", "Each recorded metric's mean over the finished seeds ± the 95 % half-width under the "
             "design's model (fractions in %, the gap in pp; `Results.metrics()` gives them as a DataFrame).",
             [m for m in names if not m.startswith("class_acc:")], lambda m: METRIC_HEADS.get(m, m)),
            ("Test accuracy per class (%)", "Each class's test accuracy, mean ± 95 % half-width over seeds.",
             [m for m in names if m.startswith("class_acc:")],
             lambda m: (lambda i: classes[i] if i < len(classes) else str(i))(int(m.split(":")[1])))):
        if chosen:
            out.append((title, note, ["variant", *[head(m) for m in chosen]],
                        [[label, *[row.get(m, "—") for m in chosen]] for label, row in table.items()]))
    return out


def noise_tables(spread: Noise | None, percent: bool) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """(title, note, head, rows) of a crossed study's spread and pairing tables; none for other studies."""
    if spread is None:
        return []
    out = [("Where the noise comes from", f"Crossed random sources: {', '.join(spread.factors)}. Each source's share "
            "of the model's total variance between seeds (crossed random effects; generalized 95 % intervals; the "
            "SD column is that total's square root), the residual (interactions and the rest), the share the finite "
            "test set gives by itself — measured from the cells' per-example predictions as Jordan's Σ pᵢ(1 − pᵢ)/n² "
            "(95 % interval: the cells resampled), and its binomial upper bound p(1 − p)/n (every image equally hard) "
            "— and the spread (pooled SD) when only one source is reseeded and the others are held fixed.",
            noise_head(spread, percent), noise_rows(spread, percent))]
    if spread.pairing:
        out.append(("What pairing gains, source by source", "For each comparison: how correlated its two sides are "
                    "under each shared source, and how much of the unpaired difference's variance sharing that source "
                    "removes (negative: sharing it adds variance).", PAIRING_HEAD, pairing_rows(spread)))
    return out


def _terms(noise: Noise) -> list[str]:
    """The parts a noise table shows, in order: each source, the trained cell's own term where places
    resample cells (``design.CELL``), the residual."""
    from ..analysis.design import CELL

    cell = any(p.source == CELL for s in noise.spreads for p in s.parts)
    return [*noise.factors, *([CELL] if cell else []), RESIDUAL]


def noise_head(noise: Noise, percent: bool) -> list[str]:
    unit = "pp" if percent else noise.metric
    names = {"cell": "trained cell (interactions)"}
    return ["variant", "n", f"SD, model total ({unit})", *[f"{names.get(f, f)} % [95 % CI]" for f in _terms(noise)],
            "test set, per example % [95 % CI]", "test set, binomial bound %",
            f"SD with one source varying ({unit})"]


def noise_rows(noise: Noise, percent: bool) -> list[list[str]]:
    """A crossed study's spread per (variant, point): each source's share of the variance between seeds
    (``variance.Spread``), the test set's share, and the spread with only one source reseeded."""
    scale = 100 if percent else 1
    out = []
    for s in noise.spreads:
        parts = {p.source: p for p in s.parts}
        share = [f"{100 * p.share:.0f} [{100 * p.share_low:.0f}, {100 * p.share_high:.0f}]" if p else "—"
                 for p in (parts.get(f) for f in _terms(noise))]
        alone = ", ".join(f"{f} {scale * parts[f].sd_alone:.3f}" for f in noise.factors
                          if f in parts and not math.isnan(parts[f].sd_alone))  # (fixed decimals: 1e-15 reads 0.000)
        t = s.total if s.total > 0 else math.nan
        measured = "—" if not s.measured else (f"{100 * s.test_examples / t:.0f} [{100 * s.test_examples_low / t:.0f}, "
                                               f"{100 * s.test_examples_high / t:.0f}]")
        out.append([cell_label(s.variant, s.point), str(s.n), number(scale * math.sqrt(t), "{:.3g}") if t == t else
                    number(scale * s.sd_all, "{:.3g}"), *share, measured, number(100 * s.test_set / t, "{:.0f}"),
                    alone or s.note or "—"])
    return out


PAIRING_HEAD = ["comparison", "shared source", "ρ of the two sides under it",
                "variance the pairing removes (% of var A + var B)"]


def pairing_rows(noise: Noise) -> list[list[str]]:
    """Per comparison and shared source: how correlated the two sides are under it, and what sharing it
    takes off the paired difference's variance (``variance.Shared``)."""
    return [[p.comparison, p.source, number(p.correlation, "{:+.2f}"), number(100 * p.removed_share, "{:+.0f}")]
            for p in noise.pairing]


def prior_looks(runs: list[dict], seeds: list[int]) -> int:
    """Earlier runs of a fixed-size study that had results on another set of seeds: each was a look at
    its verdicts (seeds added by hand after a finished run). Runs from before seeds were recorded are
    not counted."""
    sets = {r["seeds"] for r in runs if r.get("seeds") and r["status"] == "done"}
    return len(sets - {json.dumps(seeds)})


def looks_line(snap) -> str | None:
    study = snap.study
    n = 0 if study is None or study.adaptive else prior_looks(snap.runs, study.seeds)
    if not n:
        return None
    return (f"These verdicts were computed before on other seeds ({n} earlier run{'s' if n != 1 else ''} with "
            "results): a fixed-size test does not cover repeated looks, so verdicts reached by adding seeds until "
            "they appear are optimistic; adaptive seeds (seeds = { min, max }) is the way to look after every round.")


def adaptive_line(state: dict | None) -> str | None:
    """One sentence on an adaptive study's looks and why it stopped (or that it has not yet)."""
    from .looks import summary

    return summary(state)
