"""Runs made elsewhere as a snapshot: a table with one row per run (a CSV, a Parquet file or a pandas
DataFrame — a W&B or MLflow export, a spreadsheet) gets petri's comparisons, family, verdicts, noise
decomposition, planning and report.

Columns:

* ``variant`` (required): what the run is an instance of.
* ``seed`` — or one column per random source, ``seed_<source>`` (``seed_init``, ``seed_order``): which
  draw the run is. Runs of different variants with the same seed(s) are paired; several ``seed_*``
  columns are crossed sources, analysed with the crossed random-effects model.
* the sweep axes, named with ``axes`` (e.g. ``lr``): a variant's runs at each value form a point.
* ``status`` (optional): done, diverged, failed, pending, ... (``records.Status``); without it every run
  with a value is done.
* the metric compared (``metric``, default ``test_acc``) and any other numeric columns (recorded
  metrics, shown in ``Results.metrics()``).
"""

from __future__ import annotations

import json
import math

import numpy as np
from pathlib import Path

from ..errors import SpecError
from .records import Place, Snapshot, Status

RESERVED = ("variant", "seed", "status")


def read_table(source, where: str):
    """A DataFrame from a CSV / Parquet path or a DataFrame; one line if it cannot be read."""
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        return source.copy()
    path = Path(source)
    if not path.is_file():
        raise SpecError(f"{where}: no such file; give a CSV or Parquet table with one row per run")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except ImportError:
        raise SpecError(f"{where}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    except Exception as e:  # noqa: BLE001 - pandas raises many kinds for a file that is not a table
        raise SpecError(f"{where}: not a readable {'Parquet' if path.suffix.lower() in ('.parquet', '.pq') else 'CSV'} "
                        f"table ({' '.join(str(e).split())[:200]})") from None


def snapshot(table, where: str, analysis, baseline: str | None = None, axes: list[str] | None = None,
             test_size: int | None = None, classes: int | None = None, name: str | None = None) -> Snapshot:
    """The runs of ``table`` as places. ``analysis``: a ``study.questions.Analysis`` (its metric names the
    column compared); ``test_size``: test images behind an accuracy (its step, and what "at chance" is
    judged with); ``classes``: how many (a constant guess's accuracy is 1 / classes)."""
    import pandas as pd

    df = table
    axes = list(axes or [])
    if "variant" not in df.columns:
        raise SpecError(f"{where}: no 'variant' column; a table of runs has variant, seed (or seed_<source> per "
                        "random source), the metric columns and optionally status and sweep axes")
    sources = [c[5:] for c in df.columns if isinstance(c, str) and c.startswith("seed_")]
    if "seed" in df.columns and sources:
        raise SpecError(f"{where}: both 'seed' and seed_<source> columns ({', '.join('seed_' + s for s in sources)}); "
                        "give one seed column, or one per random source")
    seed_cols = [f"seed_{s}" for s in sources] or (["seed"] if "seed" in df.columns else [])
    if not seed_cols:
        raise SpecError(f"{where}: no 'seed' column (or seed_<source> columns, one per random source): runs are "
                        "paired by their seeds")
    for a in axes:
        if a not in df.columns:
            raise SpecError(f"{where}: axes: no column {a!r}; columns: {', '.join(map(str, df.columns))}")
    metric = analysis.metric
    if metric not in df.columns:
        raise SpecError(f"{where}: metric: no column {metric!r}; columns: {', '.join(map(str, df.columns))} "
                        "(name the compared column with metric)")
    values = [c for c in df.columns if c not in (*RESERVED, *seed_cols, *axes)]
    for c in values:
        if c == metric and not pd.api.types.is_numeric_dtype(df[c]):
            bad = next(i for i, v in enumerate(df[c]) if not _number(v))
            raise SpecError(f"{where}: {c}: row {bad + 2} holds {df[c].iloc[bad]!r}, not a number; the compared "
                            "metric must be numeric (empty for a run without a value)")
    status = df["status"].astype(str) if "status" in df.columns else None
    allowed = [str(s) for s in Status]
    if status is not None and (bad := [s for s in status.unique() if s not in allowed]):
        raise SpecError(f"{where}: status: {bad[0]!r} is not a status; allowed: {', '.join(allowed)}")
    for c in seed_cols:
        if df[c].isna().any():
            raise SpecError(f"{where}: {c}: row {int(df[c].isna().to_numpy().argmax()) + 2} has no seed")
    keys = ["variant", *axes, *seed_cols]
    dup = df.duplicated(keys, keep=False)
    if dup.any():
        rows = [int(i) + 2 for i in np.flatnonzero(dup.to_numpy())[:2]]
        raise SpecError(f"{where}: rows {rows[0]} and {rows[1]} are the same run ({', '.join(keys)} alike); each run "
                        "once (average repeats yourself, or give them their own seed)")
    combos = sorted({tuple(r) for r in df[seed_cols].astype(str).itertuples(index=False)}, key=_order)
    plain = seed_cols == ["seed"] and all(_number(c[0]) and float(c[0]).is_integer() for c in combos)
    place_of = {c: int(float(c[0])) if plain else i for i, c in enumerate(combos)}  # plain seeds keep their numbers
    per = df.groupby(["variant", *axes], sort=False, dropna=False).size()
    if per.max() < 2:
        raise SpecError(f"{where}: every variant{' and point' if axes else ''} has one run: a comparison needs 2 seeds "
                        "or more on each side")
    places = []
    numeric = [c for c in values if pd.api.types.is_numeric_dtype(df[c])]
    for i, row in enumerate(df.itertuples(index=False)):
        r = dict(zip(df.columns, row))
        value = r[metric]
        st = Status(status.iloc[i]) if status is not None else (Status.DONE if _present(value) else None)
        if st is None:
            raise SpecError(f"{where}: {metric}: row {i + 2} is empty; add a status column (diverged, failed, pending) "
                            "for runs without a value")
        if st.finished and not _present(value):
            raise SpecError(f"{where}: {metric}: row {i + 2} is {st} but has no value")
        combo = tuple(str(r[c]) for c in seed_cols)
        point = {a: _plain(r[a]) for a in axes}
        places.append(Place(str(r["variant"]), point, place_of[combo], f"row{i + 2}", st,
                            {s: _seed(r[f"seed_{s}"]) for s in sources}, frozenset(sources),
                            values={c: _float(r[c]) for c in numeric}, n_test=test_size,
                            final={"classes": classes} if classes else {}))
    from .findings import point_key

    variants = list(dict.fromkeys(p.variant for p in places))
    if baseline is not None and baseline not in variants:
        raise SpecError(f"{where}: baseline: {baseline!r} is not a variant; variants: {', '.join(variants)}")
    for q in analysis.compare:
        for v in (q.a, q.b):
            if v not in variants:
                raise SpecError(f"{where}: compare: {v!r} is not a variant; variants: {', '.join(variants)}")
    places.sort(key=lambda p: (variants.index(p.variant), [point_key(v) for v in p.point.values()], p.seed))
    base = baseline or variants[0]
    swept = any(p.point for p in places if p.variant == base)
    return Snapshot(name or (Path(where).stem if where else "runs"), places, base, None, repr(base), analysis,
                    [s for s in sources if df[f"seed_{s}"].nunique() > 1], sources,
                    [str(i) for i in range(classes)] if classes else [],
                    warnings=[f"{base!r} is swept: give the point to compare against, or declare comparisons"]
                    if swept and not analysis.compare else [], source=str(where))


def _order(combo):
    return [(0, float(x), "") if _number(x) else (1, 0.0, x) for x in combo]


def _number(v) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def _present(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _float(v):
    return float(v) if _present(v) else math.nan


def _seed(v):
    return int(v) if _number(v) and float(v).is_integer() else v


def _plain(v):
    """A sweep value as a plain Python value (numpy scalars become int / float)."""
    if hasattr(v, "item"):
        v = v.item()
    return int(v) if isinstance(v, float) and v.is_integer() else v


def describe(snap: Snapshot) -> str:
    """One line on what was read, for the CLI."""
    variants = snap.variants
    design = f"crossed sources {', '.join(snap.factors)}" if snap.factors else "independent seeds"
    return (f"{snap.source}: {len(snap.places)} runs of {len(variants)} variant{'s' if len(variants) != 1 else ''} "
            f"({', '.join(variants[:6])}{', …' if len(variants) > 6 else ''}); {design}; metric "
            f"{snap.analysis.metric}; reference {snap.reference}") + (
        f"; axes {', '.join(snap.axes)}" if snap.axes else "") + (
        f" — {json.dumps([q.a + ' - ' + q.b for q in snap.analysis.compare])}" if snap.analysis.compare else "")
