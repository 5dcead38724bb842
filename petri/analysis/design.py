"""How a study's places were drawn, and what that means for a mean over them.

A quantity observed once per place — one variant's final accuracy, or a paired difference, or an
interaction contrast — is averaged over the places, and its standard error depends on how the places
were drawn:

* **Plain seeds** (``seeds = 5``): each place is an independent draw, so the mean has SE = sd / √n on
  n − 1 degrees of freedom: the one-sample (paired) t.
* **Crossed sources** (``seeds = { init = 4, order = 4 }``): place i is one combination of the sources'
  seeds, and places that share a seed are correlated. The quantity follows the additive crossed
  random-effects model

      y = μ + Σ_f a_f[seed_f] + e,   a_f ~ N(0, σ²_f),  e ~ N(0, σ²_e)

  (``f`` each varied source; ``e`` takes the sources' interactions and everything else), so the mean
  ȳ has variance Σ_f σ²_f / L_f + σ²_e / N (L_f seeds of source f, N places). On the complete
  (balanced) crossing the components come from the ANOVA mean squares, E[MS_f] = σ²_e + (N / L_f) σ²_f,
  clipped at zero as REML clips them; then Var(ȳ) = Σ_{f: MS_f > MS_e} (MS_f − MS_e) / N + MS_e / N,
  a linear combination of independent mean squares whose degrees of freedom are Satterthwaite's
  (ν = V² / Σ (c_i MS_i)² / df_i). With one varied source this is exactly the t over its seeds.

Places that differ only in sources the quantity does not draw from hold the same cells: they are
counted once (a variant that does not use dropout has one value per combination of its other sources;
so does one whose cells a source left bitwise unchanged, ``records.Snapshot.uses``). A source no training draws from (``test``: each place scores the same trained cell on another
resample of the test set, ``rng.EVALUATION``) adds a term: places that share a trained cell share its
interactions, so the model gains the cell's own random effect c (one per combination of the training
sources), E[MS_cell] = σ²_e + (N / C) σ²_c, and the training sources are judged against it,
E[MS_f] = σ²_e + (N / C) σ²_c + (N / L_f) σ²_f (C cells, N places); without it the residual would count
each cell's resamples as independent trainings.
An incomplete crossing (a place without a value) gets no estimate: the decomposition needs every
combination, and the note says how many are missing. ``benchmarks/inference.py`` checks by simulation
that intervals built this way cover the truth and tests keep their level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import stats as st

from ..rng import EVALUATION

RESIDUAL = "residual"


CELL = "cell"  # the trained cell's own effect, when places resample its evaluation (``rng.EVALUATION``)


@dataclass(frozen=True)
class MeanSquares:
    """The additive model's ANOVA table on a balanced crossing: each factor's mean square and degrees
    of freedom, the residual's, and each factor's number of levels. With a cell term (``cell_df`` > 0),
    ``training`` marks the factors judged against it."""

    factors: tuple[str, ...]
    ms: tuple[float, ...]
    df: tuple[int, ...]
    levels: tuple[int, ...]
    ms_resid: float
    df_resid: int
    n: int  # places (combinations)
    ms_cell: float = 0.0
    df_cell: int = 0
    training: tuple[bool, ...] = ()

    @property
    def cells(self) -> int:
        """Trained cells (combinations of the training factors) when the table has a cell term, else 0."""
        return math.prod(lv for lv, tr in zip(self.levels, self.training) if tr) if self.df_cell else 0

    def error(self, i: int) -> tuple[float, int, str]:
        """Factor ``i``'s error term: (mean square, df, name): the cell's for a training source when the
        table has a cell term, else the residual's."""
        if self.df_cell > 0 and self.training[i]:
            return self.ms_cell, self.df_cell, CELL
        return self.ms_resid, self.df_resid, RESIDUAL


def mean_squares(y: np.ndarray, codes: np.ndarray, factors: list[str]) -> MeanSquares:
    """``y`` [N] one value per combination, ``codes`` [N, F] each factor's level index (0..L_f-1) on a
    complete crossing; main-effects sums of squares are orthogonal there, so each is computed from its
    level means alone (the same numbers as statsmodels' ``anova_lm`` on ``y ~ C(f1) + C(f2) + ...``)."""
    n = len(y)
    grand = float(y.mean())
    ms, dfs, levels, ss_sum = [], [], [], 0.0
    for j in range(len(factors)):
        k = int(codes[:, j].max()) + 1
        means = np.bincount(codes[:, j], weights=y, minlength=k) / np.bincount(codes[:, j], minlength=k)
        ss = float((n / k) * ((means - grand) ** 2).sum())
        ms.append(ss / (k - 1))
        dfs.append(k - 1)
        levels.append(k)
        ss_sum += ss
    df_e = n - 1 - sum(dfs)
    ss_e = max(float(((y - grand) ** 2).sum()) - ss_sum, 0.0)
    return MeanSquares(tuple(factors), tuple(ms), tuple(dfs), tuple(levels), ss_e / df_e if df_e > 0 else 0.0,
                       df_e, n)


def design_table(y: np.ndarray, codes: np.ndarray, factors: list[str]) -> MeanSquares:
    """The crossed model's ANOVA table: main effects, and a cell term where some factors are sources no
    training draws from (``rng.EVALUATION``)."""
    return with_cell(mean_squares(y, codes, factors), y, codes, [f not in EVALUATION for f in factors])


def with_cell(t: MeanSquares, y: np.ndarray, codes: np.ndarray, training: list[bool]) -> MeanSquares:
    """``t`` with the trained cell's term split off the residual: the cells are the combinations of the
    ``training`` factors; their means' sum of squares less the training factors' main effects is the
    cell term's (df C − 1 − Σ (L_f − 1)). No term when at most one training factor varies (the cell is
    then that factor)."""
    tr = [j for j, x in enumerate(training) if x]
    if len(tr) < 2 or len(tr) == len(training):
        return t
    cell = np.ravel_multi_index(tuple(codes[:, j] for j in tr), tuple(t.levels[j] for j in tr))
    k = math.prod(t.levels[j] for j in tr)
    means = np.bincount(cell, weights=y, minlength=k) / np.bincount(cell, minlength=k)
    ss_cells = float((t.n / k) * ((means - y.mean()) ** 2).sum())
    ss = max(ss_cells - sum(t.ms[j] * t.df[j] for j in tr), 0.0)
    df = k - 1 - sum(t.df[j] for j in tr)
    ss_e, df_e = max(t.ms_resid * t.df_resid - ss, 0.0), t.df_resid - df
    return replace(t, ms_resid=ss_e / df_e if df_e > 0 else 0.0, df_resid=df_e, ms_cell=ss / df, df_cell=df,
                   training=tuple(training))


@dataclass(frozen=True)
class Estimate:
    """A mean over places with its standard error and degrees of freedom, from the design's model."""

    mean: float
    se: float
    df: float
    n: int  # places with a value (distinct combinations of the sources the quantity draws from)
    method: str  # "t" (independent seeds), "crossed" (random-effects model, Satterthwaite df)
    note: str = ""  # why there is no standard error, when there is none
    components: dict[str, float] = field(default_factory=dict)  # σ² per factor and the residual (crossed)
    levels: dict[str, int] = field(default_factory=dict)  # seeds per factor (crossed)

    def half_width(self, level: float) -> float:
        """Half the two-sided ``level`` interval."""
        if not self.se > 0 or not self.df > 0:
            return math.nan if math.isnan(self.se) else 0.0
        return float(st.t.ppf(0.5 + level / 2, self.df) * self.se)

    def interval(self, level: float) -> tuple[float, float]:
        hw = self.half_width(level)
        return self.mean - hw, self.mean + hw

    def p(self, null: float = 0.0) -> float:
        """Two-sided p of the hypothesis mean = ``null``."""
        if not self.se > 0:
            return math.nan
        return float(2 * st.t.sf(abs(self.mean - null) / self.se, self.df))


def estimate(values: dict[int, float], levels: dict[int, dict[str, int]] | None = None,
             factors: list[str] | None = None) -> Estimate:
    """The mean of ``values`` (place -> value) with its SE and df. ``levels``: place -> each crossed
    factor's seed; ``factors``: the factors this quantity draws from (those with one seed drop out).
    Without factors the places are independent seeds (the t)."""
    if factors and levels:
        return _crossed(values, levels, factors)
    y = np.array(list(values.values()), dtype=float)
    n = len(y)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, "t", "no finished places")
    if n < 2:
        return Estimate(float(y[0]), math.nan, math.nan, 1, "t", "one seed: no spread to estimate")
    return Estimate(float(y.mean()), float(y.std(ddof=1) / math.sqrt(n)), n - 1, n, "t")


def _crossed(values: dict[int, float], levels: dict[int, dict[str, int]], factors: list[str]) -> Estimate:
    combos: dict[tuple, float] = {}
    for place, v in values.items():
        combos.setdefault(tuple(levels[place][f] for f in factors), v)  # places differing elsewhere: one cell
    seeds = [sorted({c[j] for c in combos}) for j in range(len(factors))]
    keep = [j for j, s in enumerate(seeds) if len(s) > 1]
    n = len(combos)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, "crossed", "no finished places")
    want = math.prod(len(seeds[j]) for j in keep)
    y = np.array(list(combos.values()), dtype=float)
    if n != want or len({tuple(c[j] for j in keep) for c in combos}) != n:
        return Estimate(float(y.mean()), math.nan, math.nan, n, "crossed",
                        f"{n} of {want} combinations of {', '.join(factors[j] for j in keep)} have a value: "
                        "the crossed analysis needs all of them")
    if len(keep) <= 1:  # one source varies: its seeds are independent draws
        e = estimate(dict(enumerate(y)))
        return Estimate(e.mean, e.se, e.df, e.n, "crossed", e.note, levels={factors[j]: len(seeds[j]) for j in keep})
    names = [factors[j] for j in keep]
    codes = np.array([[seeds[j].index(c[j]) for j in keep] for c in combos], dtype=np.int64)
    table = design_table(y, codes, names)
    var, df = mean_variance(table)
    comps = {f: max(ms - table.error(i)[0], 0.0) * lv / n
             for i, (f, ms, lv) in enumerate(zip(names, table.ms, table.levels))}
    if table.df_cell:
        comps[CELL] = max(table.ms_cell - table.ms_resid, 0.0) * table.cells / n
    comps[RESIDUAL] = table.ms_resid
    return Estimate(float(y.mean()), math.sqrt(var), df, n, "crossed", "", comps,
                    dict(zip(names, table.levels)))


def mean_variance(t: MeanSquares) -> tuple[float, float]:
    """Var(ȳ) under the crossed model with components clipped at zero, and its Satterthwaite degrees of
    freedom: V = Σ_{f: MS_f > MS_err(f)} (MS_f − MS_err(f)) / N (+ the cell term's (MS_cell − MS_e) / N
    where positive) + MS_e / N, each factor against its error term (``MeanSquares.error``)."""
    coef = {RESIDUAL: 1.0, CELL: 0.0}
    ms = {RESIDUAL: (t.ms_resid, t.df_resid), CELL: (t.ms_cell, t.df_cell)}
    for i, m in enumerate(t.ms):
        err, _, name = t.error(i)
        if m > err:
            coef[i], ms[i] = 1.0, (m, t.df[i])
            coef[name] -= 1.0
    if t.df_cell and t.ms_cell > t.ms_resid:
        coef[CELL] += 1.0
        coef[RESIDUAL] -= 1.0
    terms = [(c / t.n, *ms[k]) for k, c in coef.items() if c != 0]
    var = sum(c * m for c, m, _ in terms)
    den = sum((c * m) ** 2 / df for c, m, df in terms if df > 0)
    return var, (var * var / den if den > 0 else math.inf)
