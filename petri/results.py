"""``petri.Results``: a study's results as pandas DataFrames, from one read of its ledger per call
(``analysis/records.py``), the statistics of ``petri/analysis`` and the tables declared once in
``analysis/tables.py``. ``petri.analyse(table)`` gives the same object for runs made elsewhere."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from .analysis import tables as T
from .analysis.records import Snapshot, load
from .analysis.view import View, view
from .errors import SpecError


class Results:
    """A study's results: from ``petri.run(...)``, ``petri.open_study(DIR)`` (read from its ledger, a
    fresh snapshot on every call, safe while another process trains into it) or ``petri.analyse(table)``
    (runs made elsewhere).

    DataFrames: sweep axes are typed columns, one per axis, right after ``variant``,
    holding the value each row's cells used even where its variant does not sweep that axis; a study
    whose variants sweep different axes adds ``swept`` (the axes the row's variant sweeps) and, with
    several optimisers, ``optimizer``, as the last columns. Metric values and differences are in the
    metric's own units (fractions for accuracies: ×100 for % and pp); ``df.attrs["units"]`` says so.

    ``cells()`` {cells}
        and a column per recorded final metric (``ece``: expected calibration error over 15
        equal-width confidence bins; users' metrics; ``class_acc:<k>``: accuracy on class k).
    ``epochs()`` {epochs}
    ``effects()`` {effects}
    ``comparisons(detect=None)`` {comparisons}
    ``metrics()`` every recorded metric per (variant, point): ``variant``, the axes, ``metric``, ``n``,
        ``mean`` and ``ci95`` (the half-width of its 95 % interval under the design's model).
    ``noise()`` {noise}
    ``pairing()`` {pairing}
    ``compare(a, b)``: one comparison asked from Python; ``confusion(variant)``, ``adaptive()``,
    ``subsets(variant)``, ``load_model(...)``, ``save_weights(...)``, ``report()``, ``export(fmt)``: see each.
    """

    def __init__(self, directory: str | Path | None = None, snapshot: Snapshot | None = None):
        self.directory = Path(directory) if directory is not None else None
        self._fixed = snapshot
        self.trained = 0  # cells the run that returned these results trained

    def __repr__(self) -> str:
        return f"petri.Results({str(self.directory or self._fixed.source)!r})"

    def snapshot(self) -> Snapshot:
        """One read of the ledger (or the table of runs this was made from)."""
        return self._fixed if self._fixed is not None else load(self.directory)

    def view(self, analysis=None) -> View:
        """One snapshot with its findings and tables (what ``petri show`` and the report use)."""
        return view(self.snapshot(), analysis)

    @property
    def study(self):
        return self.snapshot().study

    def _units(self, df, v: View):
        unit = "fraction (×100: % for a value, pp for a difference)" if v.percent else v.context.metric
        df.attrs["units"] = {c: unit for c in df.columns if c == v.context.metric or c.startswith(
            (f"{v.context.metric}_ci95", "diff", "detectable_diff", "sd", "se"))}
        return df

    def cells(self):
        """One row per place of the study (see the class's documentation for the columns)."""
        v = self.view()
        return T.CELLS.frame(T.cell_records(v.snapshot.places, v.axes), v.context)

    def epochs(self):
        """One row per finished epoch of every place."""
        v = self.view()
        return T.EPOCHS.frame(T.epoch_records(v.snapshot.places, v.axes), v.context)

    def effects(self):
        """The report's per-(variant, point) numbers and each one's comparison with the reference (a study
        that declares its comparisons has none: see ``comparisons()``)."""
        v = self.view()
        return self._units(v.effects(), v)

    def comparisons(self, detect: float | None = None):
        """Every comparison of the study's family (see the class's documentation for the columns);
        ``detect``: the difference ``seeds_needed`` is for (metric units; default: the margin)."""
        v = self.view()
        return self._units(v.comparisons(detect), v)

    def compare(self, a: str, b: str, margin: float | None = None, detect: float | None = None,
                metric: str | None = None):
        """``a`` against ``b`` at every sweep point they share (with the sweep effects and interactions of
        a crossed design), as ``comparisons()`` gives, whether or not the study declared it. Asked after
        the fact, it is its own family: its intervals are adjusted for its own comparisons only (say so
        when you report them). ``margin`` in the metric's units (a fraction for accuracies; default: the
        study's margin); ``metric``: any the study could name in ``[analysis]`` (default: the study's)."""
        from .study.questions import Question
        from .train.metrics import check_metric

        snap = self.snapshot()
        for name in (a, b):
            if name not in snap.variants:
                raise SpecError(f"compare: {name!r} is not a variant; variants: {', '.join(snap.variants)}")
        metric = check_metric(metric, max(len(snap.classes), 2), "compare: metric") if metric else None
        an = snap.analysis
        margin = an.margin if margin is None else margin
        v = view(snap, replace(an, compare=[Question(a, b, margin)], margin=margin, metric=metric or an.metric))
        return self._units(v.comparisons(detect), v)

    def metrics(self):
        """Every recorded metric per (variant, point): mean and 95 % half-width under the design's model
        (one row per metric; fractions as fractions, like ``cells()``)."""
        return self.view().metrics()

    def noise(self):
        """A crossed study's spread (seeds = { init = 5, order = 5 }): one row per (variant, point) and
        part (each varied source, the residual, the test set's share) with the variance component (metric
        units squared), its generalized 95 % interval, its share of the total and the pooled SD with only
        that source reseeded; None for a study whose seeds are not crossed."""
        from .analysis.variance import noise, spread_records

        v = self.view()
        n = noise(v.findings)
        if n is None:
            return None
        records = [T.Record(r, {k: r.get(k) for k in v.context.axes}) for r in spread_records(n)]
        return T.NOISE.frame(records, v.context)

    def pairing(self):
        """A crossed study's pairing, source by source: for each two-sided comparison and shared source,
        the covariance component, the correlation of the two sides under it, and the variance of the
        paired difference it removes (2 cov; and as a share of var A + var B). None if not crossed."""
        from .analysis.variance import noise

        v = self.view()
        n = noise(v.findings)
        return None if n is None else T.PAIRING.frame(n.pairing, v.context)

    def confusion(self, variant: str, point: dict | None = None, seed: int | None = None, best: bool = False):
        """The confusion matrix of a variant (at ``point`` in a sweep: default its first), summed over its
        finished seeds (``seed``: that cell's alone, from its kept predictions; ``best``: at its best epoch):
        a DataFrame of image counts, rows the true class, columns the predicted one."""
        import json

        import numpy as np
        import pandas as pd

        if seed is not None or best:
            if seed is None:
                raise SpecError("confusion: best=True is one cell's: give its seed")
            pred = self.predictions(variant, seed, point, best)
            classes = self.snapshot().classes or sorted(set(pred["label"]) | set(pred["predicted"]))
            counts = pd.crosstab(pred["label"], pred["predicted"]).reindex(index=range(len(classes)),
                                                                          columns=range(len(classes)), fill_value=0)
            return pd.DataFrame(counts.to_numpy(), index=pd.Index(classes, name="true"),
                                columns=pd.Index(classes, name="predicted"))
        snap = self.snapshot()
        mine = [p for p in snap.places if p.variant == variant and p.final.get("confusion")]
        points = list(dict.fromkeys(json.dumps(p.point) for p in mine))
        if variant not in snap.variants or not points:
            raise SpecError(f"confusion: no finished cell of {variant!r} with a confusion matrix; variants: "
                            f"{', '.join(snap.variants)}")
        want = json.dumps(point) if point is not None else points[0]
        total = sum(np.array(p.final["confusion"]) for p in {p.hash: p for p in mine
                                                              if json.dumps(p.point) == want}.values())
        classes = snap.classes or [str(i) for i in range(len(total))]
        return pd.DataFrame(total, index=pd.Index(classes, name="true"), columns=pd.Index(classes, name="predicted"))

    def predictions(self, variant: str, seed: int, point: dict | None = None, best: bool = False,
                    split: str = "test"):
        """One cell's kept per-example predictions: a DataFrame with ``image`` (int64: the image's index in
        the data set's official split, ``subsets()``), ``label`` and ``predicted`` (int64 classes) and
        ``correct`` (bool), one row per image of its ``split`` ("test" or "val") at its final epoch (``best``:
        at the best epoch early stopping chose). A cell trained before petri kept predictions has none."""
        import pandas as pd

        if split not in ("test", "val"):
            raise SpecError(f"predictions: split {split!r}: allowed: test, val")
        snap = self.snapshot()
        mine = [p for p in snap.places if p.variant == variant and p.seed == seed and (point is None or p.point == point)]
        if not mine:
            raise SpecError(f"predictions: no place {variant!r}, seed {seed}" + (f" at {point}" if point else "") +
                            f"; variants: {', '.join(snap.variants)}")
        if len({json.dumps(p.point) for p in mine}) > 1:
            raise SpecError(f"predictions: {variant!r} is a sweep; give point= one of "
                            + "; ".join(json.dumps(p.point) for p in mine))
        got = mine[0].predictions()
        name = f"best.{split}" if best else split
        if not got or name not in got:
            why = ("it has not finished" if not mine[0].status.finished else
                   "no best epoch (early stopping chose none)" if best and got else
                   f"no {split} split" if got else "it was trained before petri kept predictions; "
                   "Results.refill_predictions() computes them from its kept weights")
            raise SpecError(f"predictions: {variant!r} seed {seed} has no {name} predictions: {why}")
        ids = self.subsets(variant, mine[0].point or None)[split] if self.directory is not None else None
        pred, label = got[name].astype("int64"), got[f"{split}.labels"].astype("int64")
        return pd.DataFrame({"image": ids if ids is not None and len(ids) == len(pred) else range(len(pred)),
                             "label": label, "predicted": pred, "correct": pred == label})

    def refill_predictions(self) -> dict[str, int]:
        """Compute the per-example predictions of cells trained before petri kept them, from their kept
        weights (the data set must be here), and write them into the study folder as a run would
        (marked as refilled). Returns counts: refilled, kept (had them), without weights."""
        from .study.refill import refill

        return refill(self._folder("refill_predictions"))

    def adaptive(self) -> dict | None:
        """An adaptive study's looks (seeds, undecided comparisons, widest interval, target met, and each
        comparison's family-wise interval and verdict: ``petri.report.looks``) and why and when it stopped;
        None for a study with a fixed number of seeds."""
        return self.snapshot().adaptive

    def _folder(self, what: str) -> Path:
        if self.directory is None:
            raise SpecError(f"{what}: these results were made from a table of runs, not a study folder; there is "
                            "nothing of it to read")
        return self.directory

    def subsets(self, variant: str, point: dict | None = None) -> dict:
        """The images a variant's cells used (at ``point`` in a sweep: default its first), as indices into
        the data set's official splits: {"train", "val", "test"} -> int64 arrays, ascending; the same for
        every seed. With ``load_model`` they let plain PyTorch reproduce the ledger's numbers."""
        from .data import get_spec
        from .train.splits import subset_ids

        self._folder("subsets")
        study = self.study
        mine = [c for c in study.cells if c.variant == variant and (point is None or dict(c.point) == point)]
        if not mine:
            raise SpecError(f"subsets: no cell of {variant!r}" + (f" at {point}" if point else "") +
                            f"; variants: {', '.join(study.variants)}")
        spec = get_spec(study.data)
        ids = subset_ids(spec.n_train, spec.n_test, mine[0].recipe, spec.name)
        return {k: t.numpy() for k, t in zip(("train", "val", "test"), ids)}

    def report(self, to: str | Path | None = None) -> Path:
        """Write DIR/report/ (or ``to``): index.html, report.md, figures, CSVs; returns index.html."""
        from .report.build import build_report

        if self.directory is None and to is None:
            raise SpecError("report: results made from a table of runs need a folder: report(to=FOLDER)")
        return build_report(self, to)

    def export(self, fmt: str = "csv", to: str | Path | None = None) -> list[Path]:
        """The ledger's cells and epochs as CSV, Parquet or JSON files (default: DIR/export); in CSV and
        Parquet each sweep axis is a typed column after ``variant``, as in ``cells()``."""
        from .report.export import export

        return export(self._folder("export"), fmt, to)

    def load_model(self, variant: str, seed: int, point: dict | None = None, best: bool = False):
        """A trained cell as a plain ``torch.nn.Module`` (eval mode): see ``petri.load_model``."""
        from .study.trained import load_model

        return load_model(self._folder("load_model"), variant, seed, point, best)

    def save_weights(self, variant: str, seed: int, to: str | Path, point: dict | None = None,
                     best: bool = False) -> Path:
        """Copy a trained cell's weights (a safetensors state_dict) to ``to``."""
        from .study.trained import export_weights

        return export_weights(self._folder("save_weights"), variant, seed, to, point, best)


Results.__doc__ = Results.__doc__.format(**{t.name: t.doc + ":\n" + t.documentation("        ") for t in (
    T.CELLS, T.EPOCHS, T.EFFECTS, T.COMPARISONS, T.NOISE, T.PAIRING)})
