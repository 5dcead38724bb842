"""The study as last run, re-parsed from the ledger's last run: which cells are the study's now (the
results' read model, ``analysis/records.py``, and ``load_model`` start from it)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import PetriError, StoreError
from .ledger import Ledger
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


def current_study(directory: str | Path) -> Study:
    """The study in ``directory`` as last run; one line if there is none."""
    ledger = Ledger(directory)
    try:
        study = last_study(ledger)
    finally:
        ledger.close()
    if study is None:
        raise StoreError(f"{ledger.path}: the ledger holds no runs yet; nothing to show or report")
    return study
