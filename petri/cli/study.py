"""Commands on a study and its folder: ``run`` (and ``--dry-run``), ``show``, ``export``, ``weights``,
``plan``, ``analyse`` (runs made elsewhere) and ``report``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..errors import PetriError
from .base import app, console, err_console, fail, option_error, parse_json
from .show import print_view


@app.command("run")
def run_cmd(
    study_file: Path = typer.Argument(..., help="study TOML file"),
    out: Optional[Path] = typer.Option(None, "--out", help="study directory (default: runs/<study name>)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print cells, packs, memory and time; train nothing"),
    max_members: Optional[int] = typer.Option(None, "--max-members", min=1, help="cap on cells per pack"),
    executor: str = typer.Option("local", help="local or ray"),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (with --executor ray)"),
    data: Optional[str] = typer.Option(None, "--data", help="run on another data set (a name, or an .npz file / image folder)"),
    profile: Optional[str] = typer.Option(None, "--profile", help="apply the study's [profiles.NAME] (e.g. cpu)"),
    no_report: bool = typer.Option(False, "--no-report", help="skip the report at the end"),
    changed: bool = typer.Option(False, "--changed", help="a plugin or data file changed since the folder's cells "
                                 "ran: train the changed study's cells beside the finished ones"),
    checkpoint_minutes: float = typer.Option(
        5.0, "--checkpoint-minutes", help="within an epoch longer than this, checkpoint running cells this often "
        "(every epoch's end always is)"),
):
    """Train every unfinished cell of a study; the ledger is OUT/petri.sqlite."""
    from .. import api
    from ..errors import SpecError

    try:
        if executor not in ("local", "ray"):
            raise SpecError(f"--executor: {executor!r} is not an executor; allowed: local, ray")
        study = api.load_study(Path(study_file), data, profile)
        for w in study.warnings:
            err_console.print(f"petri: warning: {w}", markup=False, highlight=False, soft_wrap=True)
        out = out or Path("runs") / study.name
        if dry_run:
            for line in api.dry_run(study, out, max_members, changed):
                console.print(line, markup=False, highlight=False, soft_wrap=line.startswith("  data:"))
            return
        api.run(study, out, executor=executor, address=address, max_members=max_members,
                report=not no_report, checkpoint_minutes=checkpoint_minutes, changed=changed)
        print_summary(out)
        if not no_report and (out / "report" / "index.html").is_file():
            console.print(f"report: {out / 'report' / 'index.html'}")
    except PetriError as e:
        fail(e)
    except KeyboardInterrupt:
        raise typer.Exit(130)


@app.command("show")
def show_cmd(directory: Path = typer.Argument(..., help="study directory (holding petri.sqlite)")):
    """Status and per-variant table of a finished or running study."""
    try:
        print_summary(directory)
    except PetriError as e:
        fail(e)


@app.command("export")
def export_cmd(
    directory: Path = typer.Argument(..., help="study directory"),
    format: str = typer.Option("csv", "--format", help="csv, parquet or json"),
    to: Optional[Path] = typer.Option(None, "--to", help="output folder (default: DIR/export)"),
):
    """Write cell-level and epoch-level tables."""
    from ..api import open_study

    try:
        paths = open_study(directory).export(format, to)
    except PetriError as e:
        fail(e)
    for p in paths:
        console.print(str(p))


@app.command("weights")
def weights_cmd(
    directory: Path = typer.Argument(..., help="study directory"),
    variant: str = typer.Option(..., "--variant", help="the cell's variant"),
    seed: int = typer.Option(..., "--seed", help="the cell's seed"),
    point: Optional[str] = typer.Option(None, "--point", help='its sweep point as JSON, e.g. \'{"lr": 0.1}\''),
    best: bool = typer.Option(False, "--best", help="the best epoch's weights (with early stopping)"),
    to: Path = typer.Option(..., "--to", help="file to write (safetensors: a torch.nn state_dict)"),
):
    """Write one trained cell's weights to a file (load them with safetensors into the model's module)."""
    from ..api import open_study

    try:
        pt = parse_json(point, "--point") if point else None
        if pt is not None and not isinstance(pt, dict):
            raise option_error("--point: must be a JSON object such as {\"lr\": 0.1}")
        path = open_study(directory).save_weights(variant, seed, to, pt, best)
    except PetriError as e:
        fail(e)
    console.print(str(path))


def print_summary(directory: Path) -> None:
    """`petri show`: one snapshot of the study (one read of its ledger), every table from it."""
    from ..api import open_study

    print_view(open_study(directory).view(), directory)


@app.command("plan")
def plan_cmd(directory: Path = typer.Argument(..., help="study directory (holding petri.sqlite)"),
             detect: float = typer.Option(..., "--detect", help="the smallest true difference to detect: percentage "
                                          "points for accuracies, else the metric's units")):
    """How many seeds each comparison of a finished study needs to detect --detect with 80 % power."""
    from ..api import open_study
    from ..errors import SpecError

    try:
        if not detect > 0 or math.isinf(detect):
            raise SpecError(f"--detect: must be a positive number (got {detect})")
        v = open_study(directory).view()
    except PetriError as e:
        fail(e)
    f, scale, unit = v.findings, v.context.scale, v.context.unit
    a = f.analysis
    looks = f" over {a.looks} possible looks (an adaptive study: each look is tested at this level)" if a.looks > 1 else ""
    crossed = any(c.crossed for c in f.family)
    table = Table("comparison", "at", "n", f"paired sd ({unit})", "ρ", "unpaired would need", f"detectable Δ now ({unit})",
                  f"seeds{' per source' if crossed else ''} to detect {detect:g} {unit}",
                  caption=f"80 % power (noncentral t), two-sided, at the verdicts' level α' = {0.05 / (f.m * a.looks):.3g} "
                          f"(α = 0.05 over {f.m} comparison{'s' if f.m != 1 else ''}{looks})")
    for c in f.family:
        from ..analysis.family import pairing_gain
        from ..analysis.columns import number

        gain = pairing_gain(c.rho)
        table.add_row(c.label, c.at or "—", str(c.n), number(scale * c.sd, "{:.3f}"), number(c.rho, "{:.2f}"),
                      number(gain, "×{:.1f} the seeds"), number(scale * c.detectable),
                      number(c.seeds_needed(detect / scale), "{:.0f}"))
    console.print(table)
    pilot = min((c.n for c in f.family if c.n), default=0)
    if 0 < pilot < 5 and not crossed:
        err_console.print(f"petri: warning: a pilot of {pilot} seed{'s' if pilot != 1 else ''}: its standard deviation "
                          "is unstable (with 4 seeds, a 95 % interval for it spans 0.57× to 3.7×), so these counts are "
                          "rough; plan again with 5 or more", markup=False, highlight=False, soft_wrap=True)


@app.command("analyse")
def analyse_cmd(
    table: Path = typer.Argument(..., help="a CSV or Parquet file, one row per run: variant, seed (or seed_<source> "
                                "columns), metrics, optionally status and sweep axes"),
    metric: str = typer.Option("test_acc", "--metric", help="the column compared"),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="the reference variant (default: the first)"),
    compare: Optional[list[str]] = typer.Option(None, "--compare", help='a comparison "A - B" (repeatable)'),
    margin: Optional[float] = typer.Option(None, "--margin", help="smallest difference that matters (pp for accuracies)"),
    failed: str = typer.Option("withhold", "--failed", help="diverged runs: withhold (no verdict) or chance"),
    axis: Optional[list[str]] = typer.Option(None, "--axis", help="a sweep axis column (repeatable)"),
    test_size: Optional[int] = typer.Option(None, "--test-size", help="test images behind an accuracy"),
    classes: Optional[int] = typer.Option(None, "--classes", help="classes (a constant guess scores 1 / classes)"),
    config: Optional[Path] = typer.Option(None, "--config", help="a TOML file with [analysis] and these options"),
    report: Optional[Path] = typer.Option(None, "--report", help="also write a report into this folder"),
):
    """petri's comparisons, verdicts, noise decomposition and report for runs made with other tools."""
    from ..analysis.external import describe
    from ..api import analyse

    try:
        results = analyse(table, metric, baseline, compare, margin, failed, axis, test_size, classes, config)
        console.print(describe(results.snapshot()), markup=False, highlight=False, soft_wrap=True)
        print_view(results.view(), None)
        if report is not None:
            console.print(f"report: {results.report(report)}")
    except PetriError as e:
        fail(e)


@app.command("report")
def report_cmd(directory: Path = typer.Argument(..., help="study directory (holding petri.sqlite)"),
               to: Optional[Path] = typer.Option(None, "--to", help="write the report here instead of DIR/report")):
    """Write DIR/report/: index.html (self-contained), report.md, figures (PNG + SVG), cells.csv, variants.csv."""
    from ..api import open_study

    try:
        console.print(f"report: {open_study(directory).report(to)}")
    except PetriError as e:
        fail(e)
