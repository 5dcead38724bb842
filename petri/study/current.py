"""The study as last run, read from the ledger: what `petri show`, `petri report` and `load_model` start from."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from ..errors import PetriError, StoreError
from .ledger import Ledger
from .lock import holder
from .crossing import factor_seed
from .spec import Study, parse_study


def last_study(ledger: Ledger, row: dict | None = ...) -> Study | None:
    """The study as last run (file text, profile, data override), re-parsed; None if never run."""
    if row is ...:
        rows = ledger.query("SELECT * FROM runs ORDER BY id DESC LIMIT 1")
        row = rows[0] if rows else None
    if row is None:
        return None
    base_dir = Path(row["study_path"]).parent if row.get("study_path") else None  # plugins relative to the file
    try:
        seeds = json.loads(row["seeds"]) if row.get("seeds") else None  # an adaptive study's round
        frozen = json.loads(row["frozen"]) if row.get("frozen") else None  # plugins and data as the cells ran
        return parse_study(row["study_text"], f"{ledger.study_name()} (as last run)", row["data_override"],
                           row["profile"], base_dir, len(seeds) if seeds else None, frozen, ledger.dir)
    except PetriError as e:
        raise StoreError(f"{ledger.path}: the stored study file no longer parses ({e})") from None


def load_current(directory: str | Path) -> tuple[Study, list[dict], list[dict], list[dict]]:
    """(study, runs, places, epochs) of the study as last run; older cells stay in the ledger, unshown.

    A *place* is a (variant, sweep point, seed) of the study. One trained cell may fill several
    places (a grid point equal to the baseline has the baseline's hash): it is trained once and shown
    in each. A place row is its cell's ledger row with the place's variant, point and seed and a
    ``place`` key; each epoch row is repeated for every place of its cell, with the same key. A cell
    marked running while no run holds the directory's lock (its process was killed), or stopped by
    Ctrl-C or SIGTERM, is shown as "interrupted"."""
    ledger = Ledger(directory)
    try:
        with ledger.snapshot():  # another process may be training into this directory
            runs = ledger.query("SELECT * FROM runs ORDER BY id")
            study_row = runs[-1] if runs else None
            stored = {c["hash"]: c for c in ledger.cells()}
            epoch_rows = ledger.epochs()
        study = last_study(ledger, study_row)
        if study is None:
            raise StoreError(f"{ledger.path}: the ledger holds no runs yet; nothing to show or report")
        by_cell: dict[str, list[dict]] = {}
        for e in epoch_rows:
            by_cell.setdefault(e["cell_hash"], []).append(e)
    except sqlite3.DatabaseError as e:
        raise ledger.trouble(e) from None
    finally:
        ledger.close()
    places, epochs = [], []
    gone = holder(directory) is None  # nobody trains here now: cells still marked running were interrupted
    for c in study.cells:
        point = json.dumps(dict(c.point))
        key = f"{c.variant}|{point}|{c.seed}"
        row = stored.get(c.hash) or {"hash": c.hash, "status": "pending", "config": c.config, "started": None,
                                     "finished": None, "seconds": None, "run_id": None, "error": None}
        if gone and row["status"] == "running" or row["status"] == "failed" and row.get("error") == "interrupted":
            # (older ledgers kept a polite stop as failed with the error 'interrupted')
            row = row | {"status": "interrupted"}  # killed, or stopped by Ctrl-C / SIGTERM: it resumes
        sources = {s: factor_seed(c.sources, s) for s in study.crossing} if c.sources else {}
        places.append(row | {"variant": c.variant, "point": point, "seed": c.seed, "place": key, "sources": sources})
        epochs += [e | {"variant": c.variant, "point": point, "seed": c.seed, "place": key}
                   for e in by_cell.get(c.hash, [])]
    return study, runs, places, epochs


def outside_note(directory: str | Path, study: Study) -> str | None:
    """One sentence when the folder holds finished cells that are not the study's as last run (a plugin
    or data file changed and the changed study was run with --changed, or variants were removed)."""
    from .ledger import FINISHED

    ledger = Ledger(directory)
    try:
        mine = {c.hash for c in study.cells}
        others = [c for c in ledger.cells() if c["status"] in FINISHED and c["hash"] not in mine]
    finally:
        ledger.close()
    if not others:
        return None
    return (f"{len(others)} finished cell{'s' if len(others) != 1 else ''} in this folder belong to an earlier "
            f"version of the study ({', '.join(sorted({c['variant'] for c in others}))}) and are not shown: they "
            "stay in the ledger (export has them).")
