"""Statistics: t-intervals, paired differences against the baseline, Holm correction."""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats as st


def t_interval(values: list[float], level: float = 0.95) -> tuple[float, float]:
    """(mean, half-width of the two-sided t confidence interval); half-width is nan for n < 2."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, st.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n)


def holm(pvalues: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (same order as given; nan stays nan)."""
    idx = sorted((i for i, p in enumerate(pvalues) if not math.isnan(p)), key=lambda i: pvalues[i])
    m, out, running = len(idx), [math.nan] * len(pvalues), 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


@dataclass
class Paired:
    n: int  # pairs (seeds present on both sides)
    dropped: int  # seeds present on one side only
    mean: float
    half_width: float
    p_t: float
    p_wilcoxon: float
    min_detectable: float  # smallest true difference this n detects with 80 % power (two-sided, α = .05)


def paired(treated: dict[int, float], baseline: dict[int, float], alpha: float = 0.05) -> Paired:
    """Paired-by-seed comparison of treated vs baseline values."""
    seeds = sorted(set(treated) & set(baseline))
    dropped = len(set(treated) ^ set(baseline))
    d = [treated[s] - baseline[s] for s in seeds]
    n = len(d)
    mean, hw = t_interval(d, 1 - alpha)
    p_t = p_w = mde = math.nan
    if n >= 2:
        sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
        if sd == 0:
            p_t = 1.0 if mean == 0 else 0.0
        else:
            p_t = float(st.ttest_1samp(d, 0.0).pvalue)
        df = n - 1
        mde = (st.t.ppf(1 - alpha / 2, df) + st.t.ppf(0.8, df)) * sd / math.sqrt(n)
    if n >= 6:
        p_w = 1.0 if all(x == 0 for x in d) else float(st.wilcoxon(d).pvalue)
    return Paired(n, dropped, mean, hw, p_t, p_w, mde)
