"""Crossed seeds: a study that varies its random sources apart (parsed in ``study/seeds.py``).

``seeds = { init = 5, order = 5 }`` crosses five initial-weight seeds with five data-order seeds: 25
places per variant (sweep point), place ``i`` taking the i-th combination in the order written. Sources
not named take the ``rest`` seed (a count or list like the others; default the single seed 0), so they
are held fixed unless crossed too. Every variant shares the same combinations: paired comparisons pair
cells that share every seed.
"""

from __future__ import annotations

import itertools

from ..rng import SOURCES, Seeds

REST = "rest"  # every source the table does not name


def combinations(crossing: dict[str, list[int]]) -> list[Seeds]:
    """Every combination of the sources' seeds (the places' seeds, place i = combination i)."""
    names = list(crossing)
    return [Seeds(dict(zip(names, combo))[REST], tuple((n, s) for n, s in zip(names, combo) if n != REST))
            for combo in itertools.product(*crossing.values())]


def varied(crossing: dict[str, list[int]] | None) -> list[str]:
    """The sources (and ``rest``) that take more than one seed: a crossed study's random factors."""
    return [s for s, v in (crossing or {}).items() if len(v) > 1]


def config_seed(seeds: Seeds, used: set[str]) -> int | dict[str, int]:
    """What a cell's hash records of its seeds: one int when every source it uses has the same seed (so
    a crossed study's cell equals the plain study's cell with that seed), else each used source's seed."""
    each = {s: seeds.of(s) for s in SOURCES if s in used}
    values = set(each.values())
    return values.pop() if len(values) == 1 else each


def factor_seed(seeds: Seeds, factor: str) -> int:
    """A place's seed for one factor of the crossing (a source, or ``rest``)."""
    return seeds.base if factor == REST else seeds.of(factor)
