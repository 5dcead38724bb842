"""A study's ``seeds``, in every form it takes, read by one parser.

* a count or a list: ``seeds = 5`` (seeds 0..4) or ``seeds = [3, 7]``; each seed drives every random source;
* crossed random sources: ``seeds = { init = 5, order = 5 }`` (``study/crossing.py``: places numbered by
  combination, sources not named take ``rest``);
* adaptive: ``seeds = { min = 3, max = 30, step = 1, until = "decided" }``: seeds in rounds until the
  answer is clear (the parsed study holds the current round's).

Whatever the form, a study's places are numbered 0.. (``Seeding.seeds``), and a crossed study gives
each place its ``Seeds`` (one per random source).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import SpecError
from ..rng import SOURCES, Seeds
from ..specs import echo
from .crossing import REST, combinations
from .questions import positive

MAX_SEEDS = 10_000  # places per variant and sweep point
MAX_SEED = 2**31 - 1  # seeds are integers 0..MAX_SEED
ADAPTIVE_KEYS = {"min", "max", "step", "until"}


@dataclass(frozen=True)
class Adaptive:
    """``seeds = { min = 3, max = 30, step = 1, until = "decided" }``: seeds trained in rounds (``min``,
    then ``step`` more at a time, up to ``max``); after each round every comparison is looked at, and
    the study stops once ``until`` holds: "decided" (every comparison better, worse, equivalent,
    positive or negative) or ``{ width = W }`` (every family-wise interval narrower than W, in pp for
    accuracies). Looking after every round is safe: the family's α is split evenly over the ``looks``
    the study may take (Bonferroni α-spending), so however often it looks, the chance that any
    verdict of a study without a true effect calls a difference stays below α."""

    min: int
    max: int
    step: int = 1
    until: str = "decided"  # or "width"
    width: float | None = None  # metric units

    @property
    def looks(self) -> int:
        """Rounds the study may take: min, min + step, ..., and max."""
        return len(self.rounds())

    def rounds(self) -> list[int]:
        out = list(range(self.min, self.max + 1, self.step))
        return out if out[-1] == self.max else [*out, self.max]


@dataclass(frozen=True)
class Seeding:
    """What a study's ``seeds`` field says: its place numbers, and for a crossed study each place's
    seeds per source, for an adaptive one its rule (``seeds``: the current round's)."""

    seeds: list[int]
    crossing: dict[str, list[int]] | None = None  # source (and ``rest``) -> its seeds
    adaptive: Adaptive | None = None

    @property
    def most(self) -> int:
        """The most places a variant's sweep point may take (an adaptive study's max)."""
        return self.adaptive.max if self.adaptive else len(self.seeds)

    def places(self) -> list[Seeds] | None:
        """A crossed study's seeds of place i = combination i; None where one seed drives every source."""
        return combinations(self.crossing) if self.crossing else None


def parse_seeds(raw, where: str, percent: bool = True, seeds_now: int | None = None) -> Seeding:
    """The study's ``seeds`` field (``raw``; default 1), any form. ``percent``: the study's metric is a
    fraction (an adaptive width is then in percentage points); ``seeds_now``: an adaptive study's current
    round (default its min)."""
    if isinstance(raw, dict) and is_crossing(raw):
        crossing = parse_crossing(raw, where)
        n = math.prod(len(v) for v in crossing.values())
        if n > MAX_SEEDS:
            raise SpecError(f"{where}: seeds: {n:,} combinations of seeds; at most {MAX_SEEDS:,} per variant")
        return Seeding(list(range(n)), crossing)
    if isinstance(raw, dict) and not set(raw) <= ADAPTIVE_KEYS:
        raise SpecError(f"{where}: seeds: {echo(sorted(set(raw) - ADAPTIVE_KEYS)[0])} is not allowed "
                        f"here; a table of seeds either crosses random sources {{ init = 5, order = 5 }} (sources: "
                        f"{', '.join(SOURCES)}, rest) or is adaptive {{ min = 3, max = 30 }} (min, max, step, until)")
    if isinstance(raw, dict):
        adaptive = parse_adaptive(raw, where, MAX_SEEDS, percent)
        return Seeding(list(range(min(max(seeds_now or adaptive.min, adaptive.min), adaptive.max))), None, adaptive)
    if isinstance(raw, bool) or not (isinstance(raw, int) and 1 <= raw <= MAX_SEEDS or isinstance(raw, list)
                                     and 0 < len(raw) <= MAX_SEEDS and all(_is_seed(s) for s in raw)):
        raise SpecError(f"{where}: seeds: must be a count 1..{MAX_SEEDS:,}, a list of up to {MAX_SEEDS:,} integers "
                        f"0..{MAX_SEED}, a table of crossed random sources {{ init = 5, order = 5 }} (sources: "
                        f"{', '.join(SOURCES)}, rest), or an adaptive table {{ min = 3, max = 30 }} (got {echo(raw)})")
    return Seeding(list(range(raw)) if isinstance(raw, int) else list(dict.fromkeys(raw)))


def _is_seed(s) -> bool:
    return isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_SEED


def is_crossing(raw: dict) -> bool:
    """A seeds table naming random sources (not an adaptive {min, max} table)."""
    return bool(raw) and set(raw) <= {*SOURCES, REST}


def parse_crossing(raw: dict, where: str) -> dict[str, list[int]]:
    """Source (or ``rest``) -> its seeds, in the order written; ``rest`` last, [0] unless given."""
    out: dict[str, list[int]] = {}
    for source, v in raw.items():
        ok = (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SEEDS) or (
            isinstance(v, list) and 0 < len(v) <= MAX_SEEDS and all(_is_seed(s) for s in v))
        if not ok:
            raise SpecError(f"{where}: seeds.{source}: must be a count 1..{MAX_SEEDS:,} or a list of integers "
                            f"0..{MAX_SEED} (got {echo(v)})")
        out[source] = list(range(v)) if isinstance(v, int) else list(dict.fromkeys(v))
    out[REST] = out.pop(REST, [0])
    return out


def parse_adaptive(raw: dict, where: str, max_seeds: int = MAX_SEEDS, percent: bool = True) -> Adaptive:
    where = f"{where}: seeds"
    keys = ADAPTIVE_KEYS
    if set(raw) - keys or not {"min", "max"} <= set(raw):
        raise SpecError(f"{where}: an adaptive table is {{ min = 3, max = 30, step = 1, until = \"decided\" }} "
                        f"(min and max required; allowed: {', '.join(sorted(keys))})")
    for k in ("min", "max", "step"):
        v = raw.get(k, 1)
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= max_seeds:
            raise SpecError(f"{where}.{k}: must be an integer 1..{max_seeds:,} (got {echo(v)})")
    if raw["min"] < 2 or raw["max"] <= raw["min"]:
        raise SpecError(f"{where}: needs 2 <= min < max (a comparison needs 2 seeds; got min {raw['min']}, "
                        f"max {raw['max']})")
    until = raw.get("until", "decided")
    if until == "decided":
        return Adaptive(raw["min"], raw["max"], raw.get("step", 1))
    if isinstance(until, dict) and set(until) == {"width"}:
        return Adaptive(raw["min"], raw["max"], raw.get("step", 1), "width",
                        positive(until["width"], f"{where}.until.width", percent))
    raise SpecError(f"{where}.until: {echo(until)} is not a target; allowed: \"decided\" (every comparison decided) "
                    "or { width = W } (every family-wise interval narrower than W)")

