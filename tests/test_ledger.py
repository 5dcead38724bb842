"""The ledger's schema: what a new ledger holds, each place's seeds per random source, numbered
migrations of older ledgers (applied by a run, never by a reader), a newer ledger left alone."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from conftest import SMALL_STUDY, copy_study, one_line
from ledgers import write

from petri.analysis.records import load
from petri.errors import StoreError
from petri.study.ledger import SCHEMA_VERSION, Ledger
from petri.study.runner import run_study
from petri.study.spec import parse_study

CROSSED = SMALL_STUDY.replace("seeds = 2", "seeds = { init = 2, order = [5, 7], test = 3 }")
FIRST = {"epochs": ("machine", "train_eval_loss", "train_eval_acc", "lr", "train_seconds", "eval_seconds",
                    "checkpoint_seconds"),
         "runs": ("study_path", "seeds", "frozen")}  # what the first ledgers lacked (schema 1)


def _first_schema(directory) -> None:
    """Turn a ledger into one of the first (schema 1): no finals, no places, none of the later columns."""
    db = sqlite3.connect(directory / "petri.sqlite")
    for table, columns in FIRST.items():
        for col in columns:
            db.execute(f"ALTER TABLE {table} DROP COLUMN {col}")
    db.execute("DROP TABLE finals")
    db.execute("DROP TABLE places")
    db.execute("UPDATE meta SET value='1' WHERE key='schema'")
    db.commit()
    db.close()


def _schema(directory) -> str:
    db = sqlite3.connect(directory / "petri.sqlite")
    try:
        return db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0]
    finally:
        db.close()


def test_a_ledger_keeps_each_places_seed_per_source(tmp_path):
    study = parse_study(CROSSED)
    write(study, tmp_path)
    assert _schema(tmp_path) == str(SCHEMA_VERSION)
    ledger = Ledger(tmp_path)
    try:
        kept = ledger.places()
    finally:
        ledger.close()
    assert len(kept) == len(study.cells) == 2 * 12
    for c in study.cells:
        seeds = kept[(c.variant, json.dumps(dict(c.point)), c.seed, c.hash)]
        assert {s: seeds.get(s, seeds["rest"]) for s in ("init", "order", "test", "dropout")} == {
            s: c.sources.of(s) for s in ("init", "order", "test", "dropout")}
    places = load(tmp_path).places
    assert [(p.seed, p.sources) for p in places] == [(c.seed, {"init": c.sources.of("init"), "order": c.sources.of(
        "order"), "test": c.sources.of("test"), "rest": 0}) for c in study.cells]
    assert all(p.resample[0] == p.sources["test"] for p in places)


def test_a_places_seeds_are_read_from_the_ledger(tmp_path):
    study = parse_study(CROSSED)
    write(study, tmp_path)
    first = study.cells[0]
    db = sqlite3.connect(tmp_path / "petri.sqlite")
    db.execute("UPDATE places SET sources=? WHERE variant=? AND seed=?",
               (json.dumps({"rest": 0, "init": 1, "order": 7, "test": 9}), first.variant, first.seed))
    db.commit()
    db.close()
    place = load(tmp_path).places[0]
    assert place.sources == {"init": 1, "order": 7, "test": 9, "rest": 0} and place.resample[0] == 9


def test_an_older_ledger_is_read_as_it_is_and_migrated_by_a_run(tmp_path):
    study = parse_study(CROSSED)
    write(study, tmp_path)
    before = [(p.key, p.seed, p.sources, p.value("test_acc")) for p in load(tmp_path).places]
    _first_schema(tmp_path)
    old = load(tmp_path)  # a reader: the seeds re-derived from the study, nothing written
    assert [(p.key, p.seed, p.sources, p.value("test_acc")) for p in old.places] == before
    assert all(not p.final for p in old.places) and _schema(tmp_path) == "1"
    Ledger(tmp_path, create=True).close()  # what a run does first
    assert _schema(tmp_path) == str(SCHEMA_VERSION)
    db = sqlite3.connect(tmp_path / "petri.sqlite")
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"finals", "places"} <= tables
    for table, columns in FIRST.items():
        assert set(columns) <= {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
    db.close()
    ledger = Ledger(tmp_path, create=True)
    try:
        ledger.register(study.cells)  # (a run registers its places)
    finally:
        ledger.close()
    assert [(p.key, p.seed, p.sources, p.value("test_acc")) for p in load(tmp_path).places] == before


def test_a_ledger_from_a_newer_petri_is_not_written(tmp_path):
    write(parse_study(CROSSED), tmp_path)
    db = sqlite3.connect(tmp_path / "petri.sqlite")
    db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(StoreError, match=rf"written by a newer petri \(ledger schema {SCHEMA_VERSION + 1}; this petri "
                                         rf"writes {SCHEMA_VERSION}\)") as e:
        Ledger(tmp_path, create=True)
    assert "\n" not in str(e.value) and "petri.sqlite" in str(e.value)
    assert len(load(tmp_path).places) == 24  # read as it is


def test_an_older_ledger_gains_the_time_columns(tmp_path, small_study):
    """A ledger from before the time split: a run adds the columns (schema 2); its old rows read NULL."""
    from petri.study.timing import time_split

    out = tmp_path / "out"
    run_study(parse_study(small_study), out)
    db = sqlite3.connect(out / "petri.sqlite")
    for col in ("train_seconds", "eval_seconds", "checkpoint_seconds"):
        db.execute(f"ALTER TABLE epochs DROP COLUMN {col}")
    db.execute("UPDATE meta SET value='1' WHERE key='schema'")
    db.commit()
    assert time_split(out) is None  # a reader adds no columns: no split, no error
    Ledger(out, create=True).close()
    cols = {r[1] for r in db.execute("PRAGMA table_info(epochs)")}
    assert {"train_seconds", "eval_seconds", "checkpoint_seconds"} <= cols
    assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == str(SCHEMA_VERSION)
    assert time_split(out) is None  # its epochs were timed before the columns existed


# --- damaged ledgers and other applications' databases ---------------------------------------

def _garble(db: Path) -> None:
    blob = bytearray(db.read_bytes())
    page = 4096
    for p in range(1, len(blob) // page):  # every page's b-tree header garbled: SQLite must notice
        blob[p * page:p * page + 12] = b"\xff" * 12
    db.write_bytes(bytes(blob))


@pytest.mark.parametrize("command", [["show"], ["export", "--to", "{tmp}/x"], ["report", "--to", "{tmp}/r"], ["run"]])
def test_a_damaged_ledger_is_one_line_and_never_overwritten(tmp_path, cli, small_study_run, command):
    out = copy_study(small_study_run, tmp_path / "d")
    with sqlite3.connect(out / "petri.sqlite") as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    _garble(out / "petri.sqlite")
    before = (out / "petri.sqlite").read_bytes()
    f = tmp_path / "s.toml"
    f.write_text(SMALL_STUDY)
    args = [a.format(tmp=tmp_path) for a in command]
    args = ["run", f, "--out", out] if command == ["run"] else [args[0], out, *args[1:]]
    code, _, err = cli(*args)
    assert code in (1, 2) and err.startswith("petri: error: ") and err.count("\n") == 1, err
    assert ("damaged" in err or "not a petri ledger" in err) and "Traceback" not in err
    assert (out / "petri.sqlite").read_bytes() == before


def test_a_foreign_database_is_refused_and_left_alone(tmp_path, cli):
    out = tmp_path / "foreign"
    out.mkdir()
    with sqlite3.connect(out / "petri.sqlite") as db:
        db.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
        db.execute("INSERT INTO customers VALUES (1, 'Ada')")
    before = (out / "petri.sqlite").read_bytes()
    f = tmp_path / "s.toml"
    f.write_text(SMALL_STUDY)
    for args in (["run", f, "--out", out], ["show", out], ["export", out, "--to", tmp_path / "e"]):
        code, _, err = cli(*args)
        one_line(code, err, 2, "not a petri ledger")
    with sqlite3.connect(tmp_path / "other.sqlite") as db:  # petri's tables, another application's id
        db.execute("PRAGMA application_id = 1234")
        db.executescript("CREATE TABLE meta (k); CREATE TABLE runs (k); CREATE TABLE cells (k); CREATE TABLE epochs (k);")
    (tmp_path / "other").mkdir()
    (tmp_path / "other.sqlite").rename(tmp_path / "other" / "petri.sqlite")
    code, _, err = cli("run", f, "--out", tmp_path / "other")
    one_line(code, err, 2, "its application id is 0x4d2")
    assert (out / "petri.sqlite").read_bytes() == before


def test_a_file_that_is_no_database_is_one_line(tmp_path, cli):
    (tmp_path / "petri.sqlite").write_bytes(b"this is not sqlite at all" * 100)
    code, _, err = cli("show", tmp_path)
    one_line(code, err, 2, "not a petri ledger")
