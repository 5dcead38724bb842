"""`petri report DIR`: DIR/report/ with index.html (self-contained), report.md, figures, CSVs."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import html
import json
import math
import os
import shutil
import time
from pathlib import Path

from ..errors import PetriError, PlaceError
from ..study.current import load_current, outside_note
from ..study.timing import time_split
from ..train.metrics import metric_value
from . import figures
from .analysis import Findings, Row, adaptive_line, cell_label, findings, fmt_effect, fmt_p, looks_line, sweep_axes
from .family import pairing_gain
from .preview import preview
from .variance import RESIDUAL, Noise, noise, pairing_records, spread_records


def _pct(x, digits=2):
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}"


def build_report(directory: str | Path, to: str | Path | None = None) -> Path:
    """Write DIR/report/ (or ``to``): index.html, report.md, figures, CSVs, from the ledger; returns
    index.html. Written into a temporary folder that then takes the report's place: a report is whole
    or absent, never half written."""
    directory = Path(directory)
    study, runs, cells, epochs = load_current(directory)
    final = Path(to) if to is not None else directory / "report"
    if final.exists() and not final.is_dir():
        raise PlaceError(f"{final}: is a file; the report is a folder: move the file, or write elsewhere with --to")
    out = final.parent / f".{final.name}.{os.getpid()}.tmp"
    try:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        index = _write(directory, study, runs, cells, epochs, out)
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


def _write(directory: Path, study, runs, cells, epochs, out: Path) -> Path:
    began = time.perf_counter()
    figdir = out / "figures"
    found = findings(cells, epochs, study.baseline, study.baseline_point, study.analysis)
    rows = found.rows
    ref = next((r for r in rows if r.verdict == "baseline"), None)
    rows.sort(key=lambda r: (r.verdict != "baseline", -(r.effect.mean if r.effect and not math.isnan(r.effect.mean) else -9)))
    figs: list[tuple[str, str, str, bytes]] = []  # (title, caption, file name, png)

    def add(fig, slug: str, title: str, caption: str) -> None:
        _, png = figures.save(fig, figdir, slug)
        figs.append((title, caption, slug, png))

    label_of = {c["place"]: cell_label(c["variant"], json.loads(c["point"])) for c in cells}
    order = list(dict.fromkeys(label_of[c["place"]] for c in cells))  # as the study lists them
    curve_labels = label_of
    if len(order) > 12:  # big sweeps: curves per variant (all points pooled) stay readable
        curve_labels = {c["place"]: c["variant"] for c in cells}
        order = list(dict.fromkeys(curve_labels.values()))
    noisy = any(t.name == "label_noise" and t.acts_on("train") for c in study.cells for t in c.treatments)
    n_seeds = len(study.seeds)
    if epochs:
        add(figures.curves(epochs, curve_labels, order, noisy), "curves", "Learning curves",
            f"Mean over up to {n_seeds} seeds per line; band: 95 % t-interval over seeds, clipped to 0-100 %."
            + (" Train accuracy is measured against the training labels as the cell saw them: under label_noise, "
               "the noisy ones." if noisy else ""))
    a = found.analysis
    scale, unit = (100, "percentage points") if a.percent else (1, a.metric)
    what = f"final {a.metric.replace('_', ' ')}"
    level = f"family-wise {100 * found.level:.4g} % interval (Bonferroni over the study's {found.m} comparisons, the " \
            "interval the verdict reads)"
    colours = "Green: better (positive for an interaction), red: worse (negative), blue: equivalent (dashed: ±margin)."
    if ref is not None and any(r.effect for r in rows):
        add(figures.forest([(r.label, r.effect) for r in rows if r.effect is not None and r is not ref],
                           f"Δ {what} vs {ref.label} ({unit})", scale), "paired-differences", "Paired differences",
            f"Each variant's difference in {what} from {study.reference}, paired by seed: mean and {level}; each dot is "
            f"one seed's own difference. {colours}")
    if found.declared:
        add(figures.forest([(c.label, c) for c in found.declared],
                           f"Δ {what} ({unit})", scale), "comparisons", "Comparisons",
            f"Each comparison the study asks (and the simple effects and interactions of a crossed design), paired by "
            f"seed: mean and {level}; each dot is one seed's own difference. {colours}")
    spread = noise(study, found)
    if spread and any(s.parts for s in spread.spreads):
        add(figures.noise(spread.spreads, spread.factors, scale, "pp" if found.analysis.percent else a.metric),
            "noise-sources", "Where the spread between seeds comes from",
            f"Each bar: the variance of {what} between the places of one variant, split into each random source's "
            "component (crossed random effects; seeds as random factors) and the residual (interactions between "
            "sources and everything no source explains). Diamond: the variance a test set of that size gives by "
            "itself, p(1 − p)/n (each run's errors independent). Intervals are in the table.")
    for a, b, axis in crossings(found):
        add(figures.interaction(rows, (a, b), axis, found.analysis), f"interaction-{_slug(a)}-{_slug(b)}",
            f"{a} and {b} across {axis}",
            f"Mean final {found.analysis.metric} of each variant at each {axis}, with 95 % t-intervals over seeds, on "
            "one axis: lines that are not parallel show an interaction (its test is in the comparisons table).")
    train_final: dict[str, list[float]] = {}
    last = {}
    for e in epochs:
        if e["place"] not in last or e["epoch"] > last[e["place"]]["epoch"]:
            last[e["place"]] = e
    for h, e in last.items():
        train_final.setdefault(label_of[h], []).append(e["train_eval_acc"] if e.get("train_eval_acc") is not None
                                                       else e["train_acc"])
    train_is = "eval mode, the first 2,000 training images" if all(e.get("train_eval_acc") is not None
                                                                    for e in last.values()) else \
        "the running mean over the last epoch's batches, train mode (cells from before eval-mode train accuracy)"
    for variant in study.variants:
        axes = sweep_axes(rows, variant)
        if len(axes) == 2:
            add(figures.heatmaps(rows, variant, tuple(axes)), f"heatmap-{_slug(variant)}",
                f"{variant}: sweep over {axes[0]} × {axes[1]}",
                f"Left: mean final test accuracy over n ≤ {n_seeds} seeds. Right: paired difference vs "
                f"{study.reference} (percentage points); hatched cells are not significant after Holm correction.")
        elif len(axes) == 1:
            add(figures.sweep_line(rows, variant, axes[0], train_final, ref, noisy), f"sweep-{_slug(variant)}",
                f"{variant}: sweep over {axes[0]}",
                f"Final train accuracy ({train_is}) and test accuracy, mean ± 95 % t-interval over n ≤ {n_seeds} "
                f"seeds (clipped to 0-100 %)" + (f"; dashed: the reference, {study.reference}." if ref is not None
                                                 and ref.variant != variant and not math.isnan(ref.mean) else "."))
    treated = [v for v in study.variants if any(c.treatments for c in study.cells if c.variant == v)]
    if treated:
        try:  # the data set must be here to draw its images (a report is otherwise drawn from the ledger alone)
            fig = preview(study, [v for v in study.variants if v in treated or v == study.baseline], 8)
        except PetriError:
            fig = None
        if fig is not None:
            add(fig, "treated-images", "Treated images",
                "The first 8 training images (as epoch 1 trains on them) and test images of each treated variant and "
                "the baseline, after its treatments, as its first cell sees them; gray scale 0-1 (values beyond are "
                "clipped). `petri preview STUDY` draws these before training.")
    matrices = _confusions(cells, rows)
    if matrices:
        add(figures.confusions(matrices, _classes(study)), "confusion", "Confusion matrices",
            "Test images by true class (rows) and predicted class (columns), summed over each variant's finished "
            "seeds at its first point; each row normalised to 100 %.")
    packs = _packs(cells, epochs, runs)
    if packs:
        add(figures.throughput(packs), "throughput", "Throughput",
            "Training images per second of each pack (all its members), excluding evaluation.")

    _write_csvs(out, rows, cells, last, found, spread)
    from ..study.ledger import Ledger

    ledger = Ledger(directory)
    try:
        adaptive = adaptive_line(ledger.noted("adaptive")) if study.adaptive else None
    finally:
        ledger.close()
    facts = _facts(study, runs, cells, list({(e['cell_hash'], e['epoch']): e for e in epochs}.values()))
    nets = networks(study)
    facts["adaptive"] = adaptive
    facts["looks"] = looks_line(runs, study)
    facts["outside"] = outside_note(directory, study)
    facts["noise"] = spread
    split = time_split(directory, report_seconds=time.perf_counter() - began)  # (the report: up to here)
    facts["time"] = split.line() if split else None
    (out / "report.md").write_text(_markdown(study, found, facts, figs, nets))
    (out / "index.html").write_text(_html(study, found, facts, figs, nets))
    return out / "index.html"


def _confusions(cells, rows) -> dict:  # variant -> numpy int64 [classes, classes]
    """Each variant's confusion matrix at its first point, summed over its finished seeds (at most 12)."""
    import numpy as np

    first = {}
    for r in rows:
        first.setdefault(r.variant, json.dumps(r.point))
    out: dict = {}
    for c in {c["hash"]: c for c in cells if c.get("final")}.values():
        if c["point"] == first.get(c["variant"]) and len(out) <= 12:
            m = np.array(json.loads(c["final"])["confusion"])
            out[c["variant"]] = out.get(c["variant"], 0) + m
    return dict(list(out.items())[:12])


def _classes(study) -> list[str]:
    from ..data import get_spec

    return list(get_spec(study.data).classes)


def _slug(s: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in s)


def _packs(cells, epochs, runs):
    """(label, K, images/s) per pack; a label names the pack's model, variants and device, and its
    order, so two packs alike never share one."""
    device = {r["id"]: r["device"] for r in runs}
    model, variants = {}, {}
    for c in cells:
        model[c["hash"]] = json.loads(c["config"])["recipe"]["model"]["name"]
        variants.setdefault(c["hash"], set()).add(c["variant"])
    groups: dict[tuple, list[float]] = {}
    members: dict[tuple, set] = {}
    start = {c["hash"]: (c["started"], c["run_id"]) for c in cells}
    for e in {(e["cell_hash"], e["epoch"]): e for e in epochs}.values():  # a cell once, in however many places
        key = (*start[e["cell_hash"]], model[e["cell_hash"]], e["pack_size"])
        groups.setdefault(key, []).append(e["images_per_s"] * (e["pack_size"] or 1))
        members.setdefault(key, set()).update(variants[e["cell_hash"]])
    out = []
    for i, ((started, run_id, name, k), vals) in enumerate(sorted(groups.items(), key=lambda kv: (kv[0][0] or 0)), 1):
        vs = sorted(members[(started, run_id, name, k)])
        shown = ", ".join(vs[:3]) + (f" +{len(vs) - 3}" if len(vs) > 3 else "")
        out.append((f"#{i} {name} · {shown} · {device.get(run_id, '?')}", k or 1, sum(vals) / len(vals)))
    return out


def _data_label(study) -> str:
    """The data set by name, with what identifies it: the official files' or the user's content checksum."""
    from ..data import get_spec

    spec = get_spec(study.data)
    if spec.source:
        return f"{spec.name} ({spec.source}; content sha256 {spec.identity[0][:12]})"
    return f"{spec.key} (official files, MD5 {spec.identity[0][:8]}…)"


def _facts(study, runs, cells, epochs) -> dict:
    last = runs[-1]
    wall = sum((r["finished"] or r["started"]) - r["started"] for r in runs)
    status: dict[str, int] = {}
    for c in cells:
        status[c["status"]] = status.get(c["status"], 0) + 1
    missing = [c for c in cells if c["status"] not in ("done", "stopped-early", "diverged")]
    from ..machine import kinds, mixed_note

    return {"adaptive": None, "data": _data_label(study), "machines": list(kinds(epochs)), "mixed": mixed_note(epochs), "petri": last["petri_version"], "commit": (last["git_commit"] or "—")[:12], "torch": last["torch_version"],
            "device": last["device"], "host": last["host"], "executor": last["executor"],
            "runs": len(runs), "wall": f"{wall:,.0f} s", "cells": f"{len(cells)} of {len(study.cells)} in the study",
            "status": ", ".join(f"{v} {k}" for k, v in sorted(status.items())),
            "missing": missing, "expected": len(study.cells),
            "generated": dt.datetime.now().strftime("%Y-%m-%d %H:%M")}


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


COMPARED = 7  # the variants table's first column about a comparison (they are left out when none is made)


def _compared(found: Findings) -> bool:
    return any(r.effect for r in found.rows)


def _table_rows(found: Findings) -> list[list[str]]:
    rows = _all_rows(found)
    return rows if _compared(found) else [r[:COMPARED] + r[-1:] for r in rows]


def _all_rows(found: Findings) -> list[list[str]]:
    out = []
    scale = 100 if found.analysis.percent else 1
    for r in found.rows:
        e = r.effect
        out.append([r.label, str(r.n), _num(r.mean, r.half_width, scale), _pct(r.best),
                     f"{r.final_loss:.4f}" if not math.isnan(r.final_loss) else "—",
                     f"{r.epochs:.1f}" if not math.isnan(r.epochs) else "—", str(r.diverged),
                     fmt_effect(e, scale), fmt_effect(e, scale, family_wise=False).partition(" ")[2] or "—",
                     fmt_p(e.p) if e else "—", fmt_p(e.p_wilcoxon) if e else "—", fmt_p(e.p_holm) if e else "—",
                     fmt_p(e.p_fw) if e else "—", _better(e), f"{scale * e.detectable:.2f}" if e else "—", r.verdict])
    return out


def _num(mean: float, hw: float, scale: float) -> str:
    digits = 2 if scale == 100 else 4
    if math.isnan(mean):
        return "—"
    return f"{scale * mean:.{digits}f}" + ("" if math.isnan(hw) else f" ± {scale * hw:.{digits}f}")


def _better(c) -> str:
    """P(A > B): the share of seeds on which A beats B, with its bootstrap interval."""
    if c is None or math.isnan(c.p_better):
        return "—"
    return f"{c.p_better:.2f} [{c.p_better_lo:.2f}, {c.p_better_hi:.2f}]"


TERSE = ("kind", "95 % CI (unadjusted)", "ρ (paired gain)")  # left out of the terminal's table (the report has them)


def comparison_rows(found: Findings, detect: float | None = None, terse: bool = False) -> list[list[str]]:
    """The family's comparisons beyond "against the reference", as table rows (see ``comparison_head``)."""
    scale = 100 if found.analysis.percent else 1
    out = []
    for c in found.declared:
        d = detect if detect is not None else c.margin
        need = c.seeds_needed(d, found.m) if d else math.nan
        gain = pairing_gain(c.rho)
        out.append([c.kind, c.label, c.at, str(c.n), fmt_effect(c, scale),
                    fmt_effect(c, scale, family_wise=False).partition(" ")[2] or "—", fmt_p(c.p_fw), _better(c),
                    "—" if math.isnan(c.rho) else f"{c.rho:.2f} (×{gain:.1f})" if not math.isnan(gain) else f"{c.rho:.2f}",
                    f"{scale * c.detectable:.2f}" if not math.isnan(c.detectable) else "—",
                    "—" if math.isnan(need) else f"{need:.0f}", c.verdict])
    if terse:
        keep = [i for i, h in enumerate(comparison_head(found, detect)) if h not in TERSE]
        out = [[row[i] for i in keep] for row in out]
    return out


def comparison_head(found: Findings, detect: float | None = None, terse: bool = False) -> list[str]:
    unit = "pp" if found.analysis.percent else found.analysis.metric
    d = detect if detect is not None else found.analysis.margin
    need = f"seeds to detect {(100 if found.analysis.percent else 1) * d:g} {unit}" if d else "seeds needed (no margin)"
    head = ["kind", "comparison", "at", "n", f"Δ ({unit}) [family-wise CI]", "95 % CI (unadjusted)", "p (Bonferroni)",
            "P(A beats B) [95 % CI]", "ρ (paired gain)", f"detectable Δ ({unit}, 80 % power)", need, "verdict"]
    return [h for h in head if h not in TERSE] if terse else head


def noise_head(noise: Noise, percent: bool) -> list[str]:
    unit = "pp" if percent else noise.metric
    return ["variant", "n", f"SD, all seeds ({unit})", *[f"{f} % [95 % CI]" for f in noise.factors],
            "residual % [95 % CI]", "test set alone %", f"SD with one source varying ({unit})"]


def noise_rows(noise: Noise, percent: bool) -> list[list[str]]:
    """A crossed study's spread per (variant, point): each source's share of the variance between seeds
    (``variance.Spread``), the test set's binomial share, and the spread with only one source reseeded."""
    scale = 100 if percent else 1
    out = []
    for s in noise.spreads:
        parts = {p.source: p for p in s.parts}
        share = [f"{100 * p.share:.0f} [{100 * p.share_low:.0f}, {100 * p.share_high:.0f}]" if p else "—"
                 for p in (parts.get(f) for f in [*noise.factors, RESIDUAL])]
        alone = ", ".join(f"{f} {scale * parts[f].sd_alone:.3g}" for f in noise.factors
                          if f in parts and not math.isnan(parts[f].sd_alone))
        out.append([cell_label(s.variant, s.point), str(s.n), "—" if math.isnan(s.sd_all) else f"{scale * s.sd_all:.3g}",
                    *share, "—" if math.isnan(s.test_share) else f"{100 * s.test_share:.0f}", alone or s.note or "—"])
    return out


PAIRING_HEAD = ["comparison", "shared source", "ρ of the two sides under it",
                "variance the pairing removes (% of var A + var B)"]


def pairing_rows(noise: Noise) -> list[list[str]]:
    """Per comparison and shared source: how correlated the two sides are under it, and what sharing it
    takes off the paired difference's variance (``variance.Shared``)."""
    return [[p.comparison, p.source, "—" if math.isnan(p.correlation) else f"{p.correlation:+.2f}",
             "—" if math.isnan(p.removed_share) else f"{100 * p.removed_share:+.0f}"] for p in noise.pairing]


def head(found: Findings) -> list[str]:
    """The table's columns; "best" says which split chose the best epoch."""
    rows = found.rows
    on_val = rows and all(r.best_on == "val" for r in rows)
    best = "best epoch's test acc % (chosen on val)" if on_val else "best test acc % (epoch chosen on test: optimistic, never in verdicts)"
    metric = found.analysis.metric + (" %" if found.analysis.percent else "")
    unit = "pp" if found.analysis.percent else found.analysis.metric
    cols = ["variant", "n", f"{metric} (mean ± 95 % CI)", best, "final test loss", "epochs", "diverged",
            f"Δ ({unit}) [family-wise CI]", "95 % CI (unadjusted)", "p (paired t)", "p (Wilcoxon)", "p (Holm)",
            "p (Bonferroni)", "P(A beats B) [95 % CI]", f"detectable Δ ({unit}, 80 % power)", "verdict"]
    return cols if _compared(found) else cols[:COMPARED] + cols[-1:]


def recipes(study) -> list[tuple[str, str, list[str]]]:
    """Each variant's fully resolved recipe and treatments, defaults included (its first sweep point),
    and the axes its sweep varies."""
    out = []
    for variant in study.variants:
        cells = [c for c in study.cells if c.variant == variant]
        c = cells[0]
        resolved = {"recipe": c.recipe.model_dump(mode="json"),
                    "treatments": [t.model_dump(mode="json", exclude_none=True) for t in c.treatments]}
        out.append((variant, json.dumps(resolved, indent=1), [k for k, _ in c.point]))
    return out


def networks(study) -> list[tuple[str, list[str], list[list[str]], int]]:
    """Each distinct network of the study: its name, the variants (and points) that use it, its layers
    as rows (layer, output shape, parameters per member) and its parameter count, as ``petri summary``."""
    from ..data import get_spec
    from ..specs import canonical

    dspec = get_spec(study.data)
    seen: dict[str, tuple] = {}
    for c in study.cells:
        key = json.dumps(canonical(c.recipe.model), sort_keys=True)
        if key not in seen:
            seen[key] = (c.recipe.model, [])
        label = cell_label(c.variant, dict(c.point))
        if label not in seen[key][1]:
            seen[key][1].append(label)
    out = []
    for model, users in seen.values():
        summary = model.summary(dspec.shape, len(dspec.classes))
        rows = [["input", "×".join(map(str, dspec.shape)), ""]]
        rows += [[" " * r.depth + r.label, "×".join(map(str, r.shape)), f"{r.params:,}"] for r in summary]
        out.append((model.label(), users, rows, sum(r.params for r in summary if r.depth == 0)))
    return out


def table_notes(study, found: Findings) -> list[str]:
    """What the tables' columns mean, in sentences (shared by the HTML and the markdown)."""
    rows, m, a = found.rows, found.m, found.analysis
    level = f"{100 * found.level:.4g} %"
    what = "final " + a.metric.replace("_", " ")
    notes = [f"Δ: the difference in {what}, paired by seed (seeds missing on one side are left out of that pair)"
             + (f", against {study.reference}. " if not a.compare else ". ")
             + f"The study's {m} comparison{'s are' if m != 1 else ' is'} one family: each verdict reads its "
             f"family-wise interval ({level}, single-step Bonferroni: 95 % for all {m} at once), which excludes zero "
             "exactly when the Bonferroni p < 0.05, so an interval and its verdict never disagree. Holm's p (never "
             "larger) and the unadjusted 95 % interval are shown, labelled, for reference."]
    if a.looks > 1:
        notes.append(f"Adaptive seeds: the study may look at its comparisons after each of {a.looks} rounds, so α is "
                     f"split over the looks too (Bonferroni α-spending: {level} intervals), which keeps looking after "
                     "every round from inflating false positives.")
    if a.margin is not None or any(c.margin for c in found.family):
        unit = "pp" if a.percent else a.metric
        notes.append(f"Equivalence: a comparison with a margin (±{(100 if a.percent else 1) * (a.margin or 0):g} {unit} "
                     "unless its own is given) is 'equivalent' when its family-wise interval lies inside ±margin "
                     "(two one-sided tests, each at α/m), 'better' or 'worse' when it lies above or below zero, "
                     "else 'inconclusive'.")
    if not found.family:
        notes.append("Nothing is compared: " + (" ".join(study.warnings) or "the study has no reference."))
    if any(c.n == 2 for c in found.family):
        notes.append("Caution: a comparison on 2 seeds rests on a t with 1 degree of freedom (its interval is 12.7 "
                     "standard errors wide at 95 %); a verdict needs at least 2 seeds, and 5 or more are advised.")
    if any(c.n and c.n < 6 for c in found.family):
        notes.append("p (Wilcoxon) is '—' with fewer than 6 paired seeds: the signed-rank test cannot reach p < 0.05 "
                     "below n = 6, so it is not reported.")
    if not all(r.best_on == "val" for r in rows):
        notes.append("The best epoch is chosen on the test set (there is no validation split): an optimistic number, "
                     "shown for reference and never used in a verdict; set val_size for an honest one.")
    notes.append("P(A beats B): the share of seeds on which A beats B (higher accuracy; lower loss, ECE or gap; "
                 "ties count half), "
                 "with a 95 % bootstrap interval. 'detectable Δ' is the smallest true difference this many seeds "
                 "would detect with 80 % power at the family's level: if it is larger than the effect you care about, "
                 "add seeds (`petri plan DIR --detect Δ` says how many).")
    return notes


def _markdown(study, found, facts, figs, nets) -> str:
    lines = [f"# {study.name}", "", f"{facts['cells']}: {facts['status']}. Reference: {study.reference}. Data: {facts['data']}. "
             f"petri {facts['petri']} ({facts['commit']}), torch {facts['torch']}, {facts['device']}, wall {facts['wall']}.", ""]
    if facts["missing"]:
        lines += [f"**{len(facts['missing'])} cells have no final result yet** (pending, running or failed).", ""]
    if facts["adaptive"]:
        lines += [facts["adaptive"], ""]
    if facts["looks"]:
        lines += [f"**Repeated looks.** {facts['looks']}", ""]
    if facts["outside"]:
        lines += [f"**Not shown.** {facts['outside']}", ""]
    if facts["mixed"]:
        lines += [f"**Machines.** {facts['mixed']}", ""]
    elif facts["machines"]:
        lines += [f"Computed on {facts['machines'][0]}.", ""]
    if facts["time"]:
        lines += [f"{facts['time']}.", ""]
    cols = head(found)
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(row) + " |" for row in _table_rows(found)]
    if found.declared:
        cols = comparison_head(found)
        lines += ["", "## Comparisons", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(row) + " |" for row in comparison_rows(found)]
    for title, note, cols, body in noise_tables(facts["noise"], found.analysis.percent):
        lines += ["", f"## {title}", "", note, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
    lines += ["", " ".join(table_notes(study, found)), ""]
    for title, caption, slug, _ in figs:  # every figure the HTML shows
        lines += [f"**{title}.** {caption}", "", f"![{title}](figures/{slug}.png)", ""]
    lines += ["## Recipes (resolved, defaults included)", ""]
    for variant, text, axes in recipes(study):
        lines += [f"**{variant}**" + (f" (first point; its sweep varies {', '.join(axes)})" if axes else ""), "",
                  "```json", text, "```", ""]
    lines += ["## Networks", ""]
    for name, users, layers, total in nets:
        lines += [f"**{name}** ({total:,} parameters per member), used by: {', '.join(users)}", "",
                  "| layer | output shape | parameters |", "|---|---|---:|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in layers] + [""]
    return "\n".join(lines)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} .facts{color:#555;font-size:.92em} table{border-collapse:collapse;width:100%;font-size:.78em}
th,td{border-bottom:1px solid #ddd;padding:.3em .4em;text-align:right} th{background:#f4f4f4;position:sticky;top:0}
td:first-child,th:first-child{text-align:left} td.better{color:#1a7f37;font-weight:600} td.worse{color:#b3261e;font-weight:600}
figure{margin:1.5em 0} figure img{max-width:100%;height:auto;border:1px solid #eee} figcaption{font-size:.9em;color:#444}
pre{background:#f7f7f7;padding:1em;overflow-x:auto;font-size:.85em} .warn{background:#fff4e5;padding:.6em 1em;border-left:4px solid #f0a020}
.wrap{overflow-x:auto} table.net{width:auto;min-width:40%} table.net td:nth-child(2){text-align:left}
"""


def _html(study, found, facts, figs, nets) -> str:
    esc = html.escape
    body = [f"<h1>{esc(study.name)}</h1>",
            f"<p class='facts'>{esc(facts['cells'])}: {esc(facts['status'])} · reference <b>{esc(study.reference)}</b> · "
            f"data {esc(facts['data'])} · {len(study.seeds)} seeds · petri {esc(facts['petri'])} ({esc(facts['commit'])}) · "
            f"torch {esc(facts['torch'])} · {esc(facts['device'])} on {esc(facts['host'] or '?')} · executor "
            f"{esc(facts['executor'] or '?')} · {facts['runs']} run(s), wall time {esc(facts['wall'])} · "
            f"generated {esc(facts['generated'])}</p>"]
    if facts["missing"]:
        names = sorted({c["variant"] for c in facts["missing"]})
        body.append(f"<p class='warn'>{len(facts['missing'])} of {facts['expected']} cells have no final result yet "
                    f"(pending, running or failed) in: {esc(', '.join(names))}. Numbers below use the finished cells only.</p>")
    if facts["adaptive"]:
        body.append(f"<p class='facts'>{esc(facts['adaptive'])}</p>")
    if facts["looks"]:
        body.append(f"<p class='warn'>{esc(facts['looks'])}</p>")
    if facts["outside"]:
        body.append(f"<p class='warn'>{esc(facts['outside'])}</p>")
    if facts["mixed"]:
        body.append(f"<p class='warn'>{esc(facts['mixed'])}</p>")
    elif facts["machines"]:
        body.append(f"<p class='facts'>Computed on {esc(facts['machines'][0])}.</p>")
    if facts["time"]:
        body.append(f"<p class='facts'>{esc(facts['time'])}.</p>")
    body.append(f"<h2>Variants{', sorted by effect' if _compared(found) else ''}</h2>" + _html_table(head(found), _table_rows(found)))
    if found.declared:
        body.append("<h2>Comparisons</h2>" + _html_table(comparison_head(found), comparison_rows(found)))
    for title, note, cols, rows_ in noise_tables(facts["noise"], found.analysis.percent):
        body.append(f"<h2>{esc(title)}</h2><p class='facts'>{esc(note)}</p>" + _html_table(cols, rows_))
    body.append(f"<p class='facts'>{esc(' '.join(table_notes(study, found)))}</p>")
    dropped = sum(c.dropped for c in found.family if c.kind == "vs reference")
    if dropped:
        body.append(f"<p class='facts'>{dropped} seed(s) had no partner on the other side and were left out of pairs.</p>")
    for title, caption, _, png in figs:
        data = base64.b64encode(png).decode()
        body.append(f"<figure><h3>{esc(title)}</h3><img alt='{esc(title)}' src='data:image/png;base64,{data}'>"
                    f"<figcaption>{esc(caption)}</figcaption></figure>")
    body.append("<h2>Recipes</h2><p class='facts'>Each variant as it trained: every field, defaults included.</p>")
    for variant, text, axes in recipes(study):
        note = f" (first point; its sweep varies {', '.join(axes)})" if axes else ""
        body.append(f"<details><summary><b>{esc(variant)}</b>{esc(note)}</summary><pre>{esc(text)}</pre></details>")
    body.append("<h2>Networks</h2>")
    for name, users, layers, total in nets:
        body.append(f"<h3>{esc(name)}: {total:,} parameters per member</h3><p class='facts'>used by "
                    f"{esc(', '.join(users))}</p><table class='net'><tr><th>layer</th><th>output shape</th>"
                    "<th>parameters</th></tr>"
                    + "".join(f"<tr><td>{esc(a)}</td><td>{esc(b)}</td><td>{esc(c)}</td></tr>" for a, b, c in layers)
                    + "</table>")
    body.append(f"<h2>Study file</h2><pre>{esc(study.text)}</pre>")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' "
            f"content='width=device-width, initial-scale=1'><title>{esc(study.name)} — petri report</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>")


def noise_tables(spread: Noise | None, percent: bool) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """(title, note, head, rows) of a crossed study's spread and pairing tables; none for other studies."""
    if spread is None:
        return []
    out = [("Where the noise comes from", f"Crossed random sources: {', '.join(spread.factors)}. Each source's share "
            "of the variance between seeds (generalized 95 % intervals), the residual (interactions and the rest), the "
            "share a finite test set explains by itself (binomial), and the spread (pooled SD) when only one source "
            "is reseeded and the others are held fixed.", noise_head(spread, percent), noise_rows(spread, percent))]
    if spread.pairing:
        out.append(("What pairing gains, source by source", "For each comparison: how correlated its two sides are "
                    "under each shared source, and how much of the unpaired difference's variance sharing that source "
                    "removes (negative: sharing it adds variance).", PAIRING_HEAD, pairing_rows(spread)))
    return out


def _blank(x):
    return "" if x is None else x


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    """A table whose last column is a verdict (better and worse coloured)."""
    esc = html.escape
    out = ["<div class='wrap'><table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        cls = row[-1] if row[-1] in ("better", "worse", "equivalent") else ""
        out.append("<tr>" + "".join(f"<td>{esc(x)}</td>" for x in row[:-1]) + f"<td class='{cls}'>{esc(row[-1])}</td></tr>")
    return "".join(out) + "</table></div>"


def _write_csvs(out: Path, rows: list[Row], cells: list[dict], last: dict, found: Findings,
                spread: Noise | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if spread is not None:  # a crossed study: noise.csv and pairing.csv (Results.noise() / pairing())
        import pandas as pd

        pd.DataFrame(spread_records(spread)).to_csv(out / "noise.csv", index=False)
        pd.DataFrame(pairing_records(spread)).to_csv(out / "pairing.csv", index=False)
    with open(out / "variants.csv", "w", newline="") as f:
        w = csv.writer(f)
        metric = found.analysis.metric
        # the names (and units: fractions) of Results.effects() and cells()
        w.writerow(["variant", "point", "n", "cells", metric, f"{metric}_ci95", "best_test_acc", "test_loss",
                    "epochs", "diverged", "missing", "diff", "diff_fw_low", "diff_fw_high", "diff_ci95_low",
                    "diff_ci95_high", "p_t", "p_wilcoxon", "p_holm", "p_bonferroni", "p_better", "detectable_diff",
                    "verdict"])
        for r in rows:
            e = r.effect
            w.writerow([r.variant, json.dumps(r.point), r.n, r.cells, r.mean, r.half_width, r.best, r.final_loss, r.epochs,
                        r.diverged, r.missing, *([e.mean, e.lo_fw, e.hi_fw, e.lo, e.hi, e.p, e.p_wilcoxon, e.p_holm, e.p_fw,
                                                  e.p_better, e.detectable] if e else [""] * 11), r.verdict])
    with open(out / "comparisons.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["kind", "a", "b", "at", "n", "diff", "diff_fw_low", "diff_fw_high", "diff_ci95_low", "diff_ci95_high",
                    "p_t", "p_holm", "p_bonferroni", "p_better", "p_better_low", "p_better_high", "sd", "rho",
                    "detectable_diff", "margin", "verdict", "family_size"])
        for c in found.family:
            w.writerow([c.kind, c.a, c.b, c.at, c.n, c.mean, c.lo_fw, c.hi_fw, c.lo, c.hi, c.p, c.p_holm, c.p_fw,
                        c.p_better, c.p_better_lo, c.p_better_hi, c.sd, c.rho, c.detectable,
                        "" if c.margin is None else c.margin, c.verdict, found.m])
    with open(out / "cells.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["hash", "variant", "point", "seed", "status", "epochs", "train_loss", "train_acc",  # as cells()
                    "train_eval_acc", "test_loss", "test_acc", "gap", "seconds"])
        for c in cells:
            e = last.get(c["place"], {})
            w.writerow([c["hash"], c["variant"], c["point"], c["seed"], c["status"], e.get("epoch", ""),
                        e.get("train_loss", ""), e.get("train_acc", ""), _blank(e.get("train_eval_acc")),
                        e.get("test_loss", ""), e.get("test_acc", ""),
                        _blank(metric_value("gap", e, None)),
                        c["seconds"] if c["seconds"] is not None else ""])
