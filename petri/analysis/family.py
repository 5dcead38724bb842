"""A study's comparisons as one family: contrasts over places, tested from the design's model, with
verdicts that the printed intervals agree with.

A comparison is a *contrast*: a weighted sum of places (variant, sweep point) evaluated place by place,
so a simple effect is ``A@p - B@p`` and an interaction ``(A@p - B@p) - (A@p0 - B@p0)``. Its per-place
values are averaged and tested with the standard error the design gives (``design.estimate``): the
paired t over independent seeds, or the crossed random-effects model with Satterthwaite degrees of
freedom when the study crosses random sources.

The rules (each validated by simulation in ``benchmarks/inference.py``; docs/results.md has the table):

* **One level.** Every test of the family runs at α' = α / (m · looks): m comparisons, and an adaptive
  study's possible looks. *better* / *worse* (*positive* / *negative* for an interaction) when the
  (1 − α') interval excludes zero, which is exactly when the Bonferroni p < α; *equivalent* (with a
  margin) when two one-sided tests at α' each show the difference inside ±margin, which is exactly when
  the (1 − 2α') interval lies inside ±margin — that interval is the one printed beside the verdict.
  Holm's p (never larger than Bonferroni's) is reported, labelled, for reference.
* **No certainty from no spread.** When every place gives the same difference there is no spread to
  test against: no verdict ("withheld"), however many seeds.
* **Quantised accuracies.** An accuracy moves in steps of one test image. When the paired differences
  of independent seeds spread less than ``RESOLUTION`` such steps, the t's normal approximation does
  not hold and a verdict also needs the exact sign-flip test (every assignment of signs to the seeds'
  differences; valid for any symmetric distribution) to reject at α'.
* **Failed cells count.** A diverged cell is an outcome of its recipe: by default a comparison with a
  diverged cell on either side gets no verdict (survivors alone would favour the unstable side); with
  ``[analysis] failed = "chance"`` a diverged cell enters at chance accuracy instead. Cells that finished
  at chance enter at their measured value and are counted.
* **Too few levels.** An incomplete crossing gets no verdict (its note says why).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as st

from . import power
from .design import Estimate, estimate

ALPHA = 0.05
RESOLUTION = 2  # quanta (test images): below this spread a verdict also needs the exact sign-flip test
DECIDED = ("better", "worse", "equivalent", "positive", "negative")

Key = tuple[str, str]  # (variant, point as canonical JSON)


@dataclass
class Comparison:
    a: str  # the side the difference is of: "bn (lr=0.5)", or for an interaction "(bn − plain) at lr=0.5"
    b: str  # the side it is against
    kind: str  # "vs reference", "simple effect", "interaction"
    terms: tuple[tuple[Key, float], ...]  # places and their weights
    margin: float | None = None  # smallest difference that matters (metric units), for equivalence
    at: str = ""  # where the comparison is made (a point's label), for tables
    higher_better: bool = True  # the metric's direction: "better" and P(A beats B) follow it
    diffs: dict[int, float] = field(default_factory=dict)  # per place
    n: int = 0
    dropped: int = 0  # places present in some terms only (not failures: pending, failed runs)
    failed: tuple[int, int] = (0, 0)  # diverged cells on the a and b sides (not among the places compared)
    at_chance: tuple[int, int] = (0, 0)  # cells that finished at chance on each side (compared at their value)
    est: Estimate | None = None
    mean: float = math.nan
    sd: float = math.nan  # of the per-place differences
    se: float = math.nan  # the mean's standard error under the design's model
    df: float = math.nan
    method: str = ""  # "paired t" or "crossed random effects"
    alpha: float = ALPHA  # the level every test of the family runs at: α / (m · looks)
    lo: float = math.nan  # unadjusted 95 % interval
    hi: float = math.nan
    lo_fw: float = math.nan  # (1 − α') interval: the one beside a better / worse verdict
    hi_fw: float = math.nan
    lo_eq: float = math.nan  # (1 − 2α') interval: the one an equivalence verdict is judged on
    hi_eq: float = math.nan
    p: float = math.nan  # two-sided, unadjusted
    p_holm: float = math.nan
    p_fw: float = math.nan  # Bonferroni (× m · looks): what better / worse read
    p_tost: float = math.nan  # equivalence, Bonferroni-adjusted: what "equivalent" reads
    p_signflip: float = math.nan  # exact sign-flip test, unadjusted (independent seeds only)
    p_wilcoxon: float = math.nan  # signed rank, unadjusted, n >= 6 (independent seeds only)
    p_better: float = math.nan  # share of places on which A beats B (ties count half)
    p_better_lo: float = math.nan  # its exact (Clopper–Pearson) interval at the family's level
    p_better_hi: float = math.nan
    rho: float = math.nan  # correlation of the paired sides (two-term contrasts)
    detectable: float = math.nan  # smallest true difference detected with 80 % power at α'
    quantum: float | None = None  # the metric's step (1 / test images), where it has one
    disagree: float = math.nan  # the share of test images the two sides' cells classify differently (mean over places)
    p_mcnemar: float = math.nan  # one seed: McNemar's exact test on its cells' test images (a narrower question)
    verdict: str = ""
    reason: str = ""  # why there is no verdict, or what to keep in mind about it

    @property
    def label(self) -> str:
        return f"{self.a} − {self.b}"

    @property
    def crossed(self) -> bool:
        return self.method == "crossed random effects"

    @property
    def interval(self) -> tuple[float, float]:
        """The interval printed beside the verdict: the equivalence test's for "equivalent"."""
        return (self.lo_eq, self.hi_eq) if self.verdict == "equivalent" else (self.lo_fw, self.hi_fw)

    @property
    def p_verdict(self) -> float:
        """The p the verdict read: TOST's for "equivalent" (and for an inconclusive equivalence question
        whose difference test is not significant either), else the difference test's (Bonferroni)."""
        return self.p_tost if self.verdict == "equivalent" else self.p_fw

    def seeds_needed(self, delta: float | None, alpha: float | None = None, equivalence: bool = False) -> float:
        """Seeds (independent: pairs; crossed: seeds per source) at which this comparison's spread detects a
        true difference ``delta`` (``equivalence``: shows |Δ| < ``delta``) with 80 % power at the verdicts'
        level (or ``alpha``)."""
        alpha = self.alpha if alpha is None else alpha
        if not delta or self.n < 2 or self.est is None:
            return math.nan
        if self.crossed:
            factors = [f for f in self.est.levels]
            return power.levels_needed(self.est.components, factors, delta, alpha, equivalence=equivalence)
        return (power.tost_seeds if equivalence else power.seeds_needed)(self.sd, delta, alpha)


def contrast(terms, values: dict[Key, dict[int, float]]) -> tuple[dict[int, float], int]:
    """Per-place value of a weighted sum of places, over the places every term has; and how many places
    some terms lack."""
    sides = [values.get(k, {}) for k, _ in terms]
    common = set.intersection(*(set(s) for s in sides)) if sides else set()
    every = set.union(*(set(s) for s in sides)) if sides else set()
    return {s: sum(w * side[s] for side, (_, w) in zip(sides, terms)) for s in sorted(common)}, len(every - common)


@dataclass
class Design:
    """What the family needs of the study's design: each place's crossed seeds and which crossed factors
    each (variant, point)'s cells draw from (empty for independent seeds), and the metric's step."""

    levels: dict[int, dict[str, int]] = field(default_factory=dict)
    uses: dict[Key, frozenset] = field(default_factory=dict)
    factors: list[str] = field(default_factory=list)
    quantum: dict[Key, float] = field(default_factory=dict)  # 1 / test images, for accuracies

    def factors_of(self, keys) -> list[str]:
        used = set().union(*(self.uses.get(k, frozenset()) for k in keys)) if keys else set()
        return [f for f in self.factors if f in used]

    def estimate(self, values: dict[int, float], keys) -> Estimate:
        return estimate(values, self.levels, self.factors_of(keys)) if self.factors else estimate(values)


def _sides(counts: dict[Key, int] | None, terms) -> tuple[int, int]:
    counts = counts or {}
    return sum(counts.get(k, 0) for k, w in terms if w > 0), sum(counts.get(k, 0) for k, w in terms if w < 0)


def test(c: Comparison, values: dict[Key, dict[int, float]], alpha: float, design: Design,
         failed: dict[Key, int] | None = None, chance: dict[Key, int] | None = None, extras: bool = True) -> None:
    """Fill ``c``'s numbers at level ``alpha`` (α' of the family). ``failed``: diverged cells per place key
    (not in ``values``); ``chance``: cells at chance (in ``values``). ``extras``: Wilcoxon, sign-flip,
    P(A beats B) and ρ too."""
    keys = [k for k, _ in c.terms]
    c.alpha = alpha
    c.diffs, c.dropped = contrast(c.terms, values)
    c.failed, c.at_chance = _sides(failed, c.terms), _sides(chance, c.terms)
    d = np.array(list(c.diffs.values()), dtype=float)
    c.n = len(d)
    if c.n == 0:
        return
    c.mean = float(d.mean())
    if c.n < 2:
        return
    c.sd = float(d.std(ddof=1))
    if np.ptp(d) <= 1e-9 * np.abs(d).max():  # the same difference everywhere (up to float rounding)
        c.se = 0.0
        return
    c.est = est = design.estimate(c.diffs, keys)
    c.method = "crossed random effects" if est.method == "crossed" else "paired t"
    c.mean, c.se, c.df = est.mean, est.se, est.df
    c.quantum = max((design.quantum.get(k, 0.0) for k in keys), default=0.0) or None
    if est.note:
        c.reason = est.note
        return
    if c.se > 0:
        c.p = est.p()
        c.lo, c.hi = est.interval(1 - ALPHA)
        c.lo_fw, c.hi_fw = est.interval(1 - alpha)
        if c.margin is not None:
            c.lo_eq, c.hi_eq = est.interval(1 - 2 * alpha)
            c.p_tost = float(max(st.t.sf((c.mean + c.margin) / c.se, c.df), st.t.cdf((c.mean - c.margin) / c.se, c.df)))
        c.detectable = power.detectable(c.se, c.df, alpha)
    if not extras:
        return
    if not c.crossed:
        if c.n >= 6:
            c.p_wilcoxon = 1.0 if not d.any() else float(st.wilcoxon(d).pvalue)
        c.p_signflip = signflip(d)
    wins = ((d > 0) if c.higher_better else (d < 0)) + 0.5 * (d == 0)
    if c.kind != "interaction":  # an interaction's sign is no win
        c.p_better = float(wins.mean())
        if not c.crossed:  # places of a crossing are not independent trials
            from statsmodels.stats.proportion import proportion_confint

            c.p_better_lo, c.p_better_hi = map(float, proportion_confint(wins.sum(), c.n, alpha, "beta"))
    if len(c.terms) == 2 and c.n >= 3:
        (ka, _), (kb, _) = c.terms
        xa = np.array([values[ka][s] for s in c.diffs])
        xb = np.array([values[kb][s] for s in c.diffs])
        if xa.std() > 0 and xb.std() > 0:
            c.rho = float(np.corrcoef(xa, xb)[0, 1])


def signflip(d: np.ndarray) -> float:
    """Exact two-sided p of the sign-flip (randomisation) test of mean = 0: every assignment of signs
    to the differences (up to 2^16; beyond, 100,000 random ones), scipy's ``permutation_test``."""
    if len(d) < 2 or not d.any():
        return 1.0
    res = st.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=100_000,
                              alternative="two-sided", rng=np.random.default_rng(0))
    return float(res.pvalue)


def analyse(family: list[Comparison], values: dict[Key, dict[int, float]], alpha: float = ALPHA, looks: int = 1,
            extras: bool = True, design: Design | None = None, failed: dict[Key, int] | None = None,
            chance: dict[Key, int] | None = None, withhold_failed: bool = True) -> int:
    """Test every comparison as one family; returns m, the number of comparisons with a test (n >= 2).
    ``looks``: an adaptive study's possible looks, over which α is split too. ``failed`` / ``chance``:
    diverged cells and cells at chance per place key; ``withhold_failed``: no verdict where a side has a
    diverged cell (False when they entered ``values`` at chance accuracy)."""
    design = design or Design()
    for c in family:  # first pass: which can be tested at all
        c.diffs, c.dropped = contrast(c.terms, values)
    testable = [c for c in family if len(c.diffs) >= 2]
    m = max(len(testable), 1)
    for c in family:
        test(c, values, alpha / (m * looks), design, failed, chance, extras)
    ps = [c for c in testable if not math.isnan(c.p)]
    if ps:
        p = np.array([c.p for c in ps])
        for c, h, b in zip(ps, holm(p), np.minimum(1.0, p * len(p))):
            c.p_holm, c.p_fw = float(min(1.0, h * looks)), float(min(1.0, b * looks))
            if not math.isnan(c.p_tost):
                c.p_tost = float(min(1.0, c.p_tost * m * looks))
    for c in family:
        c.verdict, why = verdict(c, withhold_failed)
        c.reason = "; ".join(x for x in (c.reason, why) if x)
    return m


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (statsmodels' ``multipletests(p, method="holm")``, which the tests
    check; computed here because that function collects garbage on every call, ~0.2 s in a large process)."""
    order = np.argsort(p)
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * np.arange(len(p), 0, -1)))
    out = np.empty_like(adjusted)
    out[order] = adjusted
    return out


def verdict(c: Comparison, withhold_failed: bool = True) -> tuple[str, str]:
    """The verdict and, when there is none or it needs a caution, why."""
    if c.n < 2:
        return "too few seeds", "a comparison needs 2 seeds with a result on both sides"
    if withhold_failed and any(c.failed):
        a, b = c.failed
        sides = " and ".join(f"{k} cell{'s' if k != 1 else ''} of {s}" for k, s in ((a, c.a), (b, c.b)) if k)
        return "withheld", (f"{sides} diverged: comparing the survivors alone would favour the unstable side "
                            "([analysis] failed = \"chance\" counts them at chance accuracy instead)")
    if c.reason and math.isnan(c.se):  # an incomplete crossing: the estimate's note says why
        return "withheld", ""
    if c.se == 0:
        return "withheld", "no spread: every seed gave the same difference, so there is nothing to test it against"
    caution = "2 seeds: a t on 1 degree of freedom (its interval is 12.7 standard errors wide at 95 %)" \
        if c.n == 2 and not c.crossed else ""
    if c.margin is not None and c.p_tost < ALPHA:
        return "equivalent", caution
    if c.lo_fw > 0 or c.hi_fw < 0:
        q = c.quantum
        if q and not c.crossed and c.sd < RESOLUTION * q and not c.p_signflip < c.alpha:
            return ("inconclusive" if c.margin is not None else "no detectable difference",
                    f"the differences spread less than {RESOLUTION} test images, where the t's normal approximation "
                    f"fails; the exact sign-flip test does not reject (p = {c.p_signflip:.2g} before adjustment)")
        if c.kind == "interaction":  # an interaction has a sign, not a direction of merit
            return ("positive" if c.lo_fw > 0 else "negative"), caution
        return ("better" if (c.lo_fw > 0) == c.higher_better else "worse"), caution
    return ("inconclusive" if c.margin is not None else "no detectable difference"), caution


def pairing_gain(rho: float) -> float:
    """How many times the seeds an unpaired design would need for the same interval: var(A - B) is
    2σ²(1 - ρ) paired and 2σ² unpaired (equal variances), so 1 / (1 - ρ)."""
    return math.nan if math.isnan(rho) or rho >= 1 else 1 / (1 - rho)


def target_met(family: list[Comparison], until: str, width: float | None) -> bool:
    """An adaptive study's stopping target: every comparison decided, or every family-wise interval
    narrower than ``width``."""
    if not family:
        return False
    if until == "width":
        return all(c.n >= 2 and c.hi_fw - c.lo_fw < width for c in family)
    return all(c.verdict in DECIDED for c in family)
