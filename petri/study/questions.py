"""A study's ``[analysis]`` table: the comparisons it is about, the metric, the margin that matters.

```toml
[analysis]
compare = ["bn - plain"]            # "A - B": A against B at every sweep point they share, paired by seed
metric = "test_acc"                 # the per-cell number compared: its final epoch's value (or "gap",
                                    # "ece", "class_acc:3", a registered metric: petri.train.metrics)
margin = 0.5                        # smallest difference that matters (pp for accuracies): equivalence
failed = "withhold"                 # a comparison with a diverged cell gets no verdict; "chance": the
                                    # diverged cell counts at chance accuracy (accuracies only)
test_sample = { size = 5000, replace = false }   # with seeds = { ..., test = 8 }: each place scored on a
                                    # resample of the test set (default: a bootstrap of its full size)
# compare = [{ compare = "bn - plain", margin = 0.2 }]   # a margin for one comparison
```

None of it enters a cell's identity: the same cells answer any question asked of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import SpecError
from ..specs import echo
from ..train.metrics import check_metric, is_fraction

KEYS = {"compare", "metric", "margin", "failed", "test_sample"}
FAILED = ("withhold", "chance")


@dataclass(frozen=True)
class Question:
    a: str
    b: str
    margin: float | None = None  # metric units (a fraction for accuracies)


@dataclass(frozen=True)
class Analysis:
    compare: list[Question] = field(default_factory=list)
    metric: str = "test_acc"
    margin: float | None = None  # metric units
    looks: int = 1  # looks an adaptive study may take: the family's α is split over them
    failed: str = "withhold"  # diverged cells: withhold the comparison's verdict, or count them at chance
    test_sample: tuple[int | None, bool] = (None, True)  # a test-source place's resample: (size, with replacement)

    @property
    def percent(self) -> bool:
        """Accuracies (and ECE, the gap) are shown in percent, their differences and margins in percentage points."""
        return is_fraction(self.metric)


def positive(v, where: str, percent: bool) -> float:
    """A margin or an adaptive width: a positive number, in percentage points for a fraction metric (kept as
    a fraction)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or v != v or v == float("inf"):
        raise SpecError(f"{where}: must be a positive number ({'percentage points' if percent else 'metric units'}), "
                        f"got {echo(v)}")
    return float(v) / 100 if percent else float(v)


def parse_analysis(raw, variants: dict, where: str, n_classes: int = 10, metric_ok=None, looks: int = 1) -> Analysis:
    """``metric_ok``: how a metric name is checked (default: petri's metrics; a table of runs: its columns);
    ``looks``: how many times an adaptive study may look at its comparisons."""
    if raw is None:
        return Analysis(looks=looks)
    where = f"{where}: analysis"
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: must be a table with compare, metric, margin, failed")
    unknown = set(raw) - KEYS
    if unknown:
        raise SpecError(f"{where}: unknown field {echo(sorted(unknown)[0])}; allowed: {', '.join(sorted(KEYS))}")
    check = metric_ok or (lambda name, w: check_metric(name, n_classes, w))
    metric = check(raw.get("metric", "test_acc"), f"{where}.metric")
    percent = is_fraction(metric)
    failed = raw.get("failed", "withhold")
    if failed not in FAILED:
        raise SpecError(f"{where}.failed: {echo(failed)} is not allowed; allowed: {', '.join(FAILED)}")
    if failed == "chance" and not (metric.endswith("_acc") or metric.startswith("class_acc:")):
        raise SpecError(f"{where}.failed: \"chance\" counts a diverged cell at chance accuracy, so the metric must be "
                        f"an accuracy (it is {metric!r}); use \"withhold\"")
    test_sample = _test_sample(raw["test_sample"], f"{where}.test_sample") if "test_sample" in raw else (None, True)
    margin = positive(raw["margin"], f"{where}.margin", percent) if "margin" in raw else None
    items = raw.get("compare", [])
    if not isinstance(items, list):
        raise SpecError(f"{where}.compare: must be a list such as [\"bn - plain\"]")
    compare = []
    for i, item in enumerate(items):
        iw = f"{where}.compare[{i}]"
        own = margin
        if isinstance(item, dict):
            extra = set(item) - {"compare", "margin"}
            if extra or "compare" not in item:
                raise SpecError(f"{iw}: a table has compare = \"A - B\" and optionally margin" +
                                (f" (unknown field {echo(sorted(extra)[0])})" if extra else ""))
            if "margin" in item:
                own = positive(item["margin"], f"{iw}.margin", percent)
            item = item["compare"]
        if not isinstance(item, str) or item.count(" - ") != 1:
            raise SpecError(f"{iw}: {echo(item)} is not \"A - B\" (two variant names around ' - ', with spaces)")
        a, b = (s.strip() for s in item.split(" - "))
        for name in (a, b):
            if name not in variants:
                raise SpecError(f"{iw}: {echo(name)} is not a variant; variants: {', '.join(variants)}")
        if a == b:
            raise SpecError(f"{iw}: compares {a!r} with itself; name two variants")
        compare.append(Question(a, b, own))
    return Analysis(compare, metric, margin, looks, failed, test_sample)


def _test_sample(v, where: str) -> tuple[int | None, bool]:
    """{ size = N, replace = false }: a place of the test source scores its cell on N test images drawn by its
    test seed (without replacement: a subsample); the default { replace = true } a bootstrap of every image."""
    if not isinstance(v, dict) or set(v) - {"size", "replace"}:
        raise SpecError(f"{where}: a table {{ size = 5000, replace = false }} (size: test images per resample, default "
                        f"all; replace: with replacement, default true)" + (f"; got {echo(v)}" if not isinstance(v, dict)
                                                                           else f"; unknown field {echo(sorted(set(v) - {'size', 'replace'})[0])}"))
    size, replace = v.get("size"), v.get("replace", True)
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 2):
        raise SpecError(f"{where}.size: an integer >= 2 (test images per resample; got {echo(size)})")
    if not isinstance(replace, bool):
        raise SpecError(f"{where}.replace: true or false (got {echo(replace)})")
    if size is None and not replace:
        raise SpecError(f"{where}: without replacement every resample of the full test set is the same set; give a size")
    return size, replace

