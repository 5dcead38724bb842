"""Where the spread between seeds comes from, in a study whose random sources are crossed.

Each place of a crossed study (``study/crossing.py``) is one combination of its sources' seeds. For one
(variant, point), its final values y are fitted with the additive random-effects model

    y = mu + a_init + b_order + ... + e,    a ~ N(0, s2_init), b ~ N(0, s2_order), ..., e ~ N(0, s2_resid)

(seeds as random factors; the residual takes every interaction between sources and everything no
source explains). Where places score one trained cell on several test resamples (a ``test`` source),
the cell's own effect is a term of its own, "cell" (the training sources' interactions: what makes one
trained model differ beyond its sources' main effects), the training sources are judged against it, and
the residual is the resampling's interaction with the cell (``design.py``). On the balanced crossing the variance components come from the ANOVA mean squares
(``design.mean_squares``, the numbers of statsmodels' ``anova_lm``): E[MS_source] = s2_resid + c *
s2_source, c = places per seed of that source, so s2_source = (MS_source - MS_resid) / c, clipped at
zero; on balanced data these equal statsmodels' REML ``MixedLM`` estimates whenever those are positive
(tests/test_variance.py checks both). Intervals: generalized confidence intervals (Weerahandi 1993): each E[MS] is drawn from its pivot
MS · df / chi2(df) (the mean squares are independent on a balanced design) and the components (and
shares) recomputed, 95 % percentile; simulated coverage is near 95 % from 4 seeds per source.

The test set's own part (Jordan, ICLR 2024): under the independent-errors model each test image i has its own
error rate p_i over runs, and a run's accuracy on the fixed test set varies by Σ p_i (1 - p_i) / n² from
the sampling of its errors alone. petri measures it from the cells' kept per-example predictions (each
image's error count k_i over m cells, k_i (m - k_i) / (m (m - 1)) the unbiased estimate of p_i (1 - p_i)),
with a percentile interval from resampling the cells. p (1 - p) / n — every image equally hard — is its
upper bound, shown labelled as such where predictions were not kept.

Pairing: for two places compared seed by seed, the covariance each shared source carries is
(s2_source(A + B) - s2_source(A - B)) / 4, the same decomposition on the sum and the difference; the
paired difference's variance is var A + var B - 2 cov, so 2 cov_source is what sharing that source
takes off it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

LEVEL = 0.95
DRAWS = 4000
RESIDUAL = "residual"


@dataclass
class Part:
    """One random factor's (or the residual's) variance component, in the metric's units squared."""

    source: str
    variance: float
    low: float
    high: float
    share: float  # of the model's total variance
    share_low: float
    share_high: float
    sd_alone: float = math.nan  # the spread with only this source varying, the others fixed (pooled SD; no model)


@dataclass
class Spread:
    """One (variant, point) of a crossed study: its seeds' variance, source by source."""

    variant: str
    point: dict
    n: int  # places with a finished value
    mean: float
    total: float  # the model's total variance (sum of the parts)
    sd_all: float  # the sample SD of all its places (every source varying)
    parts: list[Part] = field(default_factory=list)
    test_set: float = math.nan  # binomial variance p (1 - p) / n_test of a test accuracy: the upper bound
    note: str = ""  # why there are no parts (an incomplete crossing, ...)
    test_examples: float = math.nan  # Jordan's Σ p_i (1 - p_i) / n², from the kept per-example predictions
    test_examples_low: float = math.nan  # its 95 % interval (the cells resampled)
    test_examples_high: float = math.nan

    @property
    def test_share(self) -> float:
        """The test set's share of the model's total: measured per example where predictions were kept, else
        the binomial bound's."""
        v = self.test_set if math.isnan(self.test_examples) else self.test_examples
        return v / self.total if self.total > 0 else math.nan

    @property
    def measured(self) -> bool:
        return not math.isnan(self.test_examples)


def components(table, factors: list[str], value: str = "y", draws: int = DRAWS, seed: int = 0,
               clip: bool = True) -> list[Part]:
    """Variance components of ``value`` over crossed random ``factors`` (columns of the DataFrame
    ``table``, one row per combination: a balanced crossing), with generalized intervals and shares.
    ``clip=False`` keeps negative estimates (unbiased; what covariances are computed from)."""
    from .design import CELL, design_table

    n = len(table)
    codes = np.stack([table[f].astype("category").cat.codes.to_numpy(np.int64) for f in factors], axis=1)
    y = table[value].to_numpy(float)
    t = design_table(y, codes, factors)
    # (name, mean square, df, places per level, judged against the cell's mean square)
    terms = [(f, ms, float(df), n / lv, bool(t.df_cell and t.training[i]))
             for i, (f, ms, df, lv) in enumerate(zip(factors, t.ms, t.df, t.levels))]
    if t.df_cell:  # places resample trained cells: the cell's own term (design.py)
        terms.append((CELL, t.ms_cell, float(t.df_cell), n / t.cells, False))
    df_e, ms_e = float(t.df_resid), t.ms_resid
    against_cell = np.array([x[4] for x in terms])[:, None]
    per_level = np.array([x[3] for x in terms])[:, None]

    def estimate(ms: np.ndarray, ms_res: np.ndarray) -> np.ndarray:  # [terms (+ residual), draws]
        err = np.where(against_cell, ms[-1] if t.df_cell else ms_res, ms_res)
        comps = (ms - err) / per_level
        comps = np.maximum(comps, 0.0) if clip else comps
        return np.vstack([comps, np.broadcast_to(ms_res, comps.shape[1:])[None]])

    ms = np.array([t[1] for t in terms])
    point = estimate(ms[:, None], np.array([ms_e]))[:, 0]
    rng = np.random.default_rng(seed)
    dfs = np.array([t[2] for t in terms])[:, None]
    ms_draws = ms[:, None] * dfs / rng.chisquare(dfs[:, 0], (draws, len(terms))).T  # E[MS]'s pivots
    res_draws = ms_e * df_e / rng.chisquare(df_e, draws) if df_e > 0 else np.zeros(draws)
    pivots = estimate(ms_draws, res_draws)  # [parts, draws]: the components' generalized pivotal quantities
    total, pivot_total = point.sum(), pivots.sum(axis=0)
    shares = np.divide(pivots, pivot_total, out=np.zeros_like(pivots), where=pivot_total > 0)
    lo, hi = (1 - LEVEL) / 2 * 100, (1 + LEVEL) / 2 * 100
    names = [f for f, *_ in terms] + ([RESIDUAL] if df_e > 0 else [])
    parts = []
    for i, name in enumerate(names):
        parts.append(Part(name, float(point[i]), float(np.percentile(pivots[i], lo)), float(np.percentile(pivots[i], hi)),
                          float(point[i] / total) if total > 0 else math.nan,
                          float(np.percentile(shares[i], lo)), float(np.percentile(shares[i], hi)),
                          _alone(table, factors, name, value)))
    return parts


def _alone(table, factors: list[str], source: str, value: str) -> float:
    """The pooled SD of ``value`` across ``source``'s seeds with every other factor fixed (what reseeding
    that source alone spreads, as Bouthillier et al. measure it)."""
    if source not in factors:
        return math.nan
    others = [f for f in factors if f != source]
    groups = table.groupby(others, observed=True)[value] if others else [(None, table[value])]
    ss = dof = 0.0
    for _, g in groups:
        if len(g) > 1:
            ss += float(((g - g.mean()) ** 2).sum())
            dof += len(g) - 1
    return math.sqrt(ss / dof) if dof else math.nan


def balanced(table, factors: list[str]) -> str:
    """'' when every combination of the factors' seeds is present exactly once, else why not."""
    want = math.prod(table[f].nunique() for f in factors)
    if len(table) != want or table.duplicated(factors).any():
        return f"{len(table)} of {want} combinations finished: the decomposition needs all of them"
    if len(table) <= 2:
        return "too few places"
    return ""


def _table(values: dict[int, float], places: dict[int, dict[str, int]], factors: list[str]):
    """One row per combination of ``factors``' seeds: places differing only in sources the cells do not
    use hold the same cell, counted once."""
    import pandas as pd

    rows = [{**{f: places[s][f] for f in factors}, "y": v} for s, v in values.items() if s in places]
    return pd.DataFrame(rows, columns=[*factors, "y"]).drop_duplicates(factors)


def spreads(rows, places: dict[int, dict[str, int]], factors: dict[tuple, list[str]],
            n_test: dict[tuple, int | None]) -> list[Spread]:
    """Each (variant, point) row of the findings (``analysis.Row``, ``by_seed``: place -> value),
    decomposed over its ``factors`` (a row's key -> the crossed sources its cells use). ``places``: place
    number -> each factor's seed. ``n_test``: a row's key -> the test images behind its metric (None
    when the metric is not a test accuracy)."""
    out = []
    for r in rows:
        table = _table(r.by_seed, places, factors[r.key])
        values = list(table["y"])
        mean = float(np.mean(values)) if values else math.nan
        sd = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
        s = Spread(r.variant, r.point, len(values), mean, math.nan, sd)
        s.note = balanced(table, factors[r.key]) if len(table) else "no finished places"
        if not s.note:
            s.parts = components(table, factors[r.key])
            s.total = sum(p.variance for p in s.parts)
        n = n_test.get(r.key)
        if n and 0 <= mean <= 1:
            s.test_set = mean * (1 - mean) / n
            s.test_examples, s.test_examples_low, s.test_examples_high = per_example(r.places)
        out.append(s)
    return out


def per_example(places, draws: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Jordan's Σ p_i (1 - p_i) / n² over the finished cells among ``places`` that kept test predictions
    (each cell once), and its 95 % interval from resampling the cells; nan without two such cells."""
    cells = {p.hash: p for p in places if p.status.finished}.values()
    kept = [pr for pr in (p.predictions() for p in cells) if pr and "test" in pr]
    if len(kept) < 2:
        return math.nan, math.nan, math.nan
    wrong = np.stack([pr["test"] != pr["test.labels"] for pr in kept]).astype(np.float64)  # [m cells, n images]
    m, n = wrong.shape

    def estimate(k: np.ndarray) -> np.ndarray:  # error counts [..., n] out of m -> Σ p_i (1 - p_i) / n²
        return (k * (m - k)).sum(-1) / (m * (m - 1)) / n ** 2

    point = float(estimate(wrong.sum(0)))
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(0, draws, 250):  # multiplicities of a resample of the m cells, 250 at a time
        picks = rng.multinomial(m, np.full(m, 1 / m), size=250)  # [250, m]
        boots.append(estimate(picks @ wrong))
    lo, hi = np.percentile(np.concatenate(boots), [2.5, 97.5])
    return point, float(lo), float(hi)


@dataclass
class Shared:
    """How much one shared source pairs two places' values: its covariance component, the correlation it
    implies, and the variance it takes off the paired difference (2 cov)."""

    comparison: str
    source: str
    covariance: float
    correlation: float
    removed: float  # 2 cov: the difference's variance without sharing this source minus with it
    removed_share: float  # of var A + var B (the unpaired difference's variance)


def pairing(comparison, rows_by_key: dict, places: dict[int, dict[str, int]], factors: list[str]) -> list[Shared]:
    """Per shared source, what pairing the two sides of a two-term comparison (``family.Comparison``) gains."""
    (ka, _), (kb, _) = comparison.terms
    a, b = rows_by_key[ka].by_seed, rows_by_key[kb].by_seed
    common = sorted(set(a) & set(b))
    tables = {name: _table({s: f(a[s], b[s]) for s in common}, places, factors)
              for name, f in (("a", lambda x, y: x), ("b", lambda x, y: y), ("sum", lambda x, y: x + y),
                              ("diff", lambda x, y: x - y))}
    if not common or balanced(tables["a"], factors):
        return []
    comps = {name: {p.source: p.variance for p in components(t, factors, draws=1, clip=False)}
             for name, t in tables.items()}
    unpaired = sum(comps["a"].values()) + sum(comps["b"].values())
    out = []
    from .design import CELL

    for f in [*factors, CELL, RESIDUAL]:
        if f not in comps["a"]:
            continue
        cov = (comps["sum"][f] - comps["diff"][f]) / 4
        va, vb = comps["a"][f], comps["b"][f]
        rho = max(-1.0, min(1.0, cov / math.sqrt(va * vb))) if va > 0 and vb > 0 else math.nan  # (estimates)
        out.append(Shared(comparison.label, f, cov, rho, 2 * cov,
                          2 * cov / unpaired if unpaired > 0 else math.nan))
    return out


@dataclass
class Noise:
    """A crossed study's spread, decomposed: per (variant, point), and per two-term comparison."""

    factors: list[str]  # the sources (and 'rest') that take more than one seed
    spreads: list[Spread]
    pairing: list[Shared]
    metric: str


def noise(f) -> Noise | None:
    """The decomposition of a crossed study's findings (``findings.Findings``); None for a study whose
    seeds are not crossed."""
    snap = f.snapshot
    factors = list(snap.factors)
    if not factors:
        return None
    places = snap.levels()
    metric = f.analysis.metric
    uses = snap.uses()
    used = {r.key: [s for s in factors if s in uses.get(r.key, ())] for r in f.rows}
    n_test = {r.key: (r.places[0].n_test if metric == "test_acc" and r.places else None) for r in f.rows}
    rows = {r.key: r for r in f.rows}
    shared = [s for c in f.family if len(c.terms) == 2 and all(k in rows for k, _ in c.terms)
              and used[c.terms[0][0]] == used[c.terms[1][0]] for s in pairing(c, rows, places, used[c.terms[0][0]])]
    return Noise(factors, spreads(f.rows, places, used, n_test), shared, metric)


TEST_SET = "test set (binomial bound)"
TEST_EXAMPLES = "test set (per example)"


def spread_records(n: Noise) -> list[dict]:
    """One record per (variant, point) and part: each source, the residual, the test set's part measured
    from per-example predictions (with its interval) and its binomial upper bound (no interval: p and n are
    known), in the metric's units squared; shares are of ``total``, the model's total variance."""
    out = []
    for s in n.spreads:
        base = {"variant": s.variant, **s.point, "n": s.n, "mean": s.mean, "sd_all": s.sd_all, "total": s.total}
        for p in s.parts:
            out.append(base | {"source": p.source, "variance": p.variance, "low": p.low, "high": p.high,
                               "share": p.share, "share_low": p.share_low, "share_high": p.share_high,
                               "sd_alone": p.sd_alone})
        t = s.total if s.total > 0 else math.nan
        if s.measured:
            out.append(base | {"source": TEST_EXAMPLES, "variance": s.test_examples, "low": s.test_examples_low,
                               "high": s.test_examples_high, "share": s.test_examples / t,
                               "share_low": s.test_examples_low / t, "share_high": s.test_examples_high / t})
        if not math.isnan(s.test_set):
            out.append(base | {"source": TEST_SET, "variance": s.test_set, "share": s.test_set / t})
    return out


def pairing_records(n: Noise) -> list[dict]:
    return [{"comparison": p.comparison, "source": p.source, "covariance": p.covariance, "correlation": p.correlation,
             "removed": p.removed, "removed_share": p.removed_share} for p in n.pairing]
