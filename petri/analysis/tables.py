"""The results' tables, each declared once (``columns.py``): per (variant, point) ``EFFECTS``, the
family's ``COMPARISONS``, per place ``CELLS``, per epoch ``EPOCHS``, a crossed study's ``NOISE`` and
``PAIRING``, and every recorded metric per (variant, point) in ``METRICS``. ``petri.Results`` returns
their frames, the report writes their CSVs and text, ``petri show`` prints their terminal columns."""

from __future__ import annotations

import math

from .columns import Column, Context, Shown, Table, epochs_text, number, p_text
from .family import Comparison, pairing_gain
from .findings import Findings
from ..train.metrics import EPOCH_METRICS
from .records import EPOCH_COLUMNS, Place, cell_label, point_label


class Record:
    """A record with the values of the sweep axes it used (``axes``) and any extra fields."""

    def __init__(self, obj, axes: dict | None = None, **extra):
        self.obj, self.axes = obj, axes or {}
        self.__dict__.update(extra)

    def __getattr__(self, name):
        return getattr(self.obj, name)

    def __getitem__(self, name):
        return self.obj[name]

    def get(self, name, default=None):
        return self.obj.get(name, default)


def _c(name: str, dtype: str, doc: str, get, when=None) -> Column:
    return Column(name, dtype, doc, get, when)


def _of(attr: str):
    return lambda r, ctx: getattr(r, attr)


def _nan(x):
    return math.nan if x is None else x


# --- a comparison's numbers: the same columns in effects() (a row's comparison with the reference) and
# comparisons() (every comparison of the family) -------------------------------------------------------
def _cmp(attr: str):
    return lambda c, ctx: math.nan if c is None else getattr(c, attr)


COMPARISON_NUMBERS = [
    _c("diff", "float64", "the mean paired difference A − B (metric units: fractions for accuracies)", _cmp("mean")),
    _c("diff_fw_low", "float64", "its (1 − α') interval, α' = α / (m · looks): the one beside a better / worse "
       "verdict", _cmp("lo_fw")),
    _c("diff_fw_high", "float64", "", _cmp("hi_fw")),
    _c("diff_eq_low", "float64", "its (1 − 2α') interval, the one an equivalence verdict is judged on (with a "
       "margin)", _cmp("lo_eq")),
    _c("diff_eq_high", "float64", "", _cmp("hi_eq")),
    _c("diff_ci95_low", "float64", "its unadjusted 95 % interval", _cmp("lo")),
    _c("diff_ci95_high", "float64", "", _cmp("hi")),
    _c("p_t", "float64", "two-sided p of the difference, unadjusted (paired t, or the crossed model's t)", _cmp("p")),
    _c("p_wilcoxon", "float64", "signed-rank p, unadjusted (independent seeds, n >= 6)", _cmp("p_wilcoxon")),
    _c("p_signflip", "float64", "exact sign-flip p, unadjusted (independent seeds)", _cmp("p_signflip")),
    _c("p_holm", "float64", "Holm-adjusted p (for reference)", _cmp("p_holm")),
    _c("p_bonferroni", "float64", "Bonferroni-adjusted p: what better / worse read", _cmp("p_fw")),
    _c("p_tost", "float64", "Bonferroni-adjusted p of the two one-sided tests: what equivalent reads", _cmp("p_tost")),
    _c("p_better", "float64", "the share of places on which A beats B (by the metric's direction; ties count half)",
       _cmp("p_better")),
    _c("p_better_low", "float64", "its exact (Clopper–Pearson) interval at the family's level (independent seeds; "
       "none for interactions)", _cmp("p_better_lo")),
    _c("p_better_high", "float64", "", _cmp("p_better_hi")),
    _c("detectable_diff", "float64", "the smallest true difference detected with 80 % power at α' (noncentral t)",
       _cmp("detectable")),
    _c("disagree", "float64", "the share of test images the two sides' cells classify differently, mean over the "
       "paired places (from the kept predictions)", _cmp("disagree")),
    _c("p_mcnemar", "float64", "one seed only: McNemar's exact p on its two cells' test images (do these two models "
       "differ on this test set; not the variants' verdict)", _cmp("p_mcnemar")),
    _c("se", "float64", "the difference's standard error under the design's model", _cmp("se")),
    _c("df", "float64", "its degrees of freedom (n − 1, or Satterthwaite's for crossed sources)", _cmp("df")),
    _c("method", "category", "paired t (independent seeds) or crossed random effects",
       lambda c, ctx: None if c is None else c.method or None),
]


def _shown(header, text, terminal) -> Shown:
    """terminal: True (both), False (the report only), None (the terminal only)."""
    return Shown(header, text, terminal is not False, terminal is not None)


def _verdict_interval(c: Comparison | None, ctx: Context) -> str:
    if c is None or math.isnan(c.mean):
        return "—"
    lo, hi = c.interval
    return ctx.diff(c.mean) + ("" if math.isnan(lo) else " " + ctx.interval(lo, hi))


def _better(c: Comparison | None, ctx: Context) -> str:
    if c is None or math.isnan(c.p_better):
        return "—"
    return f"{c.p_better:.2f}" + ("" if math.isnan(c.p_better_lo) else f" [{c.p_better_lo:.2f}, {c.p_better_hi:.2f}]")


def _failed(c: Comparison | None, ctx) -> str:
    if c is None:
        return "—"
    (da, db), (ca, cb) = c.failed, c.at_chance
    return f"{da + ca} / {db + cb}" if da + db + ca + cb else "0"


COMPARISON_SHOWN = [  # (header, text, terminal)
    ("Δ ({unit}) [CI]", _verdict_interval, True),
    ("95 % CI (unadjusted)", lambda c, ctx: "—" if c is None else ctx.interval(c.lo, c.hi), False),
    ("p (t)", lambda c, ctx: "—" if c is None else p_text(c.p), False),
    ("p (sign-flip)", lambda c, ctx: "—" if c is None else p_text(c.p_signflip), False),
    ("p (Wilcoxon)", lambda c, ctx: "—" if c is None else p_text(c.p_wilcoxon), False),
    ("p (Holm)", lambda c, ctx: "—" if c is None else p_text(c.p_holm), False),
    ("p", lambda c, ctx: "—" if c is None else p_text(c.p_verdict), True),
    ("P(A beats B) [CI]", _better, False),
    ("P(A beats B)", lambda c, ctx: "—" if c is None else number(c.p_better), None),
    ("detectable Δ ({unit}, 80 % power)", lambda c, ctx: "—" if c is None else
     number(ctx.scale * c.detectable), True),
    ("disagree (% of test images)", lambda c, ctx: "—" if c is None else number(100 * c.disagree, "{:.1f}"), False),
    ("failed cells (A / B)", _failed, False),
]


# --- effects: one row per (variant, point) -------------------------------------------------------------
def _row_cmp(col: Column) -> Column:
    return Column(col.name, col.dtype, col.doc, lambda r, ctx: col.get(r.effect, ctx))


EFFECTS = Table(
    "effects", "one row per (variant, point): the analysed metric and the row's comparison with the reference",
    [
        _c("variant", "category", "the variant", _of("variant")),
        _c("n", "int64", "places with a final value of the analysed metric", _of("n")),
        _c("cells", "int64", "places of the row (finished or not)", _of("cells")),
        _c("{metric}", "float64", "the analysed metric's mean (fractions for accuracies)", _of("mean")),
        _c("{metric}_ci95", "float64", "the half-width of its 95 % interval under the design's model (t over "
           "seeds, or the crossed random-effects model)", _of("half_width")),
        _c("best_test_acc", "float64", "test accuracy at the best epoch (chosen on validation accuracy when there "
           "is a validation split, else on test: optimistic), mean", _of("best")),
        _c("test_loss", "float64", "final test loss, mean", _of("final_loss")),
        _c("epochs", "float64", "epochs run, mean", _of("epochs")),
        _c("diverged", "int64", "cells that diverged", lambda r, ctx: r.diverged),
        _c("at_chance", "int64", "cells that finished no better than a constant guess", _of("at_chance")),
        _c("missing", "int64", "cells without a final result (pending, running, interrupted, failed)",
           lambda r, ctx: r.missing),
        *[_row_cmp(c) for c in COMPARISON_NUMBERS],
        _c("verdict", "category", "baseline, better, worse, equivalent, inconclusive, no detectable difference, "
           "withheld, too few seeds, same cells as the reference (empty: the study declares its comparisons, "
           "see comparisons())", _of("verdict")),
        _c("reason", "string", "why there is no verdict, or what to keep in mind about it",
           lambda r, ctx: r.effect.reason if r.effect is not None else ""),
        _c("reference", "category", "what every Δ is against, in words", lambda r, ctx: ctx.extra.get("reference")),
    ],
    shown=[
        Shown("variant", lambda r, ctx: r.label, terminal=False),
        Shown("variant", lambda r, ctx: r.variant, report=False),
        Shown("point", lambda r, ctx: point_label(r.point) or "—", report=False),
        Shown("n", lambda r, ctx: str(r.n)),
        Shown("{metric}" + " (mean ± 95 % CI)", lambda r, ctx: ctx.value(r.mean) + (
            "" if math.isnan(r.half_width) else f" ± {ctx.value(r.half_width)}")),
        Shown("{best}", lambda r, ctx: number(100 * r.best), False),
        Shown("final test loss", lambda r, ctx: number(r.final_loss, "{:.4f}"), False),
        Shown("epochs", lambda r, ctx: epochs_text(r.epochs), False),
        Shown("failed", lambda r, ctx: f"{r.diverged} diverged" * bool(r.diverged) + (", " if r.diverged and r.at_chance
                                       else "") + f"{r.at_chance} at chance" * bool(r.at_chance) or "0", False),
        *[_shown(h, (lambda r, ctx, f=f: f(r.effect, ctx)), t) for h, f, t in COMPARISON_SHOWN
          if not h.startswith("failed")],
        Shown("verdict", lambda r, ctx: r.verdict or "see comparisons"),
        Shown("status", lambda r, ctx: ", ".join(f"{n} {k}" for k, n in r.status.items()), report=False),
    ])


def effects_records(f: Findings, axes: dict) -> list[Record]:
    return [Record(r, axes.get(r.key, r.point)) for r in f.rows]


# --- comparisons: every comparison of the family ----------------------------------------------------------
COMPARISONS = Table(
    "comparisons", "every comparison of the study's family, tested as one family",
    [
        _c("a", "string", "the side the difference is of", _of("a")),
        _c("b", "string", "the side it is against", _of("b")),
        _c("kind", "category", "vs reference, simple effect, interaction", _of("kind")),
        _c("at", "string", "where the comparison is made", _of("at")),
        _c("n", "int64", "places compared (seeds present on every side)", _of("n")),
        *COMPARISON_NUMBERS,
        _c("sd", "float64", "the standard deviation of the per-place differences", _of("sd")),
        _c("rho", "float64", "the correlation of the paired sides (two-sided comparisons)", _of("rho")),
        _c("pairing_gain", "float64", "1 / (1 − ρ): the seeds an unpaired design would need, as a multiple",
           lambda c, ctx: pairing_gain(c.rho)),
        _c("seeds_needed", "float64", "seeds (crossed: seeds per source) at which this spread detects `detect` (by "
           "default the margin; with a margin: shows |Δ| < margin) with 80 % power at α'",
           lambda c, ctx: c.seeds_needed(ctx.extra.get("detect") or c.margin,
                                         equivalence=ctx.extra.get("detect") is None and c.margin is not None)),
        _c("margin", "float64", "the smallest difference that matters (equivalence), metric units",
           lambda c, ctx: _nan(c.margin)),
        _c("failed_a", "int64", "cells of a that diverged or finished at chance", lambda c, ctx: sum(
            (c.failed[0], c.at_chance[0]))),
        _c("failed_b", "int64", "cells of b that diverged or finished at chance", lambda c, ctx: sum(
            (c.failed[1], c.at_chance[1]))),
        _c("verdict", "category", "better, worse, equivalent, positive / negative (interactions), inconclusive, "
           "no detectable difference, withheld, too few seeds", _of("verdict")),
        _c("reason", "string", "why there is no verdict, or what to keep in mind about it", _of("reason")),
        _c("metric", "category", "the metric compared", lambda c, ctx: ctx.metric),
        _c("family_size", "int64", "m: the comparisons tested as one family", lambda c, ctx: ctx.extra.get("m", 1)),
    ],
    shown=[
        Shown("kind", lambda c, ctx: c.kind, False),
        Shown("comparison", lambda c, ctx: c.label),
        Shown("at", lambda c, ctx: c.at or "—"),
        Shown("n", lambda c, ctx: str(c.n)),
        *[_shown(h, f, t) for h, f, t in COMPARISON_SHOWN],
        Shown("ρ (paired gain)", lambda c, ctx: "—" if math.isnan(c.rho) else f"{c.rho:.2f}" + (
            "" if math.isnan(pairing_gain(c.rho)) else f" (×{pairing_gain(c.rho):.1f})"), False),
        Shown("{need}", lambda c, ctx: number(c.seeds_needed(ctx.extra.get("detect") or c.margin,
                                                             equivalence=ctx.extra.get("detect") is None
                                                             and c.margin is not None), "{:.0f}")),
        Shown("verdict", lambda c, ctx: c.verdict),
    ], first=0)


# --- cells: one row per place ------------------------------------------------------------------------
def _final_metrics(ctx: Context) -> dict[str, list[Column]]:
    """Each source's seed (after ``seed``) and each recorded final metric (ece, users' metrics, accuracy
    per class: after ``gap``)."""
    seeds = [Column(f"seed_{s}", "int64", "", (lambda p, c, s=s: p.sources.get(s))) for s in ctx.sources]
    finals = [Column(m, "float64", "", (lambda p, c, m=m: _nan(p.value(m)))) for m in ctx.extra.get("finals", ())]
    return {"seed": seeds, "gap": finals}


CELLS = Table(
    "cells", "one row per place of the study (variant, point, seed)",
    [
        _c("variant", "category", "the variant", _of("variant")),
        _c("seed", "int64", "the seed (a crossed study: the place number, and ``seed_<source>`` (int64) columns give "
           "each random source's seed)", _of("seed")),
        _c("status", "category", "pending, running, interrupted, done, stopped-early, diverged, failed",
           lambda p, ctx: str(p.status)),
        _c("at_chance", "bool", "finished, but its test accuracy is no better than a constant guess (within 3 "
           "binomial standard errors of the largest class's share)", lambda p, ctx: p.at_chance),
        _c("epochs", "int64", "epochs finished", lambda p, ctx: len(p.epochs)),
        *[_c(m, "float64", "" if m != "train_loss" else "the last finished epoch's metrics: train_* running means "
             "over its batches (train mode); train_eval_* the first 2,000 training images evaluated as the test "
             "set is; with a test source (seeds = { test = N }), test_acc is the place's own resample's",
             (lambda p, ctx, m=m: _nan(p.value(m)))) for m in EPOCH_COLUMNS],
        _c("gap", "float64", "train_eval_acc − test_acc: the generalisation gap", lambda p, ctx: _nan(p.value("gap"))),
        _c("seconds", "float64", "the cell's training time", lambda p, ctx: _nan(p.seconds)),
        _c("hash", "string", "the cell's identity", _of("hash")),
    ], expand=_final_metrics)


EPOCHS = Table(
    "epochs", "one row per finished epoch of every place",
    [
        _c("variant", "category", "the variant", lambda r, ctx: r.place.variant),
        _c("seed", "int64", "the seed (place number)", lambda r, ctx: r.place.seed),
        _c("epoch", "int64", "the epoch (1-based)", lambda r, ctx: r.epoch.epoch),
        *[_c(m, "float64", "" if m != "train_loss" else "the epoch's metrics (as in cells(); the test split's and "
             "train_eval_* NaN in an epoch recipe.eval_every left out)",
             (lambda r, ctx, m=m: _nan(r.epoch[m]))) for m in EPOCH_COLUMNS],
        *[_c(m, "float64", about, (lambda r, ctx, m=m: _nan(r.epoch.metrics.get(m)))) for m, about in EPOCH_METRICS.items()],
        _c("learning_rate", "float64", "the learning rate of the epoch's last step (the member's rate times its "
           "schedule's factor)", lambda r, ctx: _nan(r.epoch.lr)),
        _c("images_per_s", "float64", "training images per second of the cell's pack", lambda r, ctx:
           _nan(r.epoch.images_per_s)),
        _c("seconds", "float64", "the pack's seconds, from the epoch's start to the end of its evaluation",
           lambda r, ctx: _nan(r.epoch.seconds)),
        *[_c(f"{k}_seconds", "float64", "" if k != "train" else "the cell's share of its pack's wall time training, "
             "evaluating and saving states (a study's rows sum to its packs' time; NaN for ledgers from before)",
             (lambda r, ctx, k=k: _nan(r.epoch.extra.get(f"{k}_seconds")))) for k in ("train", "eval", "checkpoint")],
        _c("pack_size", "int64", "members trained together", lambda r, ctx: r.epoch.pack_size or 1),
        _c("machine", "category", "what computed the epoch (petri.machine)", lambda r, ctx: r.epoch.machine or ""),
        _c("hash", "string", "the cell's identity", lambda r, ctx: r.place.hash),
    ])


def epoch_records(places: list[Place], axes: dict) -> list[Record]:
    return [Record(e, axes.get(p.key, p.point), place=p, epoch=e) for p in places for e in p.epochs]


def cell_records(places: list[Place], axes: dict) -> list[Record]:
    return [Record(p, axes.get(p.key, p.point)) for p in places]


# --- a crossed study's spread ----------------------------------------------------------------------------
NOISE = Table(
    "noise", "a crossed study's spread per (variant, point) and part (each varied source, the residual, the test "
    "set's share), in the metric's units squared",
    [
        _c("variant", "category", "the variant", lambda r, ctx: r["variant"]),
        _c("source", "category", "the random source, residual, or the test set", lambda r, ctx: r["source"]),
        _c("variance", "float64", "its variance component", lambda r, ctx: r.get("variance", math.nan)),
        _c("low", "float64", "the component's generalized 95 % interval", lambda r, ctx: r.get("low", math.nan)),
        _c("high", "float64", "", lambda r, ctx: r.get("high", math.nan)),
        _c("share", "float64", "its share of the total", lambda r, ctx: r.get("share", math.nan)),
        _c("share_low", "float64", "the share's generalized 95 % interval", lambda r, ctx: r.get("share_low", math.nan)),
        _c("share_high", "float64", "", lambda r, ctx: r.get("share_high", math.nan)),
        _c("sd_alone", "float64", "the pooled SD with only this source reseeded", lambda r, ctx:
           r.get("sd_alone", math.nan)),
        _c("n", "int64", "places decomposed", lambda r, ctx: r["n"]),
        _c("mean", "float64", "the metric's mean", lambda r, ctx: r["mean"]),
        _c("sd_all", "float64", "the SD over every place (every source varying)", lambda r, ctx: r["sd_all"]),
        _c("total", "float64", "the model's total variance (the sum of the parts)", lambda r, ctx: r["total"]),
    ])

PAIRING = Table(
    "pairing", "a crossed study's pairing, source by source",
    [
        _c("comparison", "string", "the comparison", _of("comparison")),
        _c("source", "category", "the shared source", _of("source")),
        _c("covariance", "float64", "the covariance component of the two sides under it", _of("covariance")),
        _c("correlation", "float64", "the correlation it implies", _of("correlation")),
        _c("removed", "float64", "2 cov: the variance of the difference that sharing it removes", _of("removed")),
        _c("removed_share", "float64", "as a share of var A + var B", _of("removed_share")),
    ], first=0)


def label(variant: str, point: dict) -> str:
    return cell_label(variant, point)
