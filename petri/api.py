"""petri from Python: the public API. Every CLI command is one of these calls.

    import petri
    study = petri.load_study({"name": "demo", "data": "mnist", "seeds": 3, "baseline": "plain",
                              "recipe": {"model": {"name": "mlp", "hidden": [32]}, "epochs": 2},
                              "variants": {"plain": {}, "inverted": {"treatments": ["invert"]}}})
    results = petri.run(study, "runs/demo")       # trains what is missing (resumes, like the CLI)
    results.effects()                             # a pandas DataFrame: Δ, CI, p, Holm, verdict
    results = petri.open_study("runs/demo")       # a study directory, finished or still running

DataFrames (columns in this order; sweep axes as typed columns, one per axis, named by the axis):

``cells()`` one row per place of the study (variant, point, seed): ``variant`` (category),
    the axes, ``seed`` (int64), ``status`` (category: pending, running, interrupted, done,
    stopped-early, diverged, failed), ``epochs`` (int64, epochs finished), ``train_loss``,
    ``train_acc``, ``val_loss``, ``val_acc``, ``test_loss``, ``test_acc`` (float64, the last
    finished epoch's; NaN before one), ``seconds`` (float64), ``hash`` (the cell's identity).
``epochs()`` one row per finished epoch of every place: ``variant``, the axes, ``seed``, ``epoch``
    (int64), the six metrics, ``images_per_s``, ``seconds``, ``pack_size`` (int64), ``hash``.
``effects()`` one row per (variant, point), the report's numbers: ``variant``, the axes, ``n``
    (seeds with a result), ``test_acc`` and ``test_acc_ci95`` (mean final test accuracy and the
    half-width of its 95 % t-interval, as fractions), ``diff``, ``diff_ci95_low``,
    ``diff_ci95_high`` (the paired difference from the reference, fractions), ``p_t``,
    ``p_wilcoxon``, ``p_holm``, ``detectable_diff`` (the smallest difference 80 % power detects),
    ``verdict`` (baseline, better, worse, no detectable difference, too few seeds, same cells as
    the reference), ``reference`` (what every Δ is against, in words).

Reading is safe while another process trains into the directory: each call reads one consistent
snapshot of the ledger (finished epochs only).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from .errors import SpecError
from .study.spec import Study

METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")


def load_study(source: str | Path | dict, data: str | None = None, profile: str | None = None) -> Study:
    """A study from a TOML file's path, a TOML string, or a dict (the same structure as the file).

    ``data`` runs it on another data set (a name, or your .npz / image folder); ``profile`` applies
    its ``[profiles.NAME]``."""
    from .study.spec import load_study as _load
    from .study.spec import parse_study

    if isinstance(source, dict):
        return parse_study(json.dumps(source), "<dict>", data, profile)
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and source.endswith(".toml")):
        return _load(source, data, profile)
    if isinstance(source, str):
        return parse_study(source, "<string>", data, profile)
    raise SpecError(f"load_study: a path, a TOML string or a dict (got {type(source).__name__})")


def run(study: Study | str | Path | dict, out: str | Path | None = None, executor: str = "local",
        address: str | None = None, max_members: int | None = None, report: bool = True) -> Results:
    """Train every unfinished cell of ``study`` into ``out`` (default ``runs/<name>``), resuming
    interrupted ones; then write the report (unless ``report=False``). Returns the results."""
    from rich.console import Console

    from .study.runner import run_study

    study = study if isinstance(study, Study) else load_study(study)
    if executor not in ("local", "ray"):
        raise SpecError(f"executor: {executor!r} is not an executor; allowed: local, ray")
    out = Path(out) if out is not None else Path("runs") / study.name
    # In a notebook no live display (it would need widgets) and no terminal codes: plain lines, as in a log.
    notebook = "ipykernel" in sys.modules
    console = Console(stderr=True, force_jupyter=False, force_terminal=False, color_system=None) if notebook \
        else Console(stderr=True)
    counts = run_study(study, out, executor=executor, address=address, max_members=max_members, console=console)
    results = Results(out)
    results.trained = counts.get("trained", 0)
    from .report.build import complete

    if report and (results.trained or not complete(out)):  # a report a killed run left unwritten is written now
        results.report()
    return results


def dry_run(study: Study | str | Path | dict, out: str | Path | None = None, max_members: int | None = None
            ) -> list[str]:
    """What ``run`` would do, in lines: cells, packs, memory, disk, a measured time estimate, and
    missing data files. Reads an existing ledger (to skip finished cells), never writes one."""
    from .data import get_spec, missing_message
    from .errors import StoreError
    from .study.ledger import Ledger
    from .study.runner import describe_plan, plan

    study = study if isinstance(study, Study) else load_study(study)
    out = Path(out) if out is not None else Path("runs") / study.name
    ledger = Ledger(out) if (out / "petri.sqlite").is_file() else None
    try:
        if ledger and ledger.study_name() not in (None, study.name):
            raise StoreError(f"{ledger.path}: this ledger belongs to study {ledger.study_name()!r}, not "
                             f"{study.name!r}; use another --out directory")
        lines = describe_plan(study, plan(study, ledger, max_members))
    finally:
        if ledger:
            ledger.close()
    missing = missing_message(get_spec(study.data))
    return lines + ([f"  data: {missing}"] if missing else [])


def open_study(directory: str | Path) -> Results:
    """The results in a study directory, finished or still being trained by another process."""
    from .study.ledger import Ledger

    Ledger(directory).close()  # one line if it is no ledger
    return Results(directory)


class Results:
    """A study directory's results, read from its ledger (a fresh snapshot on every call)."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.trained = 0  # cells the run that returned these results trained

    def _load(self):
        from .study.current import load_current

        return load_current(self.directory)

    @property
    def study(self) -> Study:
        return self._load()[0]

    def __repr__(self) -> str:
        return f"petri.Results({str(self.directory)!r})"

    def cells(self):
        """One row per place of the study (see the module's documentation for the columns)."""
        study, _, places, epochs = self._load()
        last: dict[str, dict] = {}
        count: dict[str, int] = {}
        for e in epochs:
            if e["place"] not in last or e["epoch"] > last[e["place"]]["epoch"]:
                last[e["place"]] = e
            count[e["place"]] = count.get(e["place"], 0) + 1
        rows = []
        for p in places:
            e = last.get(p["place"], {})
            rows.append({"variant": p["variant"], **json.loads(p["point"]), "seed": p["seed"], "status": p["status"],
                         "epochs": count.get(p["place"], 0), **{m: e.get(m) for m in METRICS},
                         "seconds": p["seconds"], "hash": p["hash"]})
        return _frame(rows, study, ["variant", "seed", "status", "epochs", *METRICS, "seconds", "hash"])

    def epochs(self):
        """One row per finished epoch of every place."""
        study, _, _, epochs = self._load()
        rows = [{"variant": e["variant"], **json.loads(e["point"]), "seed": e["seed"], "epoch": e["epoch"],
                 **{m: e[m] for m in METRICS}, "images_per_s": e["images_per_s"], "seconds": e["seconds"],
                 "pack_size": e["pack_size"], "hash": e["cell_hash"]} for e in epochs]
        return _frame(rows, study, ["variant", "seed", "epoch", *METRICS, "images_per_s", "seconds", "pack_size", "hash"])

    def effects(self):
        """The report's per-(variant, point) numbers and paired effects, one row each."""
        from .report.analysis import summarize

        study, _, places, epochs = self._load()
        rows = []
        for r in summarize(places, epochs, study.baseline, study.baseline_point):
            e = r.effect
            lo = hi = math.nan
            if e is not None and not math.isnan(e.half_width):
                lo, hi = e.mean - e.half_width, e.mean + e.half_width
            rows.append({"variant": r.variant, **r.point, "n": r.n, "test_acc": r.mean, "test_acc_ci95": r.half_width,
                         "diff": e.mean if e else math.nan, "diff_ci95_low": lo, "diff_ci95_high": hi,
                         "p_t": e.p_t if e else math.nan, "p_wilcoxon": e.p_wilcoxon if e else math.nan,
                         "p_holm": r.p_holm, "detectable_diff": e.min_detectable if e else math.nan,
                         "verdict": r.verdict, "reference": study.reference})
        cols = ["variant", "n", "test_acc", "test_acc_ci95", "diff", "diff_ci95_low", "diff_ci95_high", "p_t",
                "p_wilcoxon", "p_holm", "detectable_diff", "verdict", "reference"]
        return _frame(rows, study, cols)

    def report(self, to: str | Path | None = None) -> Path:
        """Write DIR/report/ (or ``to``): index.html, report.md, figures, CSVs; returns index.html."""
        from .report.build import build_report

        return build_report(self.directory, to)

    def export(self, fmt: str = "csv", to: str | Path | None = None) -> list[Path]:
        """The ledger's cells and epochs as CSV, Parquet or JSON files (default: DIR/export)."""
        from .report.export import export

        return export(self.directory, fmt, to)

    def load_model(self, variant: str, seed: int, point: dict | None = None, best: bool = False):
        """A trained cell as a plain ``torch.nn.Module`` (eval mode): see ``petri.load_model``."""
        from .study.trained import load_model

        return load_model(self.directory, variant, seed, point, best)

    def save_weights(self, variant: str, seed: int, to: str | Path, point: dict | None = None,
                     best: bool = False) -> Path:
        """Copy a trained cell's weights (a safetensors state_dict) to ``to``."""
        from .study.trained import export_weights

        return export_weights(self.directory, variant, seed, to, point, best)


def _frame(rows: list[dict[str, Any]], study: Study, columns: list[str]):
    """A DataFrame with the sweep axes as typed columns right after ``variant``."""
    import pandas as pd

    axes = list(dict.fromkeys(k for c in study.cells for k, _ in c.point))
    order = [columns[0], *axes, *[c for c in columns[1:] if c not in axes]]
    df = pd.DataFrame(rows, columns=order)
    for col in ("variant", "status", "verdict", "reference"):
        if col in df:
            df[col] = df[col].astype("category")
    for col in ("seed", "epoch", "epochs", "n", "pack_size"):
        if col in df:
            df[col] = df[col].astype("int64")
    for col in df.columns:
        if col in axes:
            values = [v for v in df[col] if v is not None]
            if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                df[col] = pd.to_numeric(df[col])
        elif col not in ("variant", "status", "verdict", "reference", "hash") and df[col].dtype == object:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    return df


def register_treatment(cls):
    """Register a ``petri.treatments.base.Treatment`` subclass (its ``name`` field a Literal with a
    default) so studies can name it; returns the class (usable as a decorator)."""
    from .treatments import TREATMENTS
    from .treatments.base import Treatment

    if not (isinstance(cls, type) and issubclass(cls, Treatment)):
        raise SpecError(f"register_treatment: {cls!r} is not a subclass of petri.treatments.base.Treatment")
    return TREATMENTS.register(cls)


def save_dataset(path: str | Path, x_train, y_train, x_test, y_test, classes=None) -> Path:
    """Write arrays as a petri data set (an .npz a study names with ``data = "path"``), checked as a
    study would check them; returns the path."""
    import numpy as np

    from .data import user

    path = Path(path)
    if path.suffix != ".npz":
        raise SpecError(f"save_dataset: {path}: the file name must end in .npz")
    arrays = {"x_train": np.asarray(x_train), "y_train": np.asarray(y_train), "x_test": np.asarray(x_test),
              "y_test": np.asarray(y_test)}
    if classes is not None:
        arrays["classes"] = np.asarray([str(c) for c in classes])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    user.spec_and_arrays(path)  # refuses bad arrays now, in one line, not at the first run
    return path
