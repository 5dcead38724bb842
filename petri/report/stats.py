"""A mean and its t-interval over seeds (comparisons: ``family.py``)."""

from __future__ import annotations

import math
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
