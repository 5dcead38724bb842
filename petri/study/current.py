"""The study as last run, read from the ledger: what `petri show`, `petri report` and `load_model` start from."""

from __future__ import annotations

from pathlib import Path

from ..errors import PetriError, StoreError
from .ledger import Ledger
from .spec import Study, parse_study


def last_study(ledger: Ledger) -> Study | None:
    """The study as last run (file text, profile, data override), re-parsed; None if never run."""
    row = ledger.query("SELECT * FROM runs ORDER BY id DESC LIMIT 1")
    if not row:
        return None
    row = row[0]
    base_dir = Path(row["study_path"]).parent if row.get("study_path") else None  # plugins relative to the file
    try:
        return parse_study(row["study_text"], f"{ledger.study_name()} (as last run)", row["data_override"],
                           row["profile"], base_dir)
    except PetriError as e:
        raise StoreError(f"{ledger.path}: the stored study file no longer parses ({e})") from None


def load_current(directory: str | Path) -> tuple[Study, list[dict], list[dict], list[dict]]:
    """(study, runs, cells, epochs) for the cells of the study as last run; older cells stay in the
    ledger, unshown."""
    ledger = Ledger(directory)
    try:
        runs = ledger.query("SELECT * FROM runs ORDER BY id")
        study = last_study(ledger)
        if study is None:
            raise StoreError(f"{ledger.path}: the ledger holds no runs yet; nothing to show or report")
        current = {c.hash for c in study.cells}
        cells = [c for c in ledger.cells() if c["hash"] in current]
        epochs = [e for e in ledger.epochs() if e["cell_hash"] in current]
    finally:
        ledger.close()
    return study, runs, cells, epochs
