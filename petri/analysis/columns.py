"""Tables declared once, rendered many ways.

A ``Table`` declares its ``Column``s once — name, type, unit, meaning, and how to read the value off a
record — and every rendering is made from that declaration: the pandas DataFrame of ``petri.Results``,
the CSV beside the report (the same frame), the columns' documentation in ``help(petri.Results)``, and
the text cells of the report's tables and of ``petri show`` (``Shown``: a header and a formatter over
the same records, with ``terminal=False`` for what only the report prints). Adding a column is one
declaration here, plus the computation of its value.

Column names and headers may name the analysed metric and its unit through ``Context``: ``{metric}``
(``test_acc``), ``{unit}`` (``pp`` for accuracies, else the metric's name) and ``{level}`` (the family's
confidence level).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

DTYPES = ("float64", "int64", "category", "string", "bool", "object")


@dataclass(frozen=True)
class Context:
    """What a table's names and numbers depend on beyond its records."""

    metric: str = "test_acc"
    percent: bool = True  # fractions shown in percent (differences in percentage points)
    axes: tuple[str, ...] = ()  # sweep axes: typed columns after the first
    sources: tuple[str, ...] = ()  # a crossed study's factors: seed_<source> columns
    level: float = 0.95  # the family-wise confidence level
    extra: dict = field(default_factory=dict)  # table-specific facts (e.g. final metrics' names)

    @property
    def unit(self) -> str:
        return "pp" if self.percent else self.metric

    @property
    def scale(self) -> float:
        return 100.0 if self.percent else 1.0

    def name(self, template: str) -> str:
        words = {k: v for k, v in self.extra.items() if isinstance(v, str)}  # e.g. {need}, {best}
        return template.format(**words, metric=self.metric, unit=self.unit, level=f"{100 * self.level:.4g} %")

    # --- text formatting, shared by the report and the terminal ------------------------------
    def value(self, x) -> str:
        """A value of the metric: 96.21 (percent) or 0.0123."""
        return "—" if _missing(x) else f"{self.scale * x:.2f}" if self.percent else f"{x:.4f}"

    def diff(self, x) -> str:
        return "—" if _missing(x) else f"{self.scale * x:+.2f}" if self.percent else f"{x:+.4f}"

    def interval(self, lo, hi) -> str:
        return "—" if _missing(lo) else f"[{self.diff(lo)}, {self.diff(hi)}]"


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def p_text(p) -> str:
    return "—" if _missing(p) else (f"{p:.2g}" if p >= 1e-4 else "<1e-4")


def number(x, fmt: str = "{:.2f}") -> str:
    return "—" if _missing(x) else fmt.format(x)


def epochs_text(mean) -> str:
    """Epochs run, a mean over seeds: "3" when every seed ran 3, "7.3" when early stopping made them differ."""
    return "—" if _missing(mean) else f"{mean:.0f}" if float(mean).is_integer() else f"{mean:.1f}"


@dataclass(frozen=True)
class Column:
    """One column of a table's DataFrame and CSV: ``name`` (a template, see the module), ``dtype``,
    ``doc`` (meaning and unit, for the documentation) and ``get(record, context)``."""

    name: str
    dtype: str
    doc: str
    get: Callable[[Any, Context], Any]
    when: Callable[[Context], bool] | None = None  # present only in some studies (e.g. crossed ones)

    def __post_init__(self):
        assert self.dtype in DTYPES, self.dtype


@dataclass(frozen=True)
class Shown:
    """One column of a table as the report and the terminal print it: a header (template) and a text."""

    header: str
    text: Callable[[Any, Context], str]
    terminal: bool = True  # the terminal prints it too (else the report only)
    report: bool = True  # the report prints it (else the terminal only)


@dataclass
class Table:
    name: str
    doc: str
    columns: list[Column]
    shown: list[Shown] = field(default_factory=list)
    first: int = 1  # sweep axes (and seeds per source) go after this many columns
    expand: Callable[[Context], dict[str, list[Column]]] | None = None  # column name -> columns that follow it and
    # depend on the study (each source's seed, each recorded final metric)

    def frame_columns(self, ctx: Context) -> list[Column]:
        cols = [c for c in self.columns if c.when is None or c.when(ctx)]
        axes = [Column(a, "object", "", (lambda r, c, a=a: r.axes.get(a) if hasattr(r, "axes") else None))
                for a in ctx.axes]
        more = self.expand(ctx) if self.expand else {}
        trailing = [Column(a, "category", "", (lambda r, c, a=a: r.axes.get(a) if hasattr(r, "axes") else None))
                    for a in ctx.extra.get("trailing", ()) if self.first]  # swept, optimizer: see Results
        out = [*cols[:self.first], *axes]
        for c in cols[self.first:]:
            out += [c, *more.get(c.name, [])]
        return [*out, *trailing]

    def frame(self, records, ctx: Context):
        """The records as a typed DataFrame (``attrs['units']`` names the unit of the metric's columns)."""
        import pandas as pd

        cols, names = [], []
        for c in self.frame_columns(ctx):  # a fixed column the metric's own takes the name of (test_loss when
            if ctx.name(c.name) not in names:  # the study's metric is test_loss) is the same numbers: once
                cols.append(c)
                names.append(ctx.name(c.name))
        df = pd.DataFrame([[c.get(r, ctx) for c in cols] for r in records], columns=names)
        for c, name in zip(cols, names):
            df[name] = _typed(df[name], c.dtype)
        return df

    def text(self, records, ctx: Context, terminal: bool = False) -> tuple[list[str], list[list[str]]]:
        """Headers and text rows, as the report (or, with ``terminal``, ``petri show``) prints them."""
        shown = [s for s in self.shown if (s.terminal if terminal else s.report)]
        return [ctx.name(s.header) for s in shown], [[s.text(r, ctx) for s in shown] for r in records]

    def documentation(self, indent: str = "    ") -> str:
        """One line per column: name (dtype) and meaning, for docstrings."""
        return "\n".join(f"{indent}``{c.name}`` ({c.dtype}): {c.doc}" for c in self.columns if c.doc)


def _typed(series, dtype: str):
    import pandas as pd

    if dtype == "object":
        values = [v for v in series if v is not None and not (isinstance(v, float) and math.isnan(v))]
        if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return pd.to_numeric(series)
        return series
    if dtype == "category":
        return series.astype("category")
    if dtype == "string":
        return series.astype("string")
    if dtype == "bool":
        return series.astype("bool")
    if dtype == "int64":
        return series.astype("int64")
    return pd.to_numeric(series, errors="coerce").astype("float64")
