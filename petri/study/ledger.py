"""The ledger: one SQLite file per study directory (``DIR/petri.sqlite``, WAL mode).

Schema (query it with any SQLite client):

* ``finals(cell_hash, metrics)``: a finished cell's numbers from its test logits (JSON: ``ece``,
  ``class_acc`` per class, ``confusion`` rows true / columns predicted, registered metrics).
* ``meta(key, value)``: study name, schema version; ``adaptive`` (JSON: each look of an adaptive
  study and why and when it stopped).
* ``runs(id, started, finished, status, petri_version, git_commit, torch_version,
  device, host, executor, study_text, profile, data_override, study_path, seeds)``: one row per
  ``petri run`` (an adaptive study: per round); ``seeds`` the JSON list of the seeds it covered;
  ``frozen`` (JSON) the stored copies of its plugins (``DIR/plugins/``) and its data set's identity.
* ``cells(hash, variant, point, seed, config, status, started, finished, seconds,
  run_id, error)``: status is pending / running / done / failed / diverged /
  stopped-early / interrupted (Ctrl-C or SIGTERM); ``point`` and ``config`` are JSON.
* ``places(variant, point, seed, cell_hash, sources)``: each place of the study as last run and the cell
  filling it; ``sources`` (JSON) its seed per random source: ``rest`` for every source it does not
  name (a plain study: the seed itself), and each source a crossed study names.
* ``epochs(cell_hash, epoch, train_loss, train_acc, val_loss, val_acc, test_loss,
  test_acc, images_per_s, seconds, pack_size, machine, train_eval_loss, train_eval_acc, lr,
  train_seconds, eval_seconds, checkpoint_seconds, metrics)``:
  ``train_*`` are running means over the epoch's batches (train mode), ``train_eval_*`` the first
  2,000 training images evaluated as the test set is (eval mode; NULL with ``test_*`` in an epoch the
  recipe's ``eval_every`` leaves out); ``machine`` names what computed the
  epoch (``petri.machine``: CPU model, vector capability, GPU, torch / MKL / oneDNN / CUDA); ``lr`` the
  learning rate of the epoch's last step (the member's rate times its schedule's factor);
  ``seconds`` the pack's wall time from the epoch's start to the end of its evaluation;
  ``train_seconds``, ``eval_seconds``, ``checkpoint_seconds`` the cell's share of its pack's wall time
  training, evaluating and saving states (within the epoch, at its end, and the previous epoch's
  checkpoint files): the pack's seconds divided evenly over the cells that recorded the epoch, so
  that the rows of a study sum to its packs' time (``study.timing``); ``metrics`` (JSON) the epoch's
  numbers beyond these columns (``train.metrics.EPOCH_METRICS``: e.g. ``weight_norm``).

Every write is one transaction, so a kill -9 loses at most the epoch in flight. ``meta``'s ``schema`` is
the version of this layout; a run brings an older ledger up to it, one numbered migration at a time
(``MIGRATIONS``); readers read every older one as it is.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

from ..errors import PetriError, PlaceError, StoreError

SCHEMA_VERSION = 4  # meta 'schema': the last migration a ledger has had (MIGRATIONS)
FINISHED = ("done", "diverged", "stopped-early")
EPOCH_FIELDS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc",
                "images_per_s", "seconds", "pack_size", "machine", "train_eval_loss", "train_eval_acc", "lr",
                "train_seconds", "eval_seconds", "checkpoint_seconds")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT, started REAL NOT NULL, finished REAL, status TEXT NOT NULL,
  petri_version TEXT, git_commit TEXT, torch_version TEXT, device TEXT, host TEXT, executor TEXT,
  study_text TEXT NOT NULL, profile TEXT, data_override TEXT, study_path TEXT, seeds TEXT, frozen TEXT);
CREATE TABLE IF NOT EXISTS cells (
  hash TEXT PRIMARY KEY, variant TEXT NOT NULL, point TEXT NOT NULL, seed INTEGER NOT NULL,
  config TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', started REAL, finished REAL,
  seconds REAL, run_id INTEGER REFERENCES runs(id), error TEXT);
CREATE TABLE IF NOT EXISTS epochs (
  cell_hash TEXT NOT NULL REFERENCES cells(hash), epoch INTEGER NOT NULL,
  train_loss REAL, train_acc REAL, val_loss REAL, val_acc REAL, test_loss REAL, test_acc REAL,
  images_per_s REAL, seconds REAL, pack_size INTEGER, machine TEXT, train_eval_loss REAL, train_eval_acc REAL,
  lr REAL, train_seconds REAL, eval_seconds REAL, checkpoint_seconds REAL, metrics TEXT, PRIMARY KEY (cell_hash, epoch));
CREATE TABLE IF NOT EXISTS finals (cell_hash TEXT PRIMARY KEY REFERENCES cells(hash), metrics TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS places (
  variant TEXT NOT NULL, point TEXT NOT NULL, seed INTEGER NOT NULL, cell_hash TEXT NOT NULL REFERENCES cells(hash),
  sources TEXT NOT NULL, PRIMARY KEY (variant, point, seed));
"""


def _columns(table: str, added: dict[str, str]):
    """A migration step: ``table`` gains the columns it lacks (ledgers of one version differ in which
    they already have: the first ones gained them one at a time)."""
    def step(db):
        have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
        for name, kind in added.items():
            if name not in have:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
    return step


# MIGRATIONS[n] takes a ledger of schema n - 1 to schema n; a run applies the ones an older ledger lacks,
# each in one transaction with its new version. Readers never migrate: they read every older schema.
MIGRATIONS = {
    # 2: per-epoch machine, train_eval_*, lr and the time split; runs' study_path, seeds and frozen; finals
    2: [_columns("epochs", {"machine": "TEXT", "train_eval_loss": "REAL", "train_eval_acc": "REAL", "lr": "REAL",
                            "train_seconds": "REAL", "eval_seconds": "REAL", "checkpoint_seconds": "REAL"}),
        _columns("runs", {"study_path": "TEXT", "seeds": "TEXT", "frozen": "TEXT"}),
        lambda db: db.execute("CREATE TABLE IF NOT EXISTS finals (cell_hash TEXT PRIMARY KEY REFERENCES cells(hash),"
                              " metrics TEXT NOT NULL)")],
    # 3: places, each with its seed per random source
    3: [lambda db: db.execute("CREATE TABLE IF NOT EXISTS places (variant TEXT NOT NULL, point TEXT NOT NULL, seed "
                              "INTEGER NOT NULL, cell_hash TEXT NOT NULL REFERENCES cells(hash), sources TEXT NOT NULL,"
                              " PRIMARY KEY (variant, point, seed))")],
    # 4: per-epoch metrics beyond the fixed columns (train.metrics.EPOCH_METRICS), as JSON
    4: [_columns("epochs", {"metrics": "TEXT"})],
}


APPLICATION_ID = 0x70657472  # "petr": SQLite's header field naming the file's application


def _more(m: dict) -> str | None:
    """An epoch row's numbers beyond the fixed columns, as the ``metrics`` JSON (None: there are none)."""
    more = {k: v for k, v in m.items() if k not in EPOCH_FIELDS and k != "epoch" and isinstance(v, (int, float))}
    return json.dumps(more) if more else None


class Ledger:
    """``create``: the writer (a run); otherwise a read-only reader, which also works from a
    read-only place and sees one consistent snapshot per ``snapshot()`` block."""

    def __init__(self, directory: str | Path, create: bool = False):
        self.dir = Path(directory)
        self.path = self.dir / "petri.sqlite"
        if not create and not self.path.is_file():
            raise StoreError(f"{self.path}: no ledger here; run `petri run STUDY --out {self.dir}` first")
        if create:
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise PlaceError(f"{self.dir}: cannot create the study directory ({e.strerror})") from None
        try:
            self.db = self._connect(create)
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            app_id = self.db.execute("PRAGMA application_id").fetchone()[0]
            if create and not tables and app_id == 0:  # a new ledger: its schema in one transaction
                self.db.executescript(f"BEGIN IMMEDIATE; PRAGMA application_id = {APPLICATION_ID}; {SCHEMA} "
                                      f"INSERT INTO meta VALUES ('schema', '{SCHEMA_VERSION}'); COMMIT;")
                tables, app_id = {"meta", "runs", "cells", "epochs"}, APPLICATION_ID
            if not create and not tables and app_id == 0:  # a ledger being created this instant
                self.db.close()
                raise StoreError(f"{self.path}: the ledger holds no runs yet; nothing to show or report")
            elif create and app_id in (0, APPLICATION_ID) and {"meta", "runs", "cells", "epochs"} <= tables:
                self._migrate()
                if app_id == 0:
                    self.db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        except sqlite3.DatabaseError as e:
            if "file is not a database" in str(e) or "not a database" in str(e):
                raise StoreError(f"{self.path}: not a petri ledger ({e}); petri never writes into it: use another "
                                 "--out directory") from None
            raise self.trouble(e) from None
        missing = {"meta", "runs", "cells", "epochs"} - tables
        if create and not missing and app_id in (0, APPLICATION_ID):
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.DatabaseError as e:
                raise self.trouble(e) from None
        if app_id not in (0, APPLICATION_ID) or missing:
            what = f"its application id is {app_id:#x}" if app_id not in (0, APPLICATION_ID) else \
                f"missing tables: {', '.join(sorted(missing))}"
            self.db.close()
            raise StoreError(f"{self.path}: not a petri ledger ({what}); petri never writes into another "
                             "application's database: use another --out directory")

    def _connect(self, create: bool) -> sqlite3.Connection:
        if create:  # WAL is switched on once the file is known to be petri's (it rewrites the header)
            return sqlite3.connect(self.path, timeout=30, isolation_level=None)
        uri = self.path.resolve().as_uri()
        try:
            db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30, isolation_level=None)
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            return db
        except sqlite3.OperationalError:  # a read-only place without WAL's shared-memory file: nobody writes
            return sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None)

    def schema(self) -> int:
        """The ledger's schema version (1: the first ledgers, which said none)."""
        row = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        return int(row[0]) if row and str(row[0]).isdigit() else 1

    def _migrate(self) -> None:
        """Bring an older ledger to ``SCHEMA_VERSION`` (a run's writer only); a newer one is refused."""
        version = self.schema()
        if version > SCHEMA_VERSION:
            self.db.close()
            raise StoreError(f"{self.path}: written by a newer petri (ledger schema {version}; this petri writes "
                             f"{SCHEMA_VERSION}); run it with that petri, or use another --out directory")
        for n in range(version + 1, SCHEMA_VERSION + 1):
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for step in MIGRATIONS[n]:
                    step(self.db)
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(n),))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    @contextmanager
    def snapshot(self):
        """Reads inside see one state of the ledger (WAL snapshot isolation), however a writer moves on."""
        try:
            self.db.execute("BEGIN")
        except sqlite3.DatabaseError as e:
            raise self.trouble(e) from None
        try:
            yield self
        finally:
            if self.db.in_transaction:
                self.db.execute("COMMIT")

    def close(self):
        self.db.close()

    # --- transactions -------------------------------------------------------------------
    def _tx(self, fn):
        """One write transaction; a damaged file or a full disk is one line, and nothing half-written stays."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                out = fn(self.db)
                self.db.execute("COMMIT")
                return out
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as e:
            raise self.trouble(e) from None

    def trouble(self, e: sqlite3.DatabaseError) -> PetriError:
        """A SQLite error as petri says it: the file is damaged, the disk is full, or the place is read-only."""
        text = str(e)
        if "full" in text:
            return PlaceError(f"{self.path}: the disk is full ({text}); every epoch committed so far is kept: free "
                              f"some space (at least {max(64, self.path.stat().st_size >> 20)} MB) and run again")
        if "readonly" in text or "read-only" in text:
            return PlaceError(f"{self.path}: read-only ({text}); `petri show`, `report --to` and `export --to` read it "
                              "from here, a run needs a writable study directory")
        return PlaceError(f"{self.path}: the ledger is damaged ({text}); `sqlite3 {self.path} 'PRAGMA integrity_check'` "
                          "says where, `.recover` saves what can be saved; petri never overwrites it")

    # --- study identity -----------------------------------------------------------------
    def study_name(self) -> str | None:
        row = self.query("SELECT value FROM meta WHERE key='study'")
        row = tuple(row[0].values()) if row else None
        return row[0] if row else None

    def claim(self, name: str) -> None:
        """Bind this ledger to a study name; a different study is refused, never mixed."""
        existing = self.study_name()
        if existing is not None and existing != name:
            raise StoreError(f"{self.path}: this ledger belongs to study {existing!r}, not {name!r}; "
                             "use another --out directory")
        if existing is None:
            self._tx(lambda db: db.execute("INSERT OR REPLACE INTO meta VALUES ('study', ?)", (name,)))

    def note(self, key: str, value) -> None:
        """Keep a fact about the study (JSON) in ``meta``, e.g. why and when an adaptive study stopped."""
        self._tx(lambda db: db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value))))

    def noted(self, key: str):
        row = self.query("SELECT value FROM meta WHERE key=?", (key,))
        return json.loads(row[0]["value"]) if row else None

    # --- runs and cells -----------------------------------------------------------------
    def start_run(self, facts: dict, study_text: str, profile: str | None = None, data_override: str | None = None,
                  study_path: str | None = None, seeds: list[int] | None = None, frozen: dict | None = None) -> int:
        def go(db):
            cur = db.execute(
                "INSERT INTO runs (started, status, petri_version, git_commit, torch_version, device, host,"
                " executor, study_text, profile, data_override, study_path, seeds, frozen)"
                " VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (time.time(), facts.get("petri_version"), facts.get("git_commit"), facts.get("torch_version"),
                 facts.get("device"), facts.get("host"), facts.get("executor"), study_text, profile, data_override,
                 study_path, None if seeds is None else json.dumps(seeds), None if frozen is None else json.dumps(frozen)))
            return cur.lastrowid
        return self._tx(go)

    def finish_run(self, run_id: int, status: str) -> None:
        self._tx(lambda db: db.execute("UPDATE runs SET finished=?, status=? WHERE id=?", (time.time(), status, run_id)))

    def register(self, cells) -> None:
        """Insert cells not yet known (status pending); known cells keep their state. Each cell's place
        (variant, point, seed) is kept with its seed per random source (as the study last ran)."""
        def go(db):
            db.executemany("INSERT OR IGNORE INTO cells (hash, variant, point, seed, config) VALUES (?, ?, ?, ?, ?)",
                           [(c.hash, c.variant, json.dumps(dict(c.point)), c.seed, c.config) for c in cells])
            db.executemany("INSERT OR REPLACE INTO places VALUES (?, ?, ?, ?, ?)",
                           [(c.variant, json.dumps(dict(c.point)), c.seed, c.hash, json.dumps(seeds_json(c)))
                            for c in cells])
        self._tx(go)

    def statuses(self) -> dict[str, str]:
        return {r["hash"]: r["status"] for r in self.query("SELECT hash, status FROM cells")}

    def start_cells(self, hashes: list[str], run_id: int, start: int = 0) -> None:
        """Mark cells running; epochs after ``start`` (the checkpoint they resume from) are dropped."""
        def go(db):
            now = time.time()
            db.executemany("DELETE FROM epochs WHERE cell_hash=? AND epoch > ?", [(h, start) for h in hashes])
            db.executemany("UPDATE cells SET status='running', started=?, finished=NULL, seconds=NULL,"
                           " run_id=?, error=NULL WHERE hash=?", [(now, run_id, h) for h in hashes])
        self._tx(go)

    def record_epoch(self, rows: list[tuple[str, dict]], finished: list[tuple[str, str]],
                     finals: dict[str, dict] | None = None) -> None:
        """Epoch metrics of several cells plus the cells that finished with them (and their final
        metrics: calibration, per class, confusion, users'), in one transaction."""
        def go(db):
            db.executemany("INSERT OR REPLACE INTO finals VALUES (?, ?)",
                           [(h, json.dumps(m)) for h, m in (finals or {}).items()])
            db.executemany(
                f"INSERT OR REPLACE INTO epochs (cell_hash, epoch, {', '.join(EPOCH_FIELDS)}, metrics)"
                f" VALUES (?, ?, {', '.join('?' * len(EPOCH_FIELDS))}, ?)",
                [(h, m["epoch"], *(m.get(f) for f in EPOCH_FIELDS), _more(m)) for h, m in rows])
            now = time.time()
            db.executemany("UPDATE cells SET status=?, finished=?, seconds=? - started WHERE hash=?",
                           [(status, now, now, h) for h, status in finished])
        self._tx(go)

    def fail_cells(self, hashes: list[str], error: str) -> None:
        self._tx(lambda db: db.executemany("UPDATE cells SET status='failed', finished=?, error=? WHERE hash=?",
                                           [(time.time(), error[:2000], h) for h in hashes]))

    def interrupt_running(self) -> None:
        """Cells left 'running' by an interrupted run (Ctrl-C, SIGTERM) are marked 'interrupted' (a re-run
        resumes them from their checkpoints)."""
        self._tx(lambda db: db.execute("UPDATE cells SET status='interrupted', error=NULL WHERE status='running'"))

    # --- reading ------------------------------------------------------------------------
    def query(self, sql: str, args=()) -> list[dict]:
        try:
            cur = self.db.execute(sql, args)
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r)) for r in cur.fetchall()]
        except sqlite3.DatabaseError as e:
            raise self.trouble(e) from None

    def cells(self) -> list[dict]:
        """Cells with ``final``: their final metrics as JSON (None before they finish, or in older ledgers)."""
        if "finals" not in {r["name"] for r in self.query("SELECT name FROM sqlite_master WHERE type='table'")}:
            return [{**c, "final": None} for c in self.query("SELECT * FROM cells ORDER BY variant, point, seed")]
        return self.query("SELECT c.*, f.metrics AS final FROM cells c LEFT JOIN finals f ON f.cell_hash = c.hash"
                          " ORDER BY c.variant, c.point, c.seed")

    def epochs(self) -> list[dict]:
        return self.query("SELECT e.*, c.variant, c.point, c.seed FROM epochs e JOIN cells c ON c.hash = e.cell_hash"
                          " ORDER BY c.variant, c.point, c.seed, e.epoch")

    def places(self) -> dict[tuple[str, str, int, str], dict[str, int]]:
        """(variant, point as JSON, seed, cell hash) -> the place's seed per random source (``rest``: every
        source it does not name); empty for a ledger from before places were kept (schema < 3)."""
        if "places" not in {r["name"] for r in self.query("SELECT name FROM sqlite_master WHERE type='table'")}:
            return {}
        return {(r["variant"], r["point"], r["seed"], r["cell_hash"]): json.loads(r["sources"])
                for r in self.query("SELECT * FROM places")}


def seeds_json(cell) -> dict[str, int]:
    """A cell's seeds as the ledger keeps them: ``rest`` (the seed of every source not named) and each
    source a crossed study names."""
    s = cell.sources
    return {"rest": cell.seed} if s is None else {"rest": s.base, **dict(s.own)}
