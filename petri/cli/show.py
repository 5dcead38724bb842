"""The terminal's tables of one view of a study (``petri show``, after ``petri run``, ``petri analyse``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from rich.table import Column, Table

from .base import console, err_console


def print_view(v, directory: Path | None) -> None:
    """The tables of one view of a study (or of a table of runs: ``directory`` None)."""
    from ..machine import mixed_note
    from ..report import text
    from ..analysis.variance import noise
    from ..study.cellstore import disk_usage
    from ..study.planner import human_bytes

    snap, f = v.snapshot, v.findings
    counts = Counter(str(p.status) for p in snap.places)
    chance = sum(1 for p in snap.places if p.at_chance)
    console.print(f"{snap.name}: {len(snap.places)} {'cells' if directory else 'runs'} — "
                  + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
                  + (f" ({chance} of them at chance)" if chance else "")
                  + (f"; {human_bytes(disk_usage(directory))} on disk in {directory}" if directory else ""),
                  soft_wrap=True)
    if split := snap.time_split():
        console.print(split.line(), markup=False, highlight=False, soft_wrap=True)
    head, rows = text.effects_text(v, terminal=True)
    n = f.m
    table = Table(*[Column(h, no_wrap=i == 0) for i, h in enumerate(head)],
                  caption=((f"Δ: paired by seed against {snap.reference}; " if not f.analysis.compare else "")
                           + f"{n} comparison{'s' if n != 1 else ''} in one family: a verdict reads its interval at the "
                             f"family's level ({100 * f.level:.4g} %); rows in study order (the report sorts them by effect)")
                  if f.family else "nothing is compared; n: seeds, each mean with its 95 % interval over them")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if f.declared:
        head, rows = text.comparisons_text(v, terminal=True)
        comp = Table(*head, title="comparisons (the report adds unadjusted intervals, p-values and ρ)")
        for row in rows:
            comp.add_row(*row)
        console.print(comp)
    for line in text.reasons(f):
        console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
    for title, note, cols, body in text.noise_tables(noise(f), v.percent):
        t = Table(*[Column(c, no_wrap=i == 0) for i, c in enumerate(cols)], title=title.lower(), caption=note)
        for row in body:
            t.add_row(*row)
        console.print(t)
    if line := text.adaptive_line(snap.adaptive):  # (report.looks.summary)
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if snap.outside:
        err_console.print(f"petri: note: {snap.outside}", markup=False, highlight=False, soft_wrap=True)
    if line := text.looks_line(snap):
        err_console.print(f"petri: warning: {line}", markup=False, highlight=False, soft_wrap=True)
    mixed = mixed_note([e for p in {p.hash: p for p in snap.places}.values() for e in p.epochs])
    for w in [*snap.warnings, *([mixed] if mixed else [])]:
        err_console.print(f"petri: warning: {w}", markup=False, highlight=False, soft_wrap=True)
