"""Verdict rules validated against known truth, small (benchmarks/inference.py is the large version, its
table in docs/results.md): studies simulated with no true difference are analysed by petri.analyse, and
the share called better or worse must stay near α, where the previous analysis (a t over crossed places as
if independent; survivors only) does not."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import inference  # noqa: E402

STUDIES = 200
# a binomial 5 % rate over 200 studies has sd 1.5 pp: a rate above 5 % + 3 sd would be a real excess
LIMIT = 0.05 + 3 * math.sqrt(0.05 * 0.95 / STUDIES)


def _run(name: str, effect: float = 0.0) -> tuple[float, float]:
    design = next(d for d in inference.DESIGNS if d.name == name)
    i = inference.DESIGNS.index(design)
    res = [inference.one((i, effect, 10_000 + k)) for k in range(STUDIES)]
    new, old = inference.rates(res, design, "new"), inference.rates(res, design, "old")
    return new, old


@pytest.mark.parametrize("name", ["init 4 × order 4", "init 3 × order 3"])
def test_crossed_sources_keep_their_level_where_independent_places_do_not(name):
    new, old = _run(name)
    assert new["fp"] <= LIMIT and new["cover"] >= 0.94 - 3 * math.sqrt(0.05 * 0.95 / STUDIES)
    assert old["fp"] > 0.15  # the analysis this replaced called a difference in about a quarter of them


def test_quantised_differences_and_failed_cells_call_nothing_false():
    new, _ = _run("quantised, seeds = 5")
    assert new["fp"] <= LIMIT
    new, old = _run("failed cells: 3 of 6 diverge")
    assert new["fp"] == 0 and new["withheld"] == 1.0 and old["fp"] > 0


def test_equivalence_at_the_margin_is_rarely_called_equivalent():
    new, _ = _run("equivalence, seeds = 10", effect=0.005)
    assert new["fp"] <= LIMIT
    design = next(d for d in inference.DESIGNS if d.name == "equivalence, seeds = 10")
    assert np.isclose(design.null, 0.005)
