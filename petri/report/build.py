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
from pathlib import Path

from ..errors import PlaceError
from ..study.current import load_current
from . import figures
from .analysis import Row, cell_label, fmt_p, summarize, sweep_axes


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
    figdir = out / "figures"
    rows = summarize(cells, epochs, study.baseline, study.baseline_point)
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
    if ref is not None and any(r.effect for r in rows):
        add(figures.forest(rows, ref), "paired-differences", "Paired differences",
            f"Each variant's difference in final test accuracy from {study.reference}, paired by seed: mean and 95 % "
            "interval; each dot is one seed's own difference. Green: better, red: worse (Holm-corrected).")
    train_final: dict[str, list[float]] = {}
    last = {}
    for e in epochs:
        if e["place"] not in last or e["epoch"] > last[e["place"]]["epoch"]:
            last[e["place"]] = e
    for h, e in last.items():
        train_final.setdefault(label_of[h], []).append(e["train_acc"])
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
                f"Final train and test accuracy, mean ± 95 % t-interval over n ≤ {n_seeds} seeds (clipped to 0-100 %); "
                f"dashed: the reference, {study.reference}.")
    packs = _packs(cells, epochs, runs)
    if packs:
        add(figures.throughput(packs), "throughput", "Throughput",
            "Training images per second of each pack (all its members), excluding evaluation.")

    _write_csvs(out, rows, cells, last)
    facts = _facts(study, runs, cells, list({(e['cell_hash'], e['epoch']): e for e in epochs}.values()))
    nets = networks(study)
    (out / "report.md").write_text(_markdown(study, rows, facts, figs, nets))
    (out / "index.html").write_text(_html(study, rows, facts, figs, nets))
    return out / "index.html"


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

    return {"data": _data_label(study), "machines": list(kinds(epochs)), "mixed": mixed_note(epochs), "petri": last["petri_version"], "commit": (last["git_commit"] or "—")[:12], "torch": last["torch_version"],
            "device": last["device"], "host": last["host"], "executor": last["executor"],
            "runs": len(runs), "wall": f"{wall:,.0f} s", "cells": f"{len(cells)} of {len(study.cells)} in the study",
            "status": ", ".join(f"{v} {k}" for k, v in sorted(status.items())),
            "missing": missing, "expected": len(study.cells),
            "generated": dt.datetime.now().strftime("%Y-%m-%d %H:%M")}


def _table_rows(rows: list[Row]) -> list[list[str]]:
    out = []
    for r in rows:
        e = r.effect
        ci = "—" if not e or math.isnan(e.half_width) else f"[{_pct(e.mean - e.half_width)}, {_pct(e.mean + e.half_width)}]"
        out.append([r.label, str(r.n), f"{_pct(r.mean)} ± {_pct(r.half_width)}" if r.n > 1 else _pct(r.mean),
                    _pct(r.best), f"{r.final_loss:.4f}" if not math.isnan(r.final_loss) else "—",
                    f"{r.epochs:.1f}" if not math.isnan(r.epochs) else "—", str(r.diverged),
                    _pct(e.mean) if e else "—", ci, fmt_p(e.p_t) if e else "—", fmt_p(e.p_wilcoxon) if e else "—",
                    fmt_p(r.p_holm), _pct(e.min_detectable) if e else "—", r.verdict])
    return out


def head(rows: list[Row]) -> list[str]:
    """The table's columns; "best" says which split chose the best epoch."""
    on_val = rows and all(r.best_on == "val" for r in rows)
    best = "best epoch's test acc % (chosen on val)" if on_val else "best test acc % (epoch chosen on test: optimistic, never in verdicts)"
    return ["variant", "n", "test acc % (mean ± 95 % CI)", best, "final test loss", "epochs", "diverged",
            "Δ (pp)", "95 % CI of Δ", "p (paired t)", "p (Wilcoxon)", "p (Holm)", "detectable Δ (80 % power)", "verdict"]


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


def table_notes(study, rows: list[Row]) -> list[str]:
    """What the table's columns mean, in sentences (shared by the HTML and the markdown)."""
    notes = [f"Δ: the difference in final test accuracy, paired by seed, against {study.reference} (seeds missing "
             "on one side are left out of that pair). A direction is called only when the Holm-corrected paired t-test "
             "gives p < 0.05 and the 95 % interval excludes zero."]
    if not any(r.effect for r in rows):
        notes.append("Nothing is compared: " + (" ".join(study.warnings) or "the study has no reference."))
    if any(r.effect and r.effect.n < 6 for r in rows):
        notes.append("p (Wilcoxon) is '—' with fewer than 6 paired seeds: the signed-rank test cannot reach p < 0.05 "
                     "below n = 6, so it is not reported.")
    if not all(r.best_on == "val" for r in rows):
        notes.append("The best epoch is chosen on the test set (there is no validation split): an optimistic number, "
                     "shown for reference and never used in a verdict; set val_size for an honest one.")
    notes.append("'detectable Δ' is the smallest true difference this many seeds would detect with 80 % power: if it is "
                 "larger than the effect you care about, add seeds.")
    return notes


def _markdown(study, rows, facts, figs, nets) -> str:
    lines = [f"# {study.name}", "", f"{facts['cells']}: {facts['status']}. Reference: {study.reference}. Data: {facts['data']}. "
             f"petri {facts['petri']} ({facts['commit']}), torch {facts['torch']}, {facts['device']}, wall {facts['wall']}.", ""]
    if facts["missing"]:
        lines += [f"**{len(facts['missing'])} cells have no final result yet** (pending, running or failed).", ""]
    if facts["mixed"]:
        lines += [f"**Machines.** {facts['mixed']}", ""]
    elif facts["machines"]:
        lines += [f"Computed on {facts['machines'][0]}.", ""]
    cols = head(rows)
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(row) + " |" for row in _table_rows(rows)]
    lines += ["", " ".join(table_notes(study, rows)), ""]
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


def _html(study, rows, facts, figs, nets) -> str:
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
    if facts["mixed"]:
        body.append(f"<p class='warn'>{esc(facts['mixed'])}</p>")
    elif facts["machines"]:
        body.append(f"<p class='facts'>Computed on {esc(facts['machines'][0])}.</p>")
    body.append("<h2>Variants, sorted by effect</h2><div class='wrap'><table><tr>" +
                "".join(f"<th>{esc(h)}</th>" for h in head(rows)) + "</tr>")
    for row in _table_rows(rows):
        cls = row[-1] if row[-1] in ("better", "worse") else ""
        body.append("<tr>" + "".join(f"<td>{esc(x)}</td>" for x in row[:-1]) + f"<td class='{cls}'>{esc(row[-1])}</td></tr>")
    body.append(f"</table></div><p class='facts'>{esc(' '.join(table_notes(study, rows)))}</p>")
    dropped = sum(r.effect.dropped for r in rows if r.effect)
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


def _write_csvs(out: Path, rows: list[Row], cells: list[dict], last: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "variants.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["variant", "point", "n", "cells", "mean_test_acc", "ci95_half_width", "best_test_acc", "final_test_loss",
                    "epochs", "diverged", "missing", "diff_vs_baseline", "diff_ci95_half_width", "p_t", "p_wilcoxon",
                    "p_holm", "min_detectable_diff", "verdict"])
        for r in rows:
            e = r.effect
            w.writerow([r.variant, json.dumps(r.point), r.n, r.cells, r.mean, r.half_width, r.best, r.final_loss, r.epochs,
                        r.diverged, r.missing, e.mean if e else "", e.half_width if e else "", e.p_t if e else "",
                        e.p_wilcoxon if e else "", r.p_holm, e.min_detectable if e else "", r.verdict])
    with open(out / "cells.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["hash", "variant", "point", "seed", "status", "epochs", "final_train_loss", "final_train_acc",
                    "final_test_loss", "final_test_acc", "seconds"])
        for c in cells:
            e = last.get(c["place"], {})
            w.writerow([c["hash"], c["variant"], c["point"], c["seed"], c["status"], e.get("epoch", ""),
                        e.get("train_loss", ""), e.get("train_acc", ""), e.get("test_loss", ""), e.get("test_acc", ""),
                        c["seconds"] if c["seconds"] is not None else ""])
