"""Export the ledger's cell-level and epoch-level tables, and the cells' kept per-example predictions, as
CSV, Parquet or JSON.

In CSV and Parquet a cell's sweep point is one column per axis right after ``variant``, its values
typed (numbers as numbers), as ``Results.cells()`` and ``epochs()`` have them; an epoch's learning
rate is ``learning_rate``, as there. JSON keeps the ledger's rows as they are (``point`` a JSON object
in text)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..errors import PlaceError, SpecError
from ..study.ledger import Ledger

FORMATS = ("csv", "parquet", "json")


def export(directory: str | Path, fmt: str, to: str | Path | None = None) -> list[Path]:
    if fmt not in FORMATS:
        raise SpecError(f"--format: {fmt!r} is not supported; allowed: {', '.join(FORMATS)}")
    ledger = Ledger(directory)
    try:
        tables = {"cells": ledger.cells(), "epochs": ledger.epochs()}
    finally:
        ledger.close()
    predictions = _predictions(directory, tables["cells"])
    if predictions:
        tables["predictions"] = predictions
    out = Path(to) if to else Path(directory) / "export"
    try:
        if out.exists() and not out.is_dir():
            raise PlaceError(f"--to {out}: is a file; export writes into a folder")
        out.mkdir(parents=True, exist_ok=True)
        return _write(out, fmt, tables) + _subsets(directory, out)
    except OSError as e:
        raise PlaceError(f"{out}: cannot write the export ({e.strerror}); choose a writable folder with --to") from None


def _predictions(directory, cells: list[dict]) -> list[dict]:
    """One row per kept prediction: the cell (hash, variant, point, seed), the ``split`` ("test", "val", or
    the best epoch's "best.test", "best.val"), the image's ``position`` in the split's images (``image`` in
    subsets.json), its ``label`` and the ``predicted`` class."""
    from ..study.cellstore import load_predictions

    rows = []
    for c in cells:
        got = load_predictions(directory, c["hash"])
        for split, pred in (got or {}).items():
            if split.endswith(".labels"):
                continue
            labels = got[f"{split.removeprefix('best.')}.labels"].tolist()
            rows += [{"hash": c["hash"], "variant": c["variant"], "point": c["point"], "seed": c["seed"], "split": split,
                      "position": i, "label": y, "predicted": x} for i, (y, x) in enumerate(zip(labels, pred.tolist()))]
    return rows


def _subsets(directory, out: Path) -> list[Path]:
    """subsets.json: for each (variant, point) trained on part of a split (train_size, val_size,
    test_size), the indices of its images in the official splits: the same for every seed."""
    from ..data import get_spec
    from ..study.current import current_study
    from ..train.splits import subset_ids

    study = current_study(directory)
    spec, rows, seen = get_spec(study.data), [], set()
    for c in study.cells:
        r = c.recipe
        if (c.variant, c.point) in seen or not (r.train_size or r.val_size or r.test_size):
            continue
        seen.add((c.variant, c.point))
        ids = subset_ids(spec.n_train, spec.n_test, r, spec.name)
        rows.append({"variant": c.variant, "point": dict(c.point),
                     **{k: t.tolist() for k, t in zip(("train", "val", "test"), ids)}})
    if not rows:
        return []
    path = out / "subsets.json"
    path.write_text(json.dumps(rows))
    return [path]


def _write(out: Path, fmt: str, tables: dict) -> list[Path]:
    paths = []
    for name, rows in tables.items():
        path = out / f"{name}.{fmt}"
        if fmt == "json":
            path.write_text(json.dumps(rows, indent=1))
            paths.append(path)
            continue
        rows = with_axes(rows)
        if fmt == "csv":
            with open(path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["empty"])
                w.writeheader()
                w.writerows(rows)
        else:
            try:
                import pyarrow as pa
                import pyarrow.parquet as pq
            except ImportError:
                raise SpecError("--format parquet: needs pyarrow; from the checkout, pip install -e '.[parquet]'") from None
            pq.write_table(pa.Table.from_pylist(rows), path)
        paths.append(path)
    return paths


def with_axes(rows: list[dict]) -> list[dict]:
    """Ledger rows with ``point`` (JSON text) as one column per sweep axis after ``variant`` (named by the
    axis, or ``point.<axis>`` where a column has that name already) and ``lr`` as ``learning_rate``. An axis
    whose values mix kinds (``padding``: 0 or "same") is text, JSON for the numbers, so a column has one type."""
    def name(column):
        return "learning_rate" if column == "lr" else column

    def kind(v):
        return "number" if isinstance(v, (int, float)) and not isinstance(v, bool) else type(v).__name__

    points = [json.loads(r["point"]) for r in rows]
    taken = {name(k) for r in rows for k in r} - {"point"}
    axes = {a: f"point.{a}" if a in taken else a for a in dict.fromkeys(k for p in points for k in p)}
    for a in axes:
        if len({kind(p[a]) for p in points if p.get(a) is not None}) > 1:
            for p in points:
                if a in p and not isinstance(p[a], str):
                    p[a] = json.dumps(p[a])
    out = []
    for r, p in zip(rows, points):
        row = {}
        for k, v in r.items():
            if k != "point":
                row[name(k)] = v
            if k == "variant":
                row.update({col: p.get(a) for a, col in axes.items()})
        out.append(row)
    return out
