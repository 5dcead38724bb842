"""Power and planning from the exact noncentral t, at the level the verdicts use.

A verdict calls a difference when |t| exceeds the two-sided critical value at α' (the family's level:
α over the comparisons and an adaptive study's looks). With a true difference δ and standard error se on
ν degrees of freedom, t is noncentral t(ν, δ / se), so the power is

    P(|T'| > t_{1-α'/2, ν}),   T' ~ nct(ν, δ / se)

— the formula of statsmodels' ``TTestPower`` (tests check that ``seeds_needed`` equals its
``solve_power``). The *detectable difference* is the δ at which this power is 80 %, and *seeds needed*
the smallest n at which a study with the observed spread reaches it: both at the same α', so one row's
two numbers agree. Equivalence is planned as what it tests: the seeds at which two one-sided tests at
α' show |Δ| < margin when the true difference is 0 (the power of TOST, from its Bonferroni lower bound
P(both reject) ≥ P(lower) + P(upper) − 1, so the count errs on the side of more seeds).
"""

from __future__ import annotations

import math

from scipy import optimize
from scipy import stats as st

POWER = 0.8
MAX_SEEDS = 100_000


def power(delta: float, se: float, df: float, alpha: float) -> float:
    """Two-sided power of the t test at level ``alpha`` against a true difference ``delta``."""
    if not (se > 0 and df > 0):
        return math.nan
    c = st.t.ppf(1 - alpha / 2, df)
    ncp = delta / se
    return float(_sf(c, df, ncp) + _sf(c, df, -ncp))  # P(T' > c) + P(T' < −c), the latter by symmetry


def detectable(se: float, df: float, alpha: float, target: float = POWER) -> float:
    """The smallest true difference detected with power ``target`` (in the units of ``se``)."""
    if not (se > 0 and df > 0):
        return math.nan
    f = lambda ncp: power(ncp, 1.0, df, alpha) - target  # noqa: E731 - power in units of se
    hi = 1.0
    while f(hi) < 0:
        hi *= 2
        if hi > 1e6:
            return math.nan
    return float(optimize.brentq(f, 0.0, hi, xtol=1e-10) * se)


def seeds_needed(sd: float, delta: float, alpha: float, target: float = POWER) -> float:
    """Seeds (pairs) at which a paired t with per-seed spread ``sd`` detects ``delta`` with power ``target``."""
    if not (delta > 0 and sd >= 0) or math.isnan(sd):
        return math.nan
    if sd == 0:
        return 2.0
    return _smallest(lambda n: power(delta, sd / math.sqrt(n), n - 1, alpha) >= target)


def tost_power(se: float, df: float, margin: float, alpha: float, true: float = 0.0) -> float:
    """A lower bound of the power of two one-sided tests at ``alpha`` each to show |Δ| < ``margin``."""
    if not (se > 0 and df > 0 and margin > 0):
        return math.nan
    c = st.t.ppf(1 - alpha, df)
    lower = _sf(c, df, (true + margin) / se)  # (Δ̂ + margin) / se > c
    upper = _sf(c, df, (margin - true) / se)  # (Δ̂ − margin) / se < −c, by symmetry
    return float(max(0.0, lower + upper - 1))


def tost_seeds(sd: float, margin: float, alpha: float, target: float = POWER) -> float:
    """Seeds at which a paired equivalence test (TOST at ``alpha``) shows |Δ| < ``margin`` with power
    ``target`` when the true difference is 0."""
    if not (margin > 0 and sd >= 0) or math.isnan(sd):
        return math.nan
    if sd == 0:
        return 2.0
    return _smallest(lambda n: tost_power(sd / math.sqrt(n), n - 1, margin, alpha) >= target)


def crossed_variance(components: dict[str, float], factors: list[str], levels: int) -> tuple[float, float]:
    """Var(ȳ) and its Satterthwaite df for a crossing of ``levels`` seeds per factor, from variance
    components (``design.Estimate.components``): expected mean squares E[MS_f] = σ²_e + (N / L) σ²_f."""
    from ..rng import EVALUATION
    from .design import CELL, RESIDUAL, MeanSquares, mean_variance

    f, n = len(factors), levels ** len(factors)
    e = components.get(RESIDUAL, 0.0)
    training = tuple(x not in EVALUATION for x in factors)
    t = sum(training)
    cells = levels ** t
    cell = n / cells * components.get(CELL, 0.0) if CELL in components and 2 <= t < f else 0.0
    df_cell = cells - 1 - t * (levels - 1) if CELL in components and 2 <= t < f else 0
    ms = tuple(e + cell * tr + n / levels * components.get(x, 0.0) for x, tr in zip(factors, training))
    table = MeanSquares(tuple(factors), ms, (levels - 1,) * f, (levels,) * f, e, n - 1 - f * (levels - 1) - df_cell,
                        n, e + cell, df_cell, training)
    return mean_variance(table)


def levels_needed(components: dict[str, float], factors: list[str], delta: float, alpha: float,
                  target: float = POWER, equivalence: bool = False) -> float:
    """Seeds per crossed source (every factor at the same count) at which a crossed study detects
    ``delta`` (or, with ``equivalence``, shows |Δ| < ``delta``) with power ``target``."""
    if not delta > 0 or not components:
        return math.nan

    def enough(levels: int) -> bool:
        var, df = crossed_variance(components, factors, levels)
        if var <= 0:
            return True
        se = math.sqrt(var)
        return (tost_power(se, df, delta, alpha) if equivalence else power(delta, se, df, alpha)) >= target

    return _smallest(enough, limit=1000)


def _sf(c: float, df: float, ncp: float) -> float:
    """P(T' > c) for T' ~ nct(df, ncp); scipy's far tails can come back NaN where the value is ~0."""
    v = st.nct.sf(c, df, ncp) if math.isfinite(df) else st.norm.sf(c - ncp)
    return 0.0 if math.isnan(v) else float(v)


def _smallest(ok, limit: int = MAX_SEEDS) -> float:
    """The smallest n >= 2 with ok(n), by doubling then bisection (power grows with n); nan past ``limit``."""
    if ok(2):
        return 2.0
    lo, hi = 2, 4
    while not ok(hi):
        lo, hi = hi, hi * 2
        if hi > limit:
            return math.nan
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return float(hi)
