"""The report's two pages, report.md and index.html, from one view of the study (``analysis.view.View``),
its facts (``facts.py``) and its figures: the same tables (``text.py``) in both."""

from __future__ import annotations

import base64
import html

from . import text
from .facts import recipes


def _header(v, facts) -> str:
    snap = v.snapshot
    if snap.study is None:
        return f"{facts['cells']}: {facts['status']}. Reference: {snap.reference or '—'}. Runs made elsewhere: {facts['data']}."
    ref = f"Reference: {snap.reference}. " if v.findings.family else ""
    return (f"{facts['cells']}: {facts['status']}. {ref}Data: {facts['data']}. "
            f"petri {facts['petri']} ({facts['commit']}), torch {facts['torch']}, {facts['device']} on "
            f"{facts['host'] or '?'}, executor {facts['executor'] or '?'}, {facts['runs']} run(s), wall {facts['wall']}.")


def _warnings(facts) -> list[tuple[str, str]]:
    """(kind, sentence): what the reader must know before the tables."""
    out = []
    if facts["missing"]:
        names = sorted({p.variant for p in facts["missing"]})
        out.append(("warn", f"{len(facts['missing'])} of {facts['expected']} cells have no final result yet (pending, "
                            f"running, interrupted or failed) in: {', '.join(names)}. Numbers below use the finished "
                            "cells only."))
    for key, kind, label in (("adaptive", "facts", ""), ("looks", "warn", "Repeated looks. "),
                             ("outside", "warn", "Not shown. "), ("mixed", "warn", "Machines. ")):
        if facts.get(key):
            out.append((kind, label + facts[key]))
    if not facts.get("mixed") and facts["machines"]:
        out.append(("facts", f"Computed on {facts['machines'][0]}."))
    if facts.get("time"):
        out.append(("facts", facts["time"]))
    return out


def _tables(v, facts) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """(title, note, head, rows) of the variants and comparisons tables, in order (the notes below them
    explain their columns)."""
    f = v.findings
    head, rows = text.effects_text(v)
    out = [(f"Variants{', sorted by effect' if any(r.effect for r in f.rows) else ''}", "", head, rows)]
    if f.declared:
        out.append(("Comparisons", "", *text.comparisons_text(v)))
    return out


def _more_tables(v, facts) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """The tables after those notes: every metric, per class, and a crossed study's noise."""
    return [*(facts.get("metrics") or []), *text.noise_tables(facts.get("noise"), v.percent)]


def _md_table(title: str, note: str, cols: list[str], body: list[list[str]]) -> list[str]:
    return ([f"## {title}", ""] + ([note, ""] if note else []) + ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
            + ["| " + " | ".join(row) + " |" for row in body] + [""])


def markdown(v, facts, figs, nets) -> str:
    snap = v.snapshot
    lines = [f"# {snap.name}", "", _header(v, facts), ""]
    for kind, sentence in _warnings(facts):
        label, _, rest = sentence.partition(". ") if kind == "warn" and sentence.startswith(
            ("Repeated", "Not shown", "Machines")) else ("", "", sentence)
        lines += [(f"**{label}.** {rest}" if label else f"**{sentence}**") if kind == "warn" else sentence, ""]
    for table in _tables(v, facts):
        lines += _md_table(*table)
    lines += [" ".join(text.table_notes(v)), ""]
    lines += [f"- {line}" for line in text.reasons(v.findings)] + ([""] if text.reasons(v.findings) else [])
    for table in _more_tables(v, facts):
        lines += _md_table(*table)
    for title, caption, slug, _ in figs:  # every figure the HTML shows
        lines += [f"**{title}.** {caption}", "", f"![{title}](figures/{slug}.png)", ""]
    if snap.study is not None:
        lines += ["## Recipes (resolved, defaults included)", ""]
        for variant, body, axes in recipes(snap.study):
            lines += [f"**{variant}**" + (f" (first point; its sweep varies {', '.join(axes)})" if axes else ""), "",
                      "```json", body, "```", ""]
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




def page(v, facts, figs, nets) -> str:
    esc = html.escape
    snap = v.snapshot
    body = [f"<h1>{esc(snap.name)}</h1>", f"<p class='facts'>{esc(_header(v, facts))} · generated {esc(facts['generated'])}</p>"]
    for kind, sentence in _warnings(facts):
        body.append(f"<p class='{kind}'>{esc(sentence)}</p>")
    for title, note, cols, rows in _tables(v, facts):
        body.append(f"<h2>{esc(title)}</h2>" + (f"<p class='facts'>{esc(note)}</p>" if note else "") + _html_table(cols, rows))
    body.append(f"<p class='facts'>{esc(' '.join(text.table_notes(v)))}</p>")
    if text.reasons(v.findings):
        body.append("<ul class='facts'>" + "".join(f"<li>{esc(r)}</li>" for r in text.reasons(v.findings)) + "</ul>")
    for title, note, cols, rows in _more_tables(v, facts):
        body.append(f"<h2>{esc(title)}</h2>" + (f"<p class='facts'>{esc(note)}</p>" if note else "") + _html_table(cols, rows))
    for title, caption, _, png in figs:
        data = base64.b64encode(png).decode()
        body.append(f"<figure><h3>{esc(title)}</h3><img alt='{esc(title)}' src='data:image/png;base64,{data}'>"
                    f"<figcaption>{esc(caption)}</figcaption></figure>")
    if snap.study is not None:
        body.append("<h2>Recipes</h2><p class='facts'>Each variant as it trained: every field, defaults included.</p>")
        for variant, text_, axes in recipes(snap.study):
            note = f" (first point; its sweep varies {', '.join(axes)})" if axes else ""
            body.append(f"<details><summary><b>{esc(variant)}</b>{esc(note)}</summary><pre>{esc(text_)}</pre></details>")
        body.append("<h2>Networks</h2>")
        for name, users, layers, total in nets:
            body.append(f"<h3>{esc(name)}: {total:,} parameters per member</h3><p class='facts'>used by "
                        f"{esc(', '.join(users))}</p><table class='net'><tr><th>layer</th><th>output shape</th>"
                        "<th>parameters</th></tr>"
                        + "".join(f"<tr><td>{esc(a)}</td><td>{esc(b)}</td><td>{esc(c)}</td></tr>" for a, b, c in layers)
                        + "</table>")
        body.append(f"<h2>Study file</h2><pre>{esc(snap.study.text)}</pre>")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' "
            f"content='width=device-width, initial-scale=1'><title>{esc(snap.name)} — petri report</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>")


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    """A table whose last column is a verdict (better and worse coloured)."""
    esc = html.escape
    out = ["<div class='wrap'><table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        cls = row[-1] if row[-1] in ("better", "worse", "equivalent") else ""
        out.append("<tr>" + "".join(f"<td>{esc(x)}</td>" for x in row[:-1]) + f"<td class='{cls}'>{esc(row[-1])}</td></tr>")
    return "".join(out) + "</table></div>"


