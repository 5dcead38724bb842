"""petri from Python: the public API. Every CLI command is one of these calls.

    import petri
    study = petri.load_study({"name": "demo", "data": "mnist", "seeds": 3, "baseline": "plain",
                              "recipe": {"model": {"name": "mlp", "hidden": [32]}, "epochs": 2},
                              "variants": {"plain": {}, "inverted": {"treatments": ["invert"]}}})
    results = petri.run(study, "runs/demo")       # trains what is missing (resumes, like the CLI)
    results.effects()                             # a pandas DataFrame: Δ, CI, p, Holm, verdict
    results = petri.open_study("runs/demo")       # a study directory, finished or still running

The DataFrames' columns are documented on ``Results`` (``help(petri.Results)``).

Reading is safe while another process trains into the directory: each call reads one consistent
snapshot of the ledger (finished epochs only).
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .errors import PetriError, PlaceError, SpecError
from .study.spec import Study, parse_study

if TYPE_CHECKING:
    from .models import ModelSpec

METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "train_eval_loss", "train_eval_acc")
SECONDS = ("train_seconds", "eval_seconds", "checkpoint_seconds")  # a cell's share of its pack's time (study.ledger)


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
        address: str | None = None, max_members: int | None = None, report: bool = True,
        checkpoint_minutes: float = 5.0, changed: bool = False) -> Results:
    """Train every unfinished cell of ``study`` into ``out`` (default ``runs/<name>``), resuming
    interrupted ones; then write the report (unless ``report=False``). Returns the results. Running
    cells are checkpointed at every epoch's end and, within an epoch longer than that, every
    ``checkpoint_minutes``. If a plugin or data file changed since the folder's finished cells ran, the
    run stops with one line unless ``changed=True`` (then the changed study's cells train beside them)."""
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
    kw = dict(executor=executor, address=address, max_members=max_members, console=console,
              checkpoint_minutes=checkpoint_minutes, changed=changed)
    trained = _adaptive(study, out, console, kw) if study.adaptive else run_study(study, out, **kw).get("trained", 0)
    results = Results(out)
    results.trained = trained
    from .report.build import complete

    if report and (results.trained or not complete(out)):  # a report a killed run left unwritten is written now
        results.report()
    return results


def _adaptive(study: Study, out: Path, console, kw: dict) -> int:
    """Seeds in rounds: train the round's seeds, look at every comparison, stop when the study's target
    is met or at its max. Each look and the reason for stopping are kept in the ledger (``meta``,
    key ``adaptive``); a killed study resumes where it was (the looks are recomputed from the ledger)."""
    import time

    from .report.analysis import findings
    from .report.family import DECIDED, target_met
    from .study.current import load_current
    from .study.ledger import Ledger
    from .study.runner import run_study

    rule, trained, looks = study.adaptive, 0, []
    for n in rule.rounds():
        now = parse_study(study.text, study.path, study.data_override, study.profile,
                          Path(study.path).parent if Path(study.path).is_file() else None, n)
        trained += run_study(now, out, **kw).get("trained", 0)
        current, _, places, epochs = load_current(out)
        f = findings(places, epochs, current.baseline, current.baseline_point, current.analysis)
        met = target_met(f.family, rule.until, rule.width)
        undecided = sum(1 for c in f.family if c.verdict not in DECIDED)
        widest = max((c.hi_fw - c.lo_fw for c in f.family if c.n >= 2), default=math.nan)
        looks.append({"seeds": n, "undecided": undecided, "widest": widest, "met": met})
        last = met or n == rule.max
        reason = (("target met: " + ("every comparison decided" if rule.until == "decided" else
                                     f"every interval narrower than {rule.width:g}")) if met else
                  f"max reached ({rule.max} seeds)") if last else None
        ledger = Ledger(out, create=True)
        try:
            ledger.note("adaptive", {"looks": looks, "stopped": reason, "at": time.time() if last else None,
                                     "rule": {"min": rule.min, "max": rule.max, "step": rule.step, "until": rule.until,
                                              "width": rule.width}})
        finally:
            ledger.close()
        console.print(f"{study.name}: look {len(looks)} of at most {rule.looks}, {n} seeds: {undecided} of "
                      f"{len(f.family)} comparisons undecided" + (f"; stopped: {reason}" if last else "; more seeds"),
                      markup=False, highlight=False, soft_wrap=True)
        if last:
            break
    return trained


def dry_run(study: Study | str | Path | dict, out: str | Path | None = None, max_members: int | None = None,
            changed: bool = False) -> list[str]:
    """What ``run`` would do, in lines: cells, packs, memory, disk, the time it will take on this machine
    (training, evaluation, checkpoints, start-up, report; an adaptive study's first round and most
    seeds), and missing data files. Where ``run`` would refuse (another study's ledger, a plugin or data
    file changed since the folder's cells ran, ``out`` a file) it raises the same error. Reads an
    existing ledger (to skip finished cells), never writes one."""
    from .data import get_spec, missing_message
    from .errors import StoreError
    from .study.ledger import Ledger
    from .study.lock import describe, holder
    from .study.runner import check_changes, describe_plan, plan

    study = study if isinstance(study, Study) else load_study(study)
    out = Path(out) if out is not None else Path("runs") / study.name
    if out.exists() and not out.is_dir():
        raise StoreError(f"--out {out}: is a file; a study directory is a folder (petri creates it)")
    ledger = Ledger(out) if (out / "petri.sqlite").is_file() else None
    try:
        if ledger and ledger.study_name() not in (None, study.name):
            raise StoreError(f"{ledger.path}: this ledger belongs to study {ledger.study_name()!r}, not "
                             f"{study.name!r}; use another --out directory")
        if ledger:
            check_changes(study, ledger, changed)
        first = plan(study, ledger, max_members)
        worst = None
        if study.adaptive:  # every round a run of its own, training the seeds it adds
            packs, seen, most = list(first.packs), {c.hash for c in study.cells}, study
            for n in study.adaptive.rounds()[1:]:
                most = parse_study(study.text, study.path, study.data_override, study.profile,
                                   Path(study.path).parent if Path(study.path).is_file() else None, n)
                packs += plan(most, ledger, max_members, exclude=seen).packs
                seen |= {c.hash for c in most.cells}
            worst = (most, packs)
        lines = describe_plan(study, first, out, worst)
    finally:
        if ledger:
            ledger.close()
    if (who := holder(out)) is not None:
        lines.append(f"  {describe(who)} is training in {out} now: `petri run` would stop at once (one run per folder)")
    missing = missing_message(get_spec(study.data))
    return lines + ([f"  data: {missing}"] if missing else [])


def open_study(directory: str | Path) -> Results:
    """The results in a study directory, finished or still being trained by another process."""
    from .study.ledger import Ledger

    Ledger(directory).close()  # one line if it is no ledger
    return Results(directory)


class Results:
    """A study directory's results, read from its ledger (a fresh snapshot on every call): from
    ``petri.run(...)`` or ``petri.open_study(DIR)``. Reading is safe while another process trains into
    the directory (each call reads one consistent snapshot, finished epochs only).

    DataFrames (columns in this order; sweep axes as typed columns, one per axis, named by the axis,
    holding the value each row's cells used even where its variant does not sweep that axis; a study
    whose variants sweep different axes adds ``swept`` (the axes the row's variant sweeps) and, with
    several optimisers, ``optimizer``, as the last columns):

    ``cells()`` one row per place of the study (variant, point, seed): ``variant`` (category),
        the axes, ``seed`` (int64; a crossed study's place number, with ``seed_<source>`` (int64) each random
        source's seed: ``seeds = { init = 5, order = 5 }``), ``status`` (category: pending, running, interrupted, done,
        stopped-early, diverged, failed), ``epochs`` (int64, epochs finished), ``train_loss``,
        ``train_acc`` (running means over the epoch's batches, train mode), ``val_loss``, ``val_acc``,
        ``test_loss``, ``test_acc``, ``train_eval_loss``, ``train_eval_acc`` (the first 2,000 training
        images evaluated as the test set is: eval mode, no augmentation, true labels), ``gap``
        (train_eval_acc − test_acc: the generalisation gap) (float64, the last finished epoch's; NaN
        before one), ``ece`` (expected calibration error on the test set, once finished), ``seconds``
        (float64), ``hash`` (the cell's identity). ``confusion(variant)``: a confusion matrix.
    ``epochs()`` one row per finished epoch of every place: ``variant``, the axes, ``seed``, ``epoch``
        (int64), the metrics (the test split's and ``train_eval_*`` NaN in an epoch ``recipe.eval_every`` left
        out), ``learning_rate`` (of the epoch's last step: the member's rate times its schedule's factor;
        NaN for ledgers from before), ``images_per_s``, ``seconds`` (the pack's, from the epoch's start to
        the end of its evaluation), ``train_seconds``, ``eval_seconds``, ``checkpoint_seconds`` (the cell's
        share of its pack's wall time training, evaluating and saving states: a study's rows sum to its
        packs' time, ``petri.study.timing``; NaN for ledgers from before), ``pack_size`` (int64), ``machine``
        (category: what computed the epoch, see ``petri.machine``; empty for ledgers from before), ``hash``.
    ``effects()`` one row per (variant, point), the report's numbers: ``variant``, the axes, ``n``
        (seeds with a result), ``test_acc`` and ``test_acc_ci95`` (mean final test accuracy and the
        half-width of its 95 % t-interval, as fractions; named after the study's ``[analysis] metric``),
        ``diff`` (the paired difference from the reference, fractions), ``diff_fw_low``,
        ``diff_fw_high`` (its family-wise interval: the one the verdict reads), ``diff_ci95_low``,
        ``diff_ci95_high`` (unadjusted), ``p_t`` (unadjusted), ``p_wilcoxon``, ``p_holm``,
        ``p_bonferroni`` (the verdict's), ``p_better``, ``p_better_low``, ``p_better_high`` (the share of
        seeds on which the row beats the reference, with a bootstrap interval), ``detectable_diff`` (the
        smallest difference 80 % power detects at the family's level), ``verdict`` (baseline, better,
        worse, equivalent, inconclusive, no detectable difference, too few seeds, same cells as the
        reference), ``reference`` (what every Δ is against, in words).
    ``comparisons()`` every comparison of the study's family (see its docstring); ``compare(a, b)`` one
        asked from Python.

    ``noise()`` and ``pairing()``: a crossed study's variance per random source and what pairing on
    each source gains (their docstrings). ``adaptive()``, ``subsets(variant)``, ``load_model(...)``,
    ``save_weights(...)``, ``report()``, ``export(fmt)``: see each.
    """

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
        from .train.metrics import metric_value

        study, _, places, epochs = self._load()
        last: dict[str, dict] = {}
        count: dict[str, int] = {}
        for e in epochs:
            if e["place"] not in last or e["epoch"] > last[e["place"]]["epoch"]:
                last[e["place"]] = e
            count[e["place"]] = count.get(e["place"], 0) + 1
        rows = []
        sources = [f"seed_{s}" for s in study.crossing or {}]  # a crossed study: each source's seed
        for p in places:
            e = last.get(p["place"], {})
            final = json.loads(p["final"]) if p.get("final") else {}
            gap = metric_value("gap", e, None)
            rows.append({"variant": p["variant"], **json.loads(p["point"]), "seed": p["seed"],
                         **{f"seed_{s}": v for s, v in p.get("sources", {}).items()}, "status": p["status"],
                         "epochs": count.get(p["place"], 0), **{m: e.get(m) for m in METRICS}, "gap": gap,
                         "ece": final.get("ece"), "seconds": p["seconds"], "hash": p["hash"]})
        return _frame(rows, study, ["variant", "seed", *sources, "status", "epochs", *METRICS, "gap", "ece", "seconds",
                                    "hash"])

    def subsets(self, variant: str, point: dict | None = None) -> dict:
        """The images a variant's cells used (at ``point`` in a sweep: default its first), as indices into
        the data set's official splits: {"train", "val", "test"} -> int64 arrays, ascending; the same for
        every seed. With ``load_model`` they let plain PyTorch reproduce the ledger's numbers."""
        from .data import get_spec
        from .train.splits import subset_ids

        study = self.study
        mine = [c for c in study.cells if c.variant == variant and (point is None or dict(c.point) == point)]
        if not mine:
            raise SpecError(f"subsets: no cell of {variant!r}" + (f" at {point}" if point else "") +
                            f"; variants: {', '.join(study.variants)}")
        spec = get_spec(study.data)
        ids = subset_ids(spec.n_train, spec.n_test, mine[0].recipe, spec.name)
        return {k: t.numpy() for k, t in zip(("train", "val", "test"), ids)}

    def confusion(self, variant: str, point: dict | None = None):
        """The confusion matrix of a variant (at ``point`` in a sweep: default its first), summed over its
        finished seeds: a DataFrame of image counts, rows the true class, columns the predicted one."""
        import pandas as pd

        from .data import get_spec

        study, _, places, _ = self._load()
        mine = [p for p in places if p["variant"] == variant and p.get("final")]
        points = list(dict.fromkeys(p["point"] for p in mine))
        if variant not in study.variants or not points:
            raise SpecError(f"confusion: no finished cell of {variant!r} with a confusion matrix; variants: "
                            f"{', '.join(study.variants)}")
        want = json.dumps(point) if point is not None else points[0]
        total = sum(np.array(json.loads(p["final"])["confusion"]) for p in {p["hash"]: p for p in mine
                                                                           if p["point"] == want}.values())
        classes = get_spec(study.data).classes
        return pd.DataFrame(total, index=pd.Index(classes, name="true"), columns=pd.Index(classes, name="predicted"))

    def epochs(self):
        """One row per finished epoch of every place."""
        study, _, _, epochs = self._load()
        rows = [{"variant": e["variant"], **json.loads(e["point"]), "seed": e["seed"], "epoch": e["epoch"],
                 **{m: e[m] for m in METRICS}, "learning_rate": e.get("lr"), "images_per_s": e["images_per_s"],
                 "seconds": e["seconds"], **{s: e.get(s) for s in SECONDS}, "pack_size": e["pack_size"],
                 "machine": e.get("machine"), "hash": e["cell_hash"]} for e in epochs]
        return _frame(rows, study, ["variant", "seed", "epoch", *METRICS, "learning_rate", "images_per_s", "seconds",
                                    *SECONDS, "pack_size", "machine", "hash"])

    def _findings(self, extra=None):
        from .report.analysis import findings

        study, _, places, epochs = self._load()
        analysis = study.analysis if extra is None else extra(study.analysis)
        return study, findings(places, epochs, study.baseline, study.baseline_point, analysis)

    def effects(self):
        """The report's per-(variant, point) numbers and each one's comparison with the reference."""
        return self._effects(*self._findings())

    def _effects(self, study, f):
        """``effects()`` from findings already computed (``petri show`` prints both)."""
        metric, rows = f.analysis.metric, []
        for r in f.rows:
            rows.append({"variant": r.variant, **r.point, "n": r.n, metric: r.mean, f"{metric}_ci95": r.half_width,
                         **_comparison_columns(r.effect, f.m), "verdict": r.verdict, "reference": study.reference})
        cols = ["variant", "n", metric, f"{metric}_ci95", *COMPARISON_COLUMNS, "verdict", "reference"]
        return _units(_frame(rows, study, cols), f.analysis)

    def noise(self):
        """A crossed study's spread (seeds = { init = 5, order = 5 }): one row per (variant, point) and
        part (each varied source, the residual, the test set's binomial variance) with the variance
        component (metric units squared), its generalized 95 % interval, its share of the total and the
        pooled SD with only that source reseeded; None for a study whose seeds are not crossed."""
        from .report.variance import noise, spread_records

        study, f = self._findings()
        n = noise(study, f)
        return None if n is None else _frame(spread_records(n), study, NOISE_COLUMNS)

    def pairing(self):
        """A crossed study's pairing, source by source: for each two-sided comparison and shared source,
        the covariance component, the correlation of the two sides under it, and the variance of the
        paired difference it removes (2 cov; and as a share of var A + var B). None if not crossed."""
        import pandas as pd

        from .report.variance import noise, pairing_records

        n = noise(*self._findings())
        return None if n is None else pd.DataFrame(pairing_records(n), columns=[
            "comparison", "source", "covariance", "correlation", "removed", "removed_share"])

    def adaptive(self) -> dict | None:
        """An adaptive study's looks (seeds, undecided comparisons, widest interval, target met) and why
        and when it stopped; None for a study with a fixed number of seeds."""
        from .study.ledger import Ledger

        ledger = Ledger(self.directory)
        try:
            return ledger.noted("adaptive") if self.study.adaptive else None
        finally:
            ledger.close()

    def comparisons(self, detect: float | None = None):
        """Every comparison of the study's family, one row each: ``a``, ``b`` (the two sides), ``kind``
        (vs reference, simple effect, interaction), ``at`` (where), ``n``, ``diff``, its family-wise interval
        (``diff_fw_low``, ``diff_fw_high``: the verdict's) and unadjusted one (``diff_ci95_*``), ``p_t``,
        ``p_holm``, ``p_bonferroni`` (the verdict's), ``p_wilcoxon``, ``p_better`` (share of seeds on which
        a beats b) with its bootstrap interval, ``sd`` (of the paired differences), ``rho`` (correlation of
        the paired sides) and ``pairing_gain`` (1 / (1 - rho): the seeds an unpaired design would need,
        as a multiple), ``detectable_diff`` (80 % power at the family's level), ``seeds_needed`` (to
        detect ``detect``, in the metric's units: a fraction for accuracies; default: the margin), and
        ``verdict``. Differences are in the metric's own units (fractions for accuracies)."""
        study, f = self._findings()
        return _units(_comparison_frame(f.family, f.m, detect, f.analysis), f.analysis)

    def compare(self, a: str, b: str, margin: float | None = None, detect: float | None = None,
                metric: str | None = None):
        """``a`` against ``b`` at every sweep point they share (with the sweep effects and interactions of
        a crossed design), as ``comparisons()`` gives, whether or not the study declared it. Asked after
        the fact, it is its own family: its intervals are adjusted for its own comparisons only (say so
        when you report them). ``margin`` in the metric's units (a fraction for accuracies); ``metric``:
        any the study could name in ``[analysis]`` (default: the study's)."""
        from dataclasses import replace

        from .study.questions import Question

        study = self.study
        for name in (a, b):
            if name not in study.variants:
                raise SpecError(f"compare: {name!r} is not a variant; variants: {', '.join(study.variants)}")
        from .data import get_spec
        from .train.metrics import check_metric

        metric = check_metric(metric, len(get_spec(study.data).classes), "compare: metric") if metric else None
        _, f = self._findings(lambda an: replace(an, compare=[Question(a, b, margin)], margin=margin,
                                                 metric=metric or an.metric))
        return _comparison_frame(f.family, f.m, detect, f.analysis)

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


COMPARISON_COLUMNS = ["diff", "diff_fw_low", "diff_fw_high", "diff_ci95_low", "diff_ci95_high", "p_t", "p_wilcoxon",
                      "p_holm", "p_bonferroni", "p_better", "p_better_low", "p_better_high", "detectable_diff"]


def _comparison_columns(c, m: int) -> dict:
    nan = math.nan
    if c is None:
        return dict.fromkeys(COMPARISON_COLUMNS, nan)
    return {"diff": c.mean, "diff_fw_low": c.lo_fw, "diff_fw_high": c.hi_fw, "diff_ci95_low": c.lo,
            "diff_ci95_high": c.hi, "p_t": c.p, "p_wilcoxon": c.p_wilcoxon, "p_holm": c.p_holm, "p_bonferroni": c.p_fw,
            "p_better": c.p_better, "p_better_low": c.p_better_lo, "p_better_high": c.p_better_hi,
            "detectable_diff": c.detectable}


def _comparison_frame(family, m: int, detect: float | None, analysis):
    import pandas as pd

    from .report.family import pairing_gain

    delta = detect if detect is not None else None
    rows = []
    for c in family:
        d = delta if delta is not None else c.margin
        rows.append({"a": c.a, "b": c.b, "kind": c.kind, "at": c.at, "n": c.n, **_comparison_columns(c, m),
                     "sd": c.sd, "rho": c.rho, "pairing_gain": pairing_gain(c.rho),
                     "seeds_needed": c.seeds_needed(d, m) if d else math.nan, "margin": c.margin if c.margin else math.nan,
                     "verdict": c.verdict, "metric": analysis.metric, "family_size": m})
    df = pd.DataFrame(rows, columns=["a", "b", "kind", "at", "n", *COMPARISON_COLUMNS, "sd", "rho", "pairing_gain",
                                     "seeds_needed", "margin", "verdict", "metric", "family_size"])
    for col in ("kind", "verdict", "metric"):
        df[col] = df[col].astype("category")
    df["n"] = df["n"].astype("int64")
    return df


CATEGORIES = ("variant", "status", "verdict", "reference", "machine", "source", "swept", "optimizer")  # text columns kept as pandas categories


NOISE_COLUMNS = ["variant", "source", "variance", "low", "high", "share", "share_low", "share_high", "sd_alone", "n",
                 "mean", "sd_all", "total"]


def _units(df, analysis):
    """``df.attrs["units"]``: the unit of the metric's columns (the terminal and report print accuracies
    in % and differences in pp; a DataFrame holds fractions)."""
    unit = "fraction (×100: % for a value, pp for a difference)" if analysis.percent else analysis.metric
    df.attrs["units"] = {c: unit for c in df.columns if c == analysis.metric or c.startswith(
        (f"{analysis.metric}_ci95", "diff", "detectable_diff", "sd"))}
    return df


def _fill_axes(rows: list[dict], study: Study, axes: list[str]) -> list[str]:
    """A sweep column holds the value each row's cells used, swept or not (a variant that does not
    sweep ``lr`` trained at its recipe's lr); where variants sweep different axes, a last column
    ``swept`` names the axes the row's variant sweeps, and ``optimizer`` says which optimiser a row
    used when the study has several (their ``lr`` share a column). Returns the columns added."""
    from .study.spec import value_at

    by_place: dict[tuple, object] = {}
    for c in study.cells:
        by_place.setdefault((c.variant, tuple(v for _, v in c.point)), c)
    swept = {c.variant: [k for k, _ in c.point] for c in study.cells}
    optimizers = {c.recipe.optimizer.name for c in study.cells}
    if all(set(v) == set(axes) for v in swept.values()):
        return []  # every variant sweeps every axis: nothing to fill in
    for row in rows:
        mine = swept.get(row["variant"], [])
        cell = by_place.get((row["variant"], tuple(row.get(k) for k in mine)))
        if cell is None:
            continue
        for k in axes:
            if k not in mine:
                row[k] = value_at(cell, study.axes[k])
        row["swept"] = ", ".join(mine)
        if len(optimizers) > 1:
            row["optimizer"] = cell.recipe.optimizer.name
    return ["swept", *(["optimizer"] if len(optimizers) > 1 else [])]


def _frame(rows: list[dict[str, Any]], study: Study, columns: list[str]):
    """A DataFrame with the sweep axes as typed columns right after ``variant``."""
    import pandas as pd

    axes = list(dict.fromkeys(k for c in study.cells for k, _ in c.point))
    extra = _fill_axes(rows, study, axes) if axes and columns[0] == "variant" else []
    order = [columns[0], *axes, *[c for c in columns[1:] if c not in axes], *extra]
    df = pd.DataFrame(rows, columns=order)
    for col in CATEGORIES:
        if col in df:
            df[col] = df[col].astype("category")
    for col in ("seed", "epoch", "epochs", "n", "pack_size", *[c for c in df.columns if c.startswith("seed_")]):
        if col in df:
            df[col] = df[col].astype("int64")
    for col in df.columns:
        if col in axes:
            values = [v for v in df[col] if v is not None]
            if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                df[col] = pd.to_numeric(df[col])
        elif col not in (*CATEGORIES, "hash") and df[col].dtype == object:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    return df


@dataclass
class Trained:
    """One model trained by ``petri.fit``: its ``status`` (done, stopped-early, diverged), its
    ``epochs`` (a DataFrame: ``epoch`` and the metrics, as in ``Results.epochs()``) and ``model``, the
    trained network as a plain ``torch.nn.Module`` in eval mode (None if it diverged)."""

    status: str
    epochs: Any
    model: Any


def fit(recipe: dict, data: str = "mnist", seed: int = 0, on_epoch: Callable[[dict], None] | None = None) -> Trained:
    """Train one model from a recipe (a study's ``recipe`` table as a dict) on ``data``, without a
    study or a ledger: a quick look before writing a study. ``on_epoch`` gets each epoch's metrics."""
    import pandas as pd

    from .data import get_spec, load
    from .study.spec import recipe_from_dict
    from .train import Member, train_pack

    recipe = recipe_from_dict(recipe, "recipe")
    dspec = get_spec(data)
    recipe.model.check(dspec.shape, len(dspec.classes), "recipe.model")
    seen = 0

    def log(epoch, results):
        nonlocal seen
        for m in results[0].epochs[seen:]:
            if on_epoch is not None:
                on_epoch(dict(m))
        seen = len(results[0].epochs)

    result = train_pack(load(dspec), recipe, [Member(seed)], on_epoch=log, keep_state=True)[0]
    model = None
    if result.weights is not None:
        model = recipe.model.module(dspec.shape, len(dspec.classes))
        model.load_state_dict(result.weights, strict=True)
        model.eval()
    cols = ["epoch", *METRICS, "images_per_s", "seconds"]
    epochs = pd.DataFrame([{c: e.get(c) for c in cols} for e in result.epochs], columns=cols)
    return Trained(result.status, epochs.astype({"epoch": "int64"}), model)


def preview(study: Study | str | Path | dict, variants: list[str] | None = None, n: int = 8,
            to: str | Path | None = None):
    """What the study's treatments do: for each variant (default all), its first ``n`` training images as
    epoch 1 trains on them and its first ``n`` test images, treated as its first cell sees them. Returns
    the matplotlib Figure, or with ``to`` writes it there (PNG) and returns the path."""
    from .report.figures import save
    from .report.preview import preview as draw

    study = study if isinstance(study, Study) else load_study(study)
    unknown = [v for v in variants or [] if v not in study.variants]
    if unknown:
        raise SpecError(f"variant {unknown[0]!r} is not in {study.name}; variants: {', '.join(study.variants)}")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 64:
        raise SpecError(f"n: the images per row, 1..64 (got {n!r})")
    fig = draw(study, variants, n)
    if to is None:
        return fig
    to = Path(to)
    try:
        path, _ = save(fig, to.parent if str(to.parent) else Path("."), to.stem)
    except OSError as e:
        raise PlaceError(f"{to}: cannot write the preview ({e.strerror}); choose a writable place") from None
    return path


def summary(model: str | list | dict | ModelSpec, data: str = "mnist"):
    """A network's layers on a data set, like Keras' ``model.summary()``: a DataFrame with ``layer``
    (str; a residual block's body indented), ``depth`` (int64, nesting), ``output_shape`` (one member's,
    a tuple) and ``params`` (int64, per member). ``model``: a preset name or table, a layer list, or a
    registered module's name, as a study writes it."""
    import pandas as pd

    from .data import get_spec
    from .models import ModelSpec, parse_model

    spec = model if isinstance(model, ModelSpec) else parse_model(model, "model")
    try:
        dspec = get_spec(data)
    except PetriError as e:
        raise SpecError(f"data: {e}") from None
    spec.check(dspec.shape, len(dspec.classes), "model")
    rows = [{"layer": "  " * r.depth + r.label, "depth": r.depth, "output_shape": tuple(r.shape), "params": r.params}
            for r in spec.summary(dspec.shape, len(dspec.classes))]
    return pd.DataFrame(rows, columns=["layer", "depth", "output_shape", "params"]).astype(
        {"depth": "int64", "params": "int64"})


CATALOG_KINDS = ("model", "layer", "optimizer", "schedule", "treatment")


def catalog(name: str | None = None):
    """What a study can name. Without ``name``: every registered model (preset), layer, optimizer,
    learning-rate schedule and treatment as a DataFrame (``kind``, ``name``, ``parameters``, ``about``). With ``name``: its
    parameters (``kind``, ``parameter``, ``type``, ``default``, ``description``; ``default`` is
    "required" for a parameter without one)."""
    import pandas as pd

    from .specs import describe_fields

    registries = _registries()
    if name is None:
        rows = [{"kind": kind, "name": n,
                 "parameters": ", ".join(p if d == "required" else f"{p}={d}" for p, _, d, _ in describe_fields(cls)),
                 "about": getattr(cls, "about", "") or (cls.__doc__ or "").strip().split("\n")[0]}
                for kind, reg in registries.items() for n, cls in reg.items()]
        return pd.DataFrame(rows, columns=["kind", "name", "parameters", "about"])
    found = [(kind, reg[name]) for kind, reg in registries.items() if name in reg]
    if not found:
        raise SpecError(f"{name!r} is no {', '.join(CATALOG_KINDS[:-1])} or {CATALOG_KINDS[-1]}; known: "
                        + "; ".join(f"{k}s: {r.known()}" for k, r in registries.items()))
    rows = [{"kind": kind, "parameter": p, "type": t, "default": d, "description": text}
            for kind, cls in found for p, t, d, text in describe_fields(cls)]
    return pd.DataFrame(rows, columns=["kind", "parameter", "type", "default", "description"])


def _registries() -> dict:
    from .models import LAYERS, MODELS
    from .train.recipe import OPTIMIZERS, SCHEDULES
    from .treatments import TREATMENTS

    return dict(zip(CATALOG_KINDS, (MODELS, LAYERS, OPTIMIZERS, SCHEDULES, TREATMENTS)))


def datasets(root: str | Path | None = None):
    """The data sets a study can name, as a DataFrame: ``name``, ``channels``, ``height``, ``width``,
    ``classes``, ``train``, ``test`` (int64), ``variants`` (other label sets, e.g. ``cifar-100/coarse``),
    ``files`` (the folder holding them, NA if missing; looked for under ``root``, else PETRI_DATA, then
    the user cache; a named data set of your own: its file or folder) and ``citation``. The registered
    sets first, then your own named with ``register_dataset``."""
    import pandas as pd

    from .data import DATASETS, get_spec, locate
    from .data.registry import NAMED

    rows = []
    for spec in [*DATASETS.values(), *(get_spec(n) for n in NAMED)]:
        found = spec.source or locate(spec, root)
        c, h, w = spec.shape
        rows.append({"name": spec.name, "channels": c, "height": h, "width": w, "classes": len(spec.classes),
                     "train": spec.n_train, "test": spec.n_test,
                     "variants": ", ".join(f"{spec.name}/{v} ({len(cl)} classes)" for v, _, cl in spec.variants),
                     "files": None if not found else spec.source or str(found / spec.name),
                     "citation": spec.citation})
    cols = ["name", "channels", "height", "width", "classes", "train", "test", "variants", "files", "citation"]
    return pd.DataFrame(rows, columns=cols)


def register_dataset(name: str, source: str | Path) -> Path:
    """Name your own data set (an .npz file or an image folder, as a study's ``data = "path"`` takes)
    so that studies can write ``data = "name"``, like a registered set. It is read and checked now;
    cells are keyed by its content, so a named and a path reference give the same cells.
    Re-registering a name replaces it; the registered sets' names cannot be taken. In a study run from
    the command line, register it in a plugin (``plugins = ["mydata.py"]``). Returns the resolved path."""
    from .data import DATASETS, user
    from .data.registry import NAMED

    if not isinstance(name, str) or not name or any(ch in name for ch in "/\\") or name.endswith(".npz") \
            or not name.isprintable() or name != name.strip():
        raise SpecError(f"register_dataset: name {name!r}: a short name without slashes or spaces around it, "
                        "not ending in .npz (e.g. \"digits\")")
    if name in DATASETS:
        raise SpecError(f"register_dataset: {name!r} is a registered data set; choose another name")
    path = Path(source).expanduser().resolve()
    user.spec_and_arrays(path, name)  # a bad data set is refused now, in one line, not at the first run
    NAMED[name] = str(path)
    return path


def verify_dataset(name: str, root: str | Path | None = None) -> dict:
    """Check a data set's files (checksums, every file parsed, images per class), bypassing the cache.
    Returns ``name``, ``folder``, ``train``, ``test``, ``train_per_class``, ``test_per_class``."""
    from .data import verify

    return verify(name, root)


def fetch_dataset(name: str, root: str | Path | None = None) -> Path | None:
    """Download a registered data set's missing files (PETRI_MIRROR first if set) into ``root`` (default:
    the user cache), verify and cache them; returns the folder holding them (None for your own data)."""
    from .data import get_spec, load, locate

    spec = get_spec(name)
    load(spec, root)
    where = locate(spec, root) if spec.source is None else None
    return where / spec.name if where else None


def register_treatment(cls):
    """Register a ``petri.Treatment`` subclass (its ``name`` field a Literal with a default) so studies
    can name it; returns the class (usable as a decorator). The contract is in docs/treatments.md;
    the source of the plugin file (or of the class) becomes part of every cell that uses it, so an
    edited treatment trains new cells instead of reusing old ones."""
    from .models.plugin import _loading, _source_hash
    from .treatments import TREATMENTS
    from .treatments.base import Treatment

    if not (isinstance(cls, type) and issubclass(cls, Treatment)):
        raise SpecError(f"register_treatment: {cls!r} is not a subclass of petri.Treatment")
    if "name" not in cls.model_fields or cls.model_fields["name"].is_required():
        raise SpecError(f"register_treatment: {cls.__name__} needs a name field with a default, e.g. "
                        "name: Literal[\"brightness\"] = \"brightness\"")
    cls.code = _loading.get() or _source_hash(cls)
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
