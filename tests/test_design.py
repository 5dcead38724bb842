"""The standard error a design gives a mean over its places (analysis/design.py): the crossed random-effects
model's arithmetic against statsmodels (ANOVA mean squares, REML MixedLM), its degrees of freedom, and the
cases it must not analyse as if complete."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from petri.analysis.design import estimate, mean_squares


def _crossing(rng, sds: dict[str, float], levels: dict[str, int], resid: float):
    grid = pd.MultiIndex.from_product([range(n) for n in levels.values()], names=list(levels)).to_frame(index=False)
    effects = {f: rng.normal(0, sds[f], n) for f, n in levels.items()}
    grid["y"] = 0.5 + sum(effects[f][grid[f]] for f in levels) + rng.normal(0, resid, len(grid))
    return grid


def test_mean_squares_are_anova_lms():
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    table = _crossing(np.random.default_rng(0), {"init": 1.0, "order": 0.5, "data": 0.2}, {"init": 4, "order": 3,
                                                                                            "data": 5}, 0.3)
    factors = ["init", "order", "data"]
    ms = mean_squares(table["y"].to_numpy(), table[factors].to_numpy(), factors)
    ref = anova_lm(smf.ols("y ~ C(init) + C(order) + C(data)", data=table).fit(), typ=1)
    for f, m, df in zip(factors, ms.ms, ms.df):
        assert m == pytest.approx(ref.loc[f"C({f})", "mean_sq"], rel=1e-10) and df == ref.loc[f"C({f})", "df"]
    assert ms.ms_resid == pytest.approx(ref.loc["Residual", "mean_sq"], rel=1e-10)
    assert ms.df_resid == ref.loc["Residual", "df"]


@pytest.mark.parametrize("levels", [{"init": 6, "order": 5}, {"init": 4, "order": 4, "data": 3}])
def test_the_crossed_standard_error_is_statsmodels_reml(levels):
    """On a balanced crossing whose components are all positive, the mean's standard error from the mean
    squares equals the REML fit's standard error of the intercept (statsmodels MixedLM with the sources as
    crossed variance components)."""
    import statsmodels.formula.api as smf

    rng = np.random.default_rng(3)
    table = _crossing(rng, {"init": 1.0, "order": 0.7, "data": 0.6}, levels, 0.5)
    factors = list(levels)
    places = {i: {f: int(table.loc[i, f]) for f in factors} for i in table.index}
    e = estimate(dict(enumerate(table["y"])), places, factors)
    assert all(e.components[f] > 0 for f in factors)
    table["group"] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = smf.mixedlm("y ~ 1", table, groups="group", vc_formula={f: f"0 + C({f})" for f in factors}).fit(
            reml=True, method="lbfgs")
    assert fit.converged
    assert e.mean == pytest.approx(fit.fe_params["Intercept"], rel=1e-9)
    assert e.se == pytest.approx(fit.bse_fe["Intercept"], rel=1e-3)  # (the optimiser's tolerance)
    # Satterthwaite's df of Var = sum_f MS_f / N - (F - 1) MS_e / N, written out
    n = len(table)
    ms = mean_squares(table["y"].to_numpy(), table[factors].to_numpy(), factors)
    terms = [(1 / n, m, d) for m, d in zip(ms.ms, ms.df)] + [((1 - len(factors)) / n, ms.ms_resid, ms.df_resid)]
    var = sum(c * m for c, m, _ in terms)
    assert e.se == pytest.approx(math.sqrt(var)) and e.df == pytest.approx(var ** 2 / sum((c * m) ** 2 / d
                                                                                           for c, m, d in terms))


def test_one_varied_source_is_the_t_over_its_seeds_and_a_component_at_zero_drops_out():
    rng = np.random.default_rng(1)
    y = rng.normal(0, 1, 6)
    e = estimate(dict(enumerate(y)), {i: {"init": i, "order": 0} for i in range(6)}, ["init", "order"])
    ref = st.ttest_1samp(y, 0)
    assert e.df == 5 and e.p() == pytest.approx(ref.pvalue) and e.levels == {"init": 6}
    # order has no effect at all: its mean square is below the residual's, so its component is clipped at
    # zero and it leaves the variance (as REML's boundary estimate does); the mean's SE is init's t
    table = _crossing(rng, {"init": 2.0, "order": 0.0}, {"init": 5, "order": 5}, 0.01)
    places = {i: {"init": int(table.loc[i, "init"]), "order": int(table.loc[i, "order"])} for i in table.index}
    e = estimate(dict(enumerate(table["y"])), places, ["init", "order"])
    means = table.groupby("init")["y"].mean()
    if e.components["order"] == 0:
        assert e.se == pytest.approx(means.std(ddof=1) / math.sqrt(5), rel=1e-9) and e.df == pytest.approx(4)


def test_places_that_differ_only_in_unused_sources_count_once_and_incomplete_crossings_are_not_analysed():
    # a variant that does not use dropout: its cells are the same across dropout seeds
    places, values = {}, {}
    for i in range(3):
        for o in range(3):
            for dr in range(2):
                k = len(places)
                places[k] = {"init": i, "order": o, "dropout": dr}
                values[k] = i + 0.1 * o + 0.01 * ((i * o) % 2)
    e = estimate(values, places, ["init", "order"])
    assert e.n == 9 and e.levels == {"init": 3, "order": 3}
    del values[0]  # one combination has no value: a pending or failed place
    del values[1]
    e = estimate(values, places, ["init", "order"])
    assert math.isnan(e.se) and "8 of 9 combinations of init, order have a value" in e.note


def test_an_analysis_of_crossed_places_as_independent_seeds_is_too_narrow():
    """Why the design matters: with a part per source in the difference, a t over all 16 places understates
    the standard error (here by about half), the crossed model does not."""
    rng = np.random.default_rng(11)
    naive, crossed = [], []
    for _ in range(200):
        table = _crossing(rng, {"init": 1.0, "order": 1.0}, {"init": 4, "order": 4}, 0.5)
        places = {i: {"init": int(table.loc[i, "init"]), "order": int(table.loc[i, "order"])} for i in table.index}
        crossed.append(estimate(dict(enumerate(table["y"])), places, ["init", "order"]).se)
        naive.append(table["y"].std(ddof=1) / 4)
    truth = math.sqrt(1 / 4 + 1 / 4 + 0.25 / 16)  # the mean's true SE under this model: 0.72
    assert np.median(naive) / truth < 0.6 and 0.8 < np.sqrt(np.mean(np.square(crossed))) / truth < 1.2


def _cells_resampled(rng, cell_sd: float, levels=(4, 3, 3), test_sd: float = 0.3, resid: float = 0.2):
    """init × order trained cells, each scored on ``test`` resamples: places that share a cell share its
    effect (the interactions of its training sources)."""
    grid = pd.MultiIndex.from_product([range(n) for n in levels], names=["init", "order", "test"]).to_frame(index=False)
    a, b, t = rng.normal(0, 1.0, levels[0]), rng.normal(0, 0.7, levels[1]), rng.normal(0, test_sd, levels[2])
    cell = rng.normal(0, cell_sd, (levels[0], levels[1]))
    grid["y"] = (a[grid["init"]] + b[grid["order"]] + cell[grid["init"], grid["order"]] + t[grid["test"]]
                 + rng.normal(0, resid, len(grid)))
    return grid


def test_places_that_resample_one_trained_cell_share_its_effect():
    """A test source: the cell (init × order) is a random term of its own; the standard error equals REML's
    with init, order, test and the cell as crossed variance components, and the training sources are
    judged against the cell's mean square, not the residual's."""
    import statsmodels.formula.api as smf

    from petri.analysis.design import CELL

    table = _cells_resampled(np.random.default_rng(5), cell_sd=0.8)
    factors = ["init", "order", "test"]
    places = {i: {f: int(table.loc[i, f]) for f in factors} for i in table.index}
    e = estimate(dict(enumerate(table["y"])), places, factors)
    assert all(e.components[f] > 0 for f in [*factors, CELL])
    table["cell"] = table["init"] * 3 + table["order"]
    table["group"] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = smf.mixedlm("y ~ 1", table, groups="group", vc_formula={f: f"0 + C({f})" for f in [*factors, "cell"]}
                          ).fit(reml=True, method="lbfgs")
    assert fit.converged and e.se == pytest.approx(fit.bse_fe["Intercept"], rel=1e-3)


def test_a_cell_term_keeps_the_crossed_test_at_its_level():
    """noise-sources' shape (init × order × data, each cell scored on 3 test resamples, 3 seeds each) with
    no true mean, init dominant and a per-cell effect: the test keeps its level with the cell term (4.9 %
    at 0.05 in 3,000 studies; 5.6 % without it, as if each resample were a training of its own)."""
    import itertools

    rng = np.random.default_rng(1)
    names = ["init", "order", "data", "test"]
    grid = np.array(list(itertools.product(range(3), repeat=4)))
    places = {i: dict(zip(names, map(int, g))) for i, g in enumerate(grid)}
    rejected, n = 0, 800
    for _ in range(n):
        a, cell, t = rng.normal(0, 2, 3), rng.normal(0, 1, (3, 3, 3)), rng.normal(0, 0.05, 3)
        y = a[grid[:, 0]] + cell[grid[:, 0], grid[:, 1], grid[:, 2]] + t[grid[:, 3]] + rng.normal(0, 0.05, len(grid))
        rejected += estimate(dict(enumerate(y)), places, names).p() < 0.05
    assert rejected / n <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / n)
