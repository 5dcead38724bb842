"""The results side's read model: a study folder (or a table of runs made elsewhere) read once into typed
records that every table, figure and verdict is computed from.

A ``Snapshot`` is one consistent state of the ledger (one SQLite read transaction: runs, cells, their
final metrics, every epoch, the adaptive looks), the study as last run, and its *places*: a place is a
(variant, sweep point, seed) of the study. One trained cell may fill several places (a grid point equal
to the baseline has the baseline's hash): it is trained once and shown in each. ``petri show``, the
report and ``petri.Results`` each load one snapshot per call, so their tables never disagree while a
run is writing.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StoreError
from ..train.metrics import metric_value


class Status(str, Enum):
    """A place's state. ``diverged`` is an outcome of the recipe (its loss blew up), not missing data."""

    PENDING = "pending"
    RUNNING = "running"
    INTERRUPTED = "interrupted"  # killed, or stopped by Ctrl-C / SIGTERM: a re-run resumes it
    DONE = "done"
    STOPPED_EARLY = "stopped-early"
    DIVERGED = "diverged"
    FAILED = "failed"  # an error of the run (not of the recipe): see the cell's error

    def __str__(self) -> str:
        return self.value

    @property
    def finished(self) -> bool:
        """Trained to its end (or its early stop): it has final numbers."""
        return self in (Status.DONE, Status.STOPPED_EARLY)


_EPOCH_KNOWN = {"cell_hash", "epoch", "lr", "images_per_s", "seconds", "pack_size", "machine", "variant", "point",
                "seed", "metrics"}
EPOCH_COLUMNS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "train_eval_loss",
                 "train_eval_acc")  # the metrics of an epoch row, in the order tables show them


@dataclass(frozen=True)
class Epoch:
    """One finished epoch of one cell (the ledger's epoch row)."""

    hash: str
    epoch: int
    metrics: dict[str, float | None]  # EPOCH_COLUMNS and train.metrics.EPOCH_METRICS
    lr: float | None = None
    images_per_s: float | None = None
    seconds: float | None = None
    pack_size: int | None = None
    machine: str | None = None
    extra: dict = field(default_factory=dict)  # the ledger's other per-epoch columns (e.g. train_seconds)

    def __getitem__(self, name: str):  # epoch["test_acc"], as the figures read it
        return self.metrics.get(name) if name in EPOCH_COLUMNS or name in self.metrics else getattr(self, name)

    def get(self, name: str, default=None):
        try:
            v = self[name]
        except AttributeError:
            return default
        return default if v is None else v


@dataclass
class Place:
    """A (variant, point, seed) of the study and the cell that fills it."""

    variant: str
    point: dict
    seed: int  # the place number (a crossed study's combination)
    hash: str
    status: Status
    sources: dict[str, int] = field(default_factory=dict)  # a crossed study: each varied source's seed
    uses: frozenset = frozenset()  # the crossed sources its cell draws from (the others leave it unchanged)
    epochs: tuple[Epoch, ...] = ()  # its cell's finished epochs, in order
    final: dict = field(default_factory=dict)  # final metrics (ece, class_acc, confusion, users'), once finished
    config: dict = field(default_factory=dict)  # the cell's canonical config (recipe, treatments, data)
    values: dict[str, float] = field(default_factory=dict)  # a table's metric columns (runs made elsewhere)
    n_test: int | None = None  # test images behind its test accuracy
    seconds: float | None = None
    started: float | None = None
    finished: float | None = None
    run_id: int | None = None
    error: str | None = None
    folder: Path | None = None  # the study folder its cell's files are in (None: a table of runs)
    resample: tuple[int, int | None, bool] | None = None  # the test source: (its seed, size, with replacement)
    _predictions: dict | None = field(default=None, repr=False)

    def predictions(self) -> dict | None:
        """Its kept predicted classes and true labels (``study.cellstore``: "test", "test.labels", ...), as
        numpy arrays, read on first use; None for a cell that kept none."""
        if self._predictions is None and self.folder is not None and self.status.finished:
            from ..study.cellstore import load_predictions

            got = load_predictions(self.folder, self.hash)
            self._predictions = {} if got is None else {n: t.numpy() for n, t in got.items()}
        return self._predictions or None

    @property
    def key(self) -> tuple[str, str]:
        """(variant, point as JSON): what a comparison's terms name."""
        return self.variant, json.dumps(self.point)

    @property
    def label(self) -> str:
        return cell_label(self.variant, self.point)

    @property
    def last(self) -> Epoch | None:
        return self.epochs[-1] if self.epochs else None

    def value(self, metric: str) -> float | None:
        """The place's final value of ``metric`` (None before it has one)."""
        if metric in self.values:
            v = self.values[metric]
            return None if v is None or (isinstance(v, float) and math.isnan(v)) else v
        if not self.epochs:
            return None
        if self.resample is not None and metric == "test_acc":
            return self.resampled_accuracy()
        return metric_value(metric, self.last.metrics, self.final or None)

    def resampled_accuracy(self) -> float | None:
        """Its cell's test accuracy on the resample of the test set its test seed draws (``resample``): from
        the kept predictions, without retraining; None without them."""
        got = self.predictions()
        if not got or "test" not in got:
            return None
        from ..rng import derive_seed

        seed, size, replace = self.resample
        right = got["test"] == got["test.labels"]
        rng = np.random.default_rng(derive_seed(seed, "test"))
        idx = rng.integers(0, len(right), size or len(right)) if replace else rng.choice(len(right), size, replace=False)
        return float(right[idx].mean())

    @property
    def on_test(self) -> bool:
        """Its early stopping monitored a test metric: its numbers are chosen on test data."""
        es = self.config.get("recipe", {}).get("early_stopping") or {}
        return bool(es.get("on_test"))

    def chance(self) -> float | None:
        """The accuracy of the best constant guess on its test set (the largest class's share, from the
        confusion matrix; else 1 / classes); None when unknown."""
        confusion = self.final.get("confusion") if self.final else None
        if confusion:
            rows = [sum(r) for r in confusion]
            return max(rows) / sum(rows) if sum(rows) else None
        classes = self.final.get("classes") if self.final else None
        return 1 / classes if classes else None

    @property
    def at_chance(self) -> bool:
        """Finished, but its test accuracy is not above a constant guess by more than binomial noise
        (3 standard errors of an accuracy p0 on its n test images): a failure that reports as done."""
        p0, acc = self.chance(), self.value("test_acc")
        if not self.status.finished or p0 is None or acc is None or not self.n_test:
            return False
        return acc <= p0 + 3 * math.sqrt(p0 * (1 - p0) / self.n_test)

    @property
    def failed(self) -> bool:
        """An outcome that is a failure of the recipe: diverged, or finished at chance."""
        return self.status is Status.DIVERGED or self.at_chance


@dataclass
class Snapshot:
    """Everything the results side reads, once: the places, the runs, the study as last run."""

    name: str
    places: list[Place]
    baseline: str | None = None
    baseline_point: dict | str | None = None
    reference: str = ""
    analysis: Any = None  # study.questions.Analysis
    factors: list[str] = field(default_factory=list)  # a crossed study's varied sources (and 'rest')
    crossing: list[str] = field(default_factory=list)  # every source its seeds table names (varied or not)
    classes: list[str] = field(default_factory=list)
    runs: list[dict] = field(default_factory=list)
    adaptive: dict | None = None  # the looks of an adaptive study (ledger meta)
    outside: str | None = None  # a sentence on finished cells of earlier versions that are not shown
    warnings: list[str] = field(default_factory=list)
    study: Any = None  # study.spec.Study as last run (None for a table of runs made elsewhere)
    directory: Path | None = None
    source: str = "ledger"  # or the table's file name

    @property
    def variants(self) -> list[str]:
        return list(dict.fromkeys(p.variant for p in self.places))

    @property
    def axes(self) -> list[str]:
        return list(dict.fromkeys(k for p in self.places for k in p.point))

    def sweep_values(self) -> tuple[dict[tuple, dict], list[str]]:
        """Each (variant, point) key -> the value its cells used on every sweep axis, swept or not (a
        variant that does not sweep ``lr`` trained at its recipe's lr), and the trailing columns this adds
        where variants sweep different axes: ``swept`` (the axes a row's variant sweeps) and, with several
        optimisers, ``optimizer`` (their ``lr`` share a column)."""
        axes = self.axes
        out = {p.key: dict(p.point) for p in self.places}
        if self.study is None or not axes:
            return out, []
        from ..study.sweeps import value_at

        swept = {c.variant: [k for k, _ in c.point] for c in self.study.cells}
        if all(set(v) == set(axes) for v in swept.values()):
            return out, []
        optimizers = {c.recipe.optimizer.name for c in self.study.cells}
        first = {}
        for c in self.study.cells:
            first.setdefault((c.variant, json.dumps(dict(c.point))), c)
        for key, values in out.items():
            cell = first.get(key)
            if cell is None:
                continue
            mine = swept.get(key[0], [])
            for k in axes:
                if k not in mine:
                    values[k] = value_at(cell, self.study.axes[k])
            values["swept"] = ", ".join(mine)
            if len(optimizers) > 1:
                values["optimizer"] = cell.recipe.optimizer.name
        return out, ["swept", *(["optimizer"] if len(optimizers) > 1 else [])]

    def time_split(self, report_seconds: float | None = None):
        """Where the study's time went (``study.timing.TimeSplit``); None for a table of runs or a ledger from
        before epochs recorded their seconds."""
        from ..study.timing import split

        cells = {p.hash: p for p in self.places}.values()
        sums = [sum(e.extra.get(k) or 0.0 for p in cells for e in p.epochs) if any(
            e.extra.get(k) is not None for p in cells for e in p.epochs) else None
            for k in ("train_seconds", "eval_seconds", "checkpoint_seconds")]
        runs = [(r["started"], r["finished"] or max((p.finished or p.started or r["started"] for p in cells
                                                     if p.run_id == r["id"]), default=r["started"]))
                for r in self.runs]
        return split(tuple(sums), runs, report_seconds) if self.study is not None else None

    def levels(self) -> dict[int, dict[str, int]]:
        """Place number -> each crossed factor's seed."""
        return {p.seed: {f: p.sources[f] for f in self.factors} for p in self.places if p.sources}

    def uses(self) -> dict[tuple, frozenset]:
        """A (variant, point) key -> the crossed factors its cells draw from: those its recipe draws
        from, less any whose seeds left every finished cell bitwise the same (a one-bit perturbation an
        MLP's training does not feel: its places are the same cell seen again, not new draws)."""
        out: dict[tuple, frozenset] = {}
        mine: dict[tuple, list[Place]] = {}
        for p in self.places:
            out[p.key] = out.get(p.key, frozenset()) | p.uses
            mine.setdefault(p.key, []).append(p)
        return {k: frozenset(f for f in used if not _unfelt(mine[k], f, self.factors)) for k, used in out.items()}


def _unfelt(places: list[Place], source: str, factors: list[str]) -> bool:
    """Whether every finished cell is bitwise the same across ``source``'s seeds at each combination of
    the other factors (its final training and test loss, float32 from the ledger: two different
    trainings agree in both only by a coincidence of ~2⁻⁴⁸). Sources no training draws from never are."""
    from ..rng import EVALUATION

    if source in EVALUATION or not places or not all(p.sources and p.status.finished for p in places):
        return False
    others = [f for f in factors if f != source]
    seen: dict[tuple, tuple] = {}
    for p in places:
        sig = (p.value("train_loss"), p.value("test_loss"))
        if None in sig or seen.setdefault(tuple(p.sources[f] for f in others), sig) != sig:
            return False
    return len({p.sources[source] for p in places}) > 1


def point_label(point: dict) -> str:
    return ", ".join(f"{k}={_num(v)}" for k, v in point.items())


def cell_label(variant: str, point: dict) -> str:
    return variant + (f" ({point_label(point)})" if point else "")


def _num(v):
    """A sweep value as the study wrote it: 1, not 1.0 (a float axis that holds whole numbers)."""
    return int(v) if isinstance(v, float) and v.is_integer() and abs(v) < 1e15 else v


def load(directory: str | Path) -> Snapshot:
    """One snapshot of a study folder: the study as last run, its places and their cells' records."""
    from ..study.current import last_study
    from ..study.ledger import FINISHED, Ledger
    from ..study.lock import holder

    ledger = Ledger(directory)
    try:
        with ledger.snapshot():  # another process may be training into this directory
            runs = ledger.query("SELECT * FROM runs ORDER BY id")
            stored = {c["hash"]: c for c in ledger.cells()}
            epoch_rows = ledger.epochs()
            adaptive = ledger.noted("adaptive")
            seeds = ledger.places()
        study = last_study(ledger, runs[-1] if runs else None)
        if study is None:
            raise StoreError(f"{ledger.path}: the ledger holds no runs yet; nothing to show or report")
    except sqlite3.DatabaseError as e:
        raise ledger.trouble(e) from None
    finally:
        ledger.close()
    epochs: dict[str, list[Epoch]] = {}
    for e in epoch_rows:
        epochs.setdefault(e["cell_hash"], []).append(
            Epoch(e["cell_hash"], e["epoch"], {m: e.get(m) for m in EPOCH_COLUMNS} | json.loads(e.get("metrics") or "{}"),
                  e.get("lr"), e["images_per_s"],
                  e["seconds"], e["pack_size"], e.get("machine"),
                  {k: v for k, v in e.items() if k not in _EPOCH_KNOWN}))
    gone = holder(directory) is None  # nobody trains here now: cells still marked running were interrupted
    places = _places(study, stored, {h: tuple(es) for h, es in epochs.items()}, gone, Path(directory), seeds)
    mine = {p.hash for p in places}
    others = [c for c in stored.values() if c["status"] in FINISHED and c["hash"] not in mine]
    outside = None if not others else (
        f"{len(others)} finished cell{'s' if len(others) != 1 else ''} in this folder belong to an earlier version "
        f"of the study ({', '.join(sorted({c['variant'] for c in others}))}) and are not shown: they stay in the "
        "ledger (export has them).")
    from ..data import get_spec
    from ..study.crossing import varied

    return Snapshot(study.name, places, study.baseline, study.baseline_point, study.reference, study.analysis,
                    varied(study.crossing), list(study.crossing or {}), list(get_spec(study.data).classes), runs,
                    adaptive if study.adaptive else None, outside, list(study.warnings), study, Path(directory))


def _places(study, stored: dict[str, dict], epochs: dict[str, tuple], gone: bool, folder: Path,
            seeds: dict | None = None) -> list[Place]:
    """The study's places, each with its cell's ledger records (a cell not in the ledger is pending) and its
    seed per source as the ledger keeps it (``seeds``; re-derived from the study for a ledger from before).
    A cell marked running while no run holds the folder's lock (its process was killed), or stopped by
    Ctrl-C or SIGTERM, is interrupted."""
    from ..data import get_spec
    from ..study.crossing import factor_seed, varied

    factors = varied(study.crossing)
    crossing = list(study.crossing or {})
    size, replace = study.analysis.test_sample
    resampled = "test" in crossing  # each place scored on its own resample of the test set
    n_test = get_spec(study.data).n_test
    out, configs, cells = [], {}, {}
    for c in study.cells:
        row = stored.get(c.hash) or {"status": "pending"}
        status = Status(row["status"])
        if gone and status is Status.RUNNING or status is Status.FAILED and row.get("error") == "interrupted":
            status = Status.INTERRUPTED  # (older ledgers kept a polite stop as failed with the error 'interrupted')
        if c.hash not in configs:
            configs[c.hash] = json.loads(c.config)
        used = c.recipe.random_sources() | {"rest"} | ({"test"} if resampled else set())
        final = json.loads(row["final"]) if row.get("final") else {}
        kept = (seeds or {}).get((c.variant, json.dumps(dict(c.point)), c.seed, c.hash))
        seed = (lambda s, k=kept: k.get(s, k["rest"])) if kept else (lambda s, c=c: factor_seed(c.sources, s))
        out.append(Place(c.variant, dict(c.point), c.seed, c.hash, status, {s: seed(s) for s in crossing},
                         frozenset(s for s in factors if s in used), epochs.get(c.hash, ()), final, configs[c.hash],
                         n_test=c.recipe.test_size or n_test, seconds=row.get("seconds"), started=row.get("started"),
                         finished=row.get("finished"), run_id=row.get("run_id"), error=row.get("error"),
                         folder=folder, resample=(seed("test"), size, replace) if resampled else None))
        first = cells.setdefault(c.hash, out[-1])  # places of one cell share its predictions (read once)
        if first is not out[-1]:
            out[-1].predictions = first.predictions
    return out
