"""`petri report DIR`: DIR/report/ with index.html (self-contained), report.md, figures and the tables as
CSVs — all from one view of the study (``analysis.view.View``: one read of its ledger)."""

from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path

from ..analysis import tables as T
from ..analysis.findings import Findings, sweep_axes
from ..analysis.records import cell_label, load
from ..analysis.variance import noise, spread_records
from ..analysis.view import view
from ..errors import PetriError, PlaceError
from . import figures, looks, pages, text
from .facts import facts as study_facts, networks, packs


def build_report(source, to: str | Path | None = None) -> Path:
    """Write DIR/report/ (or ``to``): index.html, report.md, figures, CSVs; returns index.html. ``source``: a
    study folder, or what has a ``view()`` and a ``directory`` (``petri.Results``). Written into a temporary
    folder that then takes the report's place: a report is whole or absent, never half written."""
    if isinstance(source, (str, Path)):  # a study folder
        directory, v = Path(source), view(load(source))
    else:
        directory, v = source.directory, source.view()
    final = Path(to) if to is not None else directory / "report"
    if final.exists() and not final.is_dir():
        raise PlaceError(f"{final}: is a file; the report is a folder: move the file, or write elsewhere with --to")
    out = final.parent / f".{final.name}.{os.getpid()}.tmp"
    try:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        index = _write(v, out)
        old = final.parent / f".{final.name}.{os.getpid()}.old"
        if final.exists():
            final.rename(old)
        out.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(out, ignore_errors=True)
        raise PlaceError(f"{final}: cannot write the report ({e.strerror}); write it elsewhere with --to") from None
    return final / index.name


def complete(directory: str | Path) -> bool:
    """Whether DIR/report/ holds a whole report (it is renamed into place only once written)."""
    return (Path(directory) / "report" / "index.html").is_file()


def _epoch_dicts(places) -> list[dict]:
    """Epoch rows as the figures read them: the metrics, lr and epoch, keyed by place."""
    return [{**e.metrics, "lr": e.lr, "epoch": e.epoch, "place": (p.key, p.seed)} for p in places for e in p.epochs]


def _write(v, out: Path) -> Path:
    began = time.perf_counter()
    snap, found = v.snapshot, v.findings
    figdir = out / "figures"
    rows = text.by_effect(found.rows)
    ref = found.reference
    figs: list[tuple[str, str, str, bytes]] = []  # (title, caption, file name, png)

    def add(fig, slug: str, title: str, caption: str) -> None:
        _, png = figures.save(fig, figdir, slug)
        figs.append((title, caption, slug, png))

    study = snap.study
    label_of = {(p.key, p.seed): p.label for p in snap.places}
    order = list(dict.fromkeys(label_of.values()))  # as the study lists them
    curve_labels = label_of
    if len(order) > 12:  # big sweeps: curves per variant (all points pooled) stay readable
        curve_labels = {(p.key, p.seed): p.variant for p in snap.places}
        order = list(dict.fromkeys(curve_labels.values()))
    noisy = study is not None and any(t.name == "label_noise" and t.acts_on("train") for c in study.cells
                                      for t in c.treatments)
    n_seeds = max((r.cells for r in rows), default=0)
    epochs = _epoch_dicts(snap.places)
    if epochs:
        add(figures.curves(epochs, curve_labels, order, noisy), "curves", "Learning curves",
            f"Mean over up to {n_seeds} seeds per line; band: 95 % t-interval over seeds, clipped to 0-100 %."
            + (" Train accuracy is measured against the training labels as the cell saw them: under label_noise, "
               "the noisy ones." if noisy else ""))
    a = found.analysis
    scale, unit = (100, "percentage points") if v.percent else (1, a.metric)
    what = f"final {a.metric.replace('_', ' ')}"
    level = (f"the verdict's interval (at the family's level α' = 0.05 / {found.m * a.looks}: Bonferroni over the "
             f"study's {found.m} comparison{'s' if found.m != 1 else ''}{' and its looks' if a.looks > 1 else ''})")
    colours = "Green: better (positive for an interaction), red: worse (negative), blue: equivalent (dashed: ±margin)."
    if ref is not None and any(r.effect for r in rows):
        add(figures.forest([(r.label, r.effect) for r in rows if r.effect is not None and r is not ref],
                           f"Δ {what} vs {ref.label} ({unit})", scale), "paired-differences", "Paired differences",
            f"Each variant's difference in {what} from {snap.reference}, paired by seed: mean and {level}; each dot is "
            f"one seed's own difference. {colours}")
    if found.declared:
        add(figures.forest([(c.label, c) for c in found.declared], f"Δ {what} ({unit})", scale), "comparisons",
            "Comparisons", f"Each comparison the study asks (and the simple effects and interactions of a crossed "
            f"design), paired by seed: mean and {level}; each dot is one seed's own difference. {colours}")
    looked = looks.figure(snap.adaptive, a.percent, a.metric) if snap.adaptive else None
    if looked is not None:
        add(looked, "adaptive-looks", "Intervals over the looks",
            f"Each comparison's {level} at each look of the adaptive study (dot: the mean difference; colour: its "
            "verdict then, as in the paired differences); zero and ±margin drawn; all panels on one scale. "
            + ("First panel: each interval's width over the looks against the target (dashed)." if
               study.adaptive.until == "width" else ""))
    spread = noise(found)
    if spread and any(s.parts for s in spread.spreads):
        add(figures.noise(spread.spreads, spread.factors, scale, "pp" if v.percent else a.metric),
            "noise-sources", "Where the spread between seeds comes from",
            f"Each panel: the variance of {what} between the places of one variant, split into each random source's "
            "component (crossed random effects; seeds as random factors) and the residual (interactions between "
            "sources and everything no source explains): each share a dot with its generalized 95 % interval (with "
            "few seeds per source these span most of 0-100 %). Below, on its own row: the share a test set of that "
            "size gives by itself, p(1 − p)/n (each run's errors independent; an arrow where it exceeds the whole).")
    for va, vb, axis in crossings(found):
        add(figures.interaction(rows, (va, vb), axis, a), f"interaction-{_slug(va)}-{_slug(vb)}",
            f"{va} and {vb} across {axis}",
            f"Mean final {a.metric} of each variant at each {axis}, with 95 % intervals over seeds, on one axis: lines "
            "that are not parallel show an interaction (its test is in the comparisons table).")
    train_final: dict[str, list[float]] = {}
    for p in snap.places:
        if p.last is not None:
            e = p.last
            train_final.setdefault(p.label, []).append(e["train_eval_acc"] if e["train_eval_acc"] is not None
                                                       else e["train_acc"])
    train_is = "eval mode, the first 2,000 training images" if all(
        p.last["train_eval_acc"] is not None for p in snap.places if p.last) else \
        "the running mean over the last epoch's batches, train mode (cells from before eval-mode train accuracy)"
    swept = {variant: sweep_axes(rows, variant) for variant in snap.variants}
    grids = [x for x, axes in swept.items() if len(axes) == 2]
    for variant in grids:
        axes = swept[variant]
        add(figures.heatmaps(rows, variant, tuple(axes), [r for r in rows if r.variant in grids], a.metric),
            f"heatmap-{_slug(variant)}", f"{variant}: sweep over {axes[0]} × {axes[1]}",
            f"Left: mean final {figures.metric_axis(a.metric)[0]} over n ≤ {n_seeds} seeds. Right: paired difference vs "
            f"{snap.reference} ({unit}); hatched cells are those without a better / worse verdict. "
            "Every grid of the study on the same colour scales.")
    lines = [(x, axes[0]) for x, axes in swept.items() if len(axes) == 1]
    if lines and epochs:
        others = ref is not None and not math.isnan(ref.mean) and any(x != ref.variant for x, _ in lines)
        acc = a.metric == "test_acc"
        add(figures.sweeps(rows, lines, train_final, ref, noisy, a.metric), "sweeps",
            "Sweeps" if len(lines) > 1 else f"{lines[0][0]}: sweep over {lines[0][1]}",
            (f"Final train accuracy ({train_is}) and test accuracy" if acc else what[0].upper() + what[1:])
            + f", mean ± 95 % t-interval over n ≤ {n_seeds} seeds" + (" (clipped to 0-100 %)" if v.percent else "")
            + (f"; dashed: the reference, {snap.reference}" if others else "")
            + (f"; every panel on one {'accuracy ' if acc else ''}scale." if len(lines) > 1 else "."))
    treated = [] if study is None else [v_ for v_ in study.variants if any(c.treatments for c in study.cells
                                                                            if c.variant == v_)]
    if treated:
        from .preview import preview

        try:  # the data set must be here to draw its images (a report is otherwise drawn from the ledger alone)
            fig = preview(study, [x for x in study.variants if x in treated or x == study.baseline], 8)
        except PetriError:
            fig = None
        if fig is not None:
            add(fig, "treated-images", "Treated images",
                "The first 8 training images (as epoch 1 trains on them) and test images of each treated variant and "
                "the baseline, after its treatments, as its first cell sees them; gray scale 0-1 (values beyond are "
                "clipped). `petri preview STUDY` draws these before training.")
    matrices, shown = _confusions(snap, found.rows)
    if matrices:
        add(figures.confusions(matrices, snap.classes), "confusion", "Confusion matrices",
            "Test images by true class (rows) and predicted class (columns) at each variant and sweep point, "
            "summed over its finished seeds: the count in each cell, the colour each row's share of its class (%)"
            + (f"; the first {len(matrices)} of {shown} variants and points (Results.confusion gives any)."
               if shown > len(matrices) else "."))
    pk = packs(snap) if study is not None else []
    if pk:
        add(figures.throughput(pk), "throughput", "Throughput",
            "Training images per second of each pack (all its members), excluding evaluation.")
    _write_csvs(out, v, spread)
    info = study_facts(snap)
    info["adaptive"] = text.adaptive_line(snap.adaptive)
    info["looks"] = text.looks_line(snap)
    info["outside"] = snap.outside
    info["noise"] = spread
    info["metrics"] = text.metrics_tables(v)
    split = snap.time_split(report_seconds=time.perf_counter() - began)  # (the report: up to here)
    info["time"] = split.line() + "." if split else None
    nets = networks(study) if study is not None else []
    (out / "report.md").write_text(pages.markdown(v, info, figs, nets))
    (out / "index.html").write_text(pages.page(v, info, figs, nets))
    return out / "index.html"


CONFUSIONS = 24  # (variant, point) matrices a report draws; Results.confusion gives any


def _confusions(snap, rows) -> tuple[dict, int]:
    """Each (variant, point)'s confusion matrix (its label -> numpy int64 [classes, classes]), summed over
    its finished seeds, in study order: the first CONFUSIONS of them, and how many there are."""
    import numpy as np

    sums: dict = {}
    for p in {(p.key, p.seed): p for p in snap.places if p.final.get("confusion")}.values():
        sums[p.key] = sums.get(p.key, 0) + np.array(p.final["confusion"])
    shown = [(cell_label(r.variant, r.point), sums[r.key]) for r in rows if r.key in sums]
    return dict(shown[:CONFUSIONS]), len(shown)


def _slug(s: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in s)


def crossings(found: Findings) -> list[tuple[str, str, str]]:
    """(A, B, axis) for each pair of variants compared across a one-axis sweep they share."""
    out = []
    for c in found.family:
        if c.kind == "interaction":
            a, b = c.a.split(") at ")[0].lstrip("(").split(" − ")
            axes = [r.point for r in found.rows if r.variant == a][0]
            if len(axes) == 1 and (a, b, next(iter(axes))) not in out:
                out.append((a, b, next(iter(axes))))
    return out


def _write_csvs(out: Path, v, spread) -> None:
    """The tables as CSV: the same columns as the DataFrames of ``petri.Results`` (one declaration each)."""
    out.mkdir(parents=True, exist_ok=True)
    v.effects().to_csv(out / "variants.csv", index=False)
    v.comparisons().to_csv(out / "comparisons.csv", index=False)
    v.metrics().to_csv(out / "metrics.csv", index=False)
    T.CELLS.frame(T.cell_records(v.snapshot.places, v.axes), v.context).to_csv(out / "cells.csv", index=False)
    if spread is not None:  # a crossed study: noise.csv and pairing.csv (Results.noise() / pairing())
        T.NOISE.frame([T.Record(r) for r in spread_records(spread)], v.context).to_csv(out / "noise.csv", index=False)
        T.PAIRING.frame(spread.pairing, v.context).to_csv(out / "pairing.csv", index=False)
