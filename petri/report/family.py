"""A study's comparisons as one family: paired contrasts over seeds, family-wise intervals that agree
with the verdicts, equivalence within a margin, P(A > B), and the seeds a question needs.

A comparison is a *contrast*: a weighted sum of places (variant, sweep point) evaluated seed by seed,
so a simple effect is ``A@p - B@p`` and an interaction ``(A@p - B@p) - (A@p0 - B@p0)``; every one is
a paired one-sample t on the per-seed values (seeds present in every term). The family's verdicts use
single-step Bonferroni: a comparison is called when its (1 - α/m) t-interval excludes zero, which is
exactly when its Bonferroni p < α, so an interval and its verdict never disagree. Holm's p (never
larger than Bonferroni's) is reported beside it, labelled. Statistics are scipy's and statsmodels':
``ttest_1samp(...).confidence_interval``, ``multipletests``, ``bootstrap``, ``TTestPower``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as st

ALPHA = 0.05
POWER = 0.8

Key = tuple[str, str]  # (variant, point as canonical JSON)


@dataclass
class Comparison:
    a: str  # the side the difference is of: "bn (lr=0.5)", or for an interaction "bn - plain at lr=0.5"
    b: str  # the side it is against
    kind: str  # "vs reference", "simple effect", "interaction", "asked" (from Python, outside the family)
    terms: tuple[tuple[Key, float], ...]  # places and their weights
    margin: float | None = None  # smallest difference that matters (metric units), for equivalence
    at: str = ""  # where the comparison is made (a point's label), for tables
    higher_better: bool = True  # the metric's direction: a verdict's "better" and P(A beats B) follow it
    diffs: dict[int, float] = field(default_factory=dict)  # per seed
    n: int = 0
    dropped: int = 0  # seeds present in some terms only
    mean: float = math.nan
    sd: float = math.nan
    lo: float = math.nan  # unadjusted 1 - α interval
    hi: float = math.nan
    lo_fw: float = math.nan  # family-wise (1 - α/m) interval: the one printed beside the verdict
    hi_fw: float = math.nan
    p: float = math.nan  # paired t, unadjusted
    p_holm: float = math.nan
    p_fw: float = math.nan  # single-step Bonferroni: what the verdict uses
    p_wilcoxon: float = math.nan  # signed rank, unadjusted, n >= 6
    p_better: float = math.nan  # share of seeds on which A beats B (ties count half): contrast > 0, or < 0 for losses
    p_better_lo: float = math.nan  # its bootstrap percentile interval
    p_better_hi: float = math.nan
    rho: float = math.nan  # correlation of the paired sides (two-term contrasts)
    detectable: float = math.nan  # smallest true difference detected with 80 % power at the family's level
    verdict: str = ""

    @property
    def label(self) -> str:
        return f"{self.a} − {self.b}"

    def seeds_needed(self, delta: float, m: int, alpha: float = ALPHA) -> float:
        """Seeds (pairs) to detect a true difference ``delta`` with 80 % power, two-sided, at the
        family's level α/m, from this comparison's paired standard deviation (statsmodels TTestPower)."""
        if not (self.n >= 2 and delta > 0) or math.isnan(self.sd):
            return math.nan
        if self.sd == 0:
            return 2.0
        from statsmodels.stats.power import TTestPower

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            n = TTestPower().solve_power(effect_size=delta / self.sd, alpha=alpha / max(m, 1), power=POWER,
                                         alternative="two-sided")
        return float(max(2, math.ceil(n)))


def contrast(terms, values: dict[Key, dict[int, float]]) -> tuple[dict[int, float], int]:
    """Per-seed value of a weighted sum of places, over the seeds every place has; and how many seeds
    some places lack."""
    sides = [values.get(k, {}) for k, _ in terms]
    common = set.intersection(*(set(s) for s in sides)) if sides else set()
    every = set.union(*(set(s) for s in sides)) if sides else set()
    return {s: sum(w * side[s] for side, (_, w) in zip(sides, terms)) for s in sorted(common)}, len(every - common)


def test(c: Comparison, values: dict[Key, dict[int, float]], m: int, alpha: float = ALPHA, extras: bool = True) -> None:
    """Fill ``c``'s numbers at the family's level ``alpha / m`` (``m``: comparisons × looks; p-values'
    corrections come from ``analyse``). ``extras``: Wilcoxon, P(A > B) and ρ too (not needed to decide)."""
    c.diffs, c.dropped = contrast(c.terms, values)
    d = np.array(list(c.diffs.values()), dtype=float)
    c.n = len(d)
    if c.n == 0:
        return
    c.mean = float(d.mean())
    if c.n < 2:
        return
    c.sd = float(d.std(ddof=1))
    if c.sd == 0:  # every seed the same difference: no spread to test against
        c.p = 1.0 if c.mean == 0 else 0.0
        c.lo = c.hi = c.lo_fw = c.hi_fw = c.mean
    else:
        t = st.ttest_1samp(d, 0.0)
        c.p = float(t.pvalue)
        c.lo, c.hi = map(float, t.confidence_interval(1 - alpha))
        c.lo_fw, c.hi_fw = map(float, t.confidence_interval(1 - alpha / m))
    df = c.n - 1
    c.detectable = float((st.t.ppf(1 - alpha / m / 2, df) + st.t.ppf(POWER, df)) * c.sd / math.sqrt(c.n))
    if not extras:
        return
    if c.n >= 6:
        c.p_wilcoxon = 1.0 if not d.any() else float(st.wilcoxon(d).pvalue)
    wins = ((d > 0) if c.higher_better else (d < 0)) + 0.5 * (d == 0)
    c.p_better = float(wins.mean())
    if np.ptp(wins) > 0:
        b = st.bootstrap((wins,), np.mean, confidence_level=1 - alpha, method="percentile", n_resamples=9999,
                         rng=np.random.default_rng(0))
        c.p_better_lo, c.p_better_hi = float(b.confidence_interval.low), float(b.confidence_interval.high)
    else:
        c.p_better_lo = c.p_better_hi = c.p_better
    if len(c.terms) == 2 and c.n >= 3:
        (ka, _), (kb, _) = c.terms
        xa = np.array([values[ka][s] for s in c.diffs])
        xb = np.array([values[kb][s] for s in c.diffs])
        if xa.std() > 0 and xb.std() > 0:
            c.rho = float(np.corrcoef(xa, xb)[0, 1])


def analyse(family: list[Comparison], values: dict[Key, dict[int, float]], alpha: float = ALPHA, looks: int = 1,
            extras: bool = True) -> int:
    """Test every comparison as one family; returns m, the number of comparisons with a test (n >= 2).
    ``looks``: an adaptive study's possible looks, over which α is split too (the intervals and the
    Bonferroni p are for α / (m · looks))."""
    from statsmodels.stats.multitest import multipletests

    for c in family:  # first pass: which can be tested at all
        c.diffs, c.dropped = contrast(c.terms, values)
    testable = [c for c in family if len(c.diffs) >= 2]
    m = max(len(testable), 1)
    for c in family:
        test(c, values, m * looks, alpha, extras)
    if testable:
        ps = [c.p for c in testable]
        for c, h, b in zip(testable, multipletests(ps, alpha, "holm")[1], multipletests(ps, alpha, "bonferroni")[1]):
            c.p_holm, c.p_fw = float(min(1.0, h * looks)), float(min(1.0, b * looks))
    for c in family:
        c.verdict = verdict(c)
    return m


def verdict(c: Comparison) -> str:
    """Read off the family-wise interval: inside ±margin → equivalent (two one-sided tests at α/m each
    side, hence within the two-sided (1 - α/m) interval); above 0 → better; below → worse (for an
    interaction, positive or negative: A's effect over B grows or shrinks across the sweep)."""
    if c.n < 2:
        return "too few seeds"
    if c.margin is not None and -c.margin < c.lo_fw and c.hi_fw < c.margin:
        return "equivalent"
    if c.lo_fw > 0 or c.hi_fw < 0:  # an interaction has a sign, not a direction of merit
        if c.kind == "interaction":
            return "positive" if c.lo_fw > 0 else "negative"
        return "better" if (c.lo_fw > 0) == c.higher_better else "worse"
    return "inconclusive" if c.margin is not None else "no detectable difference"


def pairing_gain(rho: float) -> float:
    """How many times the seeds an unpaired design would need for the same interval: var(A - B) is
    2σ²(1 - ρ) paired and 2σ² unpaired (equal variances), so 1 / (1 - ρ)."""
    return math.nan if math.isnan(rho) or rho >= 1 else 1 / (1 - rho)


DECIDED = ("better", "worse", "equivalent", "positive", "negative")


def target_met(family: list[Comparison], until: str, width: float | None) -> bool:
    """An adaptive study's stopping target: every comparison decided, or every family-wise interval
    narrower than ``width``."""
    if not family:
        return False
    if until == "width":
        return all(c.n >= 2 and c.hi_fw - c.lo_fw < width for c in family)
    return all(c.verdict in DECIDED for c in family)
