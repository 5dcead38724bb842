"""Crossed seeds: a study that varies its random sources apart.

``seeds = { init = 5, order = 5 }`` crosses five initial-weight seeds with five data-order seeds: 25
places per variant (sweep point), place ``i`` taking the i-th combination in the order written. Sources
not named take the ``rest`` seed (a count or list like the others; default the single seed 0), so they
are held fixed unless crossed too. Every variant shares the same combinations: paired comparisons pair
cells that share every seed.
"""

from __future__ import annotations

import itertools

from ..errors import SpecError
from ..rng import SOURCES, Seeds
from ..specs import echo

REST = "rest"  # every source the table does not name


def is_crossing(raw: dict) -> bool:
    """A seeds table naming random sources (not an adaptive {min, max} table)."""
    return bool(raw) and set(raw) <= {*SOURCES, REST}


def parse_crossing(raw: dict, where: str, max_seeds: int, max_seed: int) -> dict[str, list[int]]:
    """Source (or ``rest``) -> its seeds, in the order written; ``rest`` last, [0] unless given."""
    out: dict[str, list[int]] = {}
    for source, v in raw.items():
        ok = (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= max_seeds) or (
            isinstance(v, list) and 0 < len(v) <= max_seeds
            and all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= max_seed for s in v))
        if not ok:
            raise SpecError(f"{where}: seeds.{source}: must be a count 1..{max_seeds:,} or a list of integers "
                            f"0..{max_seed} (got {echo(v)})")
        out[source] = list(range(v)) if isinstance(v, int) else list(dict.fromkeys(v))
    out[REST] = out.pop(REST, [0])
    return out


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
