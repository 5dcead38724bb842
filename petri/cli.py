"""The `petri` command: a thin shell over the library (every command is a function call)."""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Column, Table

from .errors import PetriError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="petri: controlled deep-learning experiments on small image data sets.")
data_app = typer.Typer(no_args_is_help=True, help="List, verify and fetch data sets.")
app.add_typer(data_app, name="data")
# Piped output is not cut at 80 columns (rich's default when stdout is not a terminal).
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True)


def fail(e: PetriError) -> None:
    err_console.print(f"petri: error: {e}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(e.exit_code)


@data_app.command("list")
def data_list(root: Optional[Path] = typer.Option(None, help="look only here (default: PETRI_DATA, then the user cache)")):
    """Registered data sets: shape, classes, sizes, and where their files are (or that they are missing)."""
    import pandas as pd

    from .api import datasets
    from .data import data_roots

    table = Table(Column("name", no_wrap=True), "image shape", "classes", "train/test", Column("files", no_wrap=True),
                  "citation")
    for _, d in datasets(root).iterrows():
        table.add_row(d["name"], f"{d['channels']}×{d['height']}×{d['width']}",
                      f"{d['classes']}" + (f" (+ {d['variants']})" if d["variants"] else ""),
                      f"{d['train']:,}/{d['test']:,}", "missing" if pd.isna(d["files"]) else d["files"], d["citation"])
    console.print(table)
    console.print(f"searched: {', '.join(str(r) for r in data_roots(root))}. Your own data: data = \"path/to/file.npz\" "
                  "or an image folder (train/<class>/, test/<class>/).", markup=False, highlight=False, soft_wrap=True)


@data_app.command("verify")
def data_verify(name: str, root: Optional[Path] = typer.Option(None, help="look only here")):
    """Check checksums, parse every file and count images per class. Exit 0 only if all is good."""
    from .api import verify_dataset

    try:
        s = verify_dataset(name, root)
    except PetriError as e:
        fail(e)
    console.print(f"{s['name']}: OK — {s['folder']}: checksums match; train {s['train']} images, "
                  f"test {s['test']} images", soft_wrap=True)
    console.print(f"  train per class: {s['train_per_class']}")
    console.print(f"  test per class:  {s['test_per_class']}")
    if s.get("note"):
        console.print(f"  note: {s['note']}", soft_wrap=True, markup=False, highlight=False)


@data_app.command("fetch")
def data_fetch(name: str, root: Optional[Path] = typer.Option(
        None, help="download into this folder (default: the user cache; PETRI_DATA only if you name it here)")):
    """Download missing files (PETRI_MIRROR first if set), verify and cache them."""
    from .api import fetch_dataset

    try:
        where = fetch_dataset(name, root)
    except PetriError as e:
        fail(e)
    console.print(f"{name}: present and verified" + (f" in {where}" if where else ""), soft_wrap=True)


@app.command("train")
def train_cmd(
    data: str = typer.Option("mnist", help="data set name"),
    model: str = typer.Option('{"name": "mlp", "hidden": [64]}', help="model spec as JSON"),
    optimizer: str = typer.Option('{"name": "adam", "lr": 1e-3}', help="optimiser spec as JSON"),
    epochs: int = typer.Option(4, help="epochs"),
    batch_size: int = typer.Option(100, help="images per step"),
    seed: int = typer.Option(0, help="seed (initial weights and data order)"),
    train_size: Optional[int] = typer.Option(None, help="training subset size (images)"),
    device: str = typer.Option("auto", help="auto, cpu or cuda"),
):
    """Train one model and print its per-epoch log (no study, no ledger)."""
    import re

    from .api import fit

    def log(m):
        if m["epoch"] == 1:
            console.print("epoch  train/loss  train/acc  test/loss  test/acc  images/s   seconds")
        test = f"{m['test_loss']:9.4f}  {m['test_acc']:8.4f}" if m["test_acc"] is not None else f"{'—':>9}  {'—':>8}"
        console.print(f"{m['epoch']:5d}  {m['train_loss']:10.4f}  {m['train_acc']:9.4f}  {test}  "
                      f"{m['images_per_s']:8,.0f}  {m['seconds']:8.2f}")

    try:
        recipe = {"model": _json(model, "--model"), "optimizer": _json(optimizer, "--optimizer"), "epochs": epochs,
                  "batch_size": batch_size, "train_size": train_size, "device": device}
        trained = fit(recipe, data, seed, on_epoch=log)
    except PetriError as e:  # the recipe is made of options here: name them ("--model.layers[3]: ...")
        fail(type(e)(re.sub(r"^recipe\.(\w+)", lambda f: "--" + f[1].replace("_", "-"), str(e))))
    console.print(f"status: {trained.status}")


@app.command("models")
def models_cmd(name: Optional[str] = typer.Argument(None, help="a preset, layer, optimizer, schedule or treatment "
                                                  "to describe in full"),
               plugins: Optional[list[str]] = typer.Option(None, "--plugins", help="a plugin (Python file or module) "
                                                           "whose models and treatments to include; repeatable")):
    """Presets, layers, optimizers, schedules and treatments: their parameters with types, defaults and descriptions."""
    from rich.markup import escape

    from . import plugins as load_plugins
    from .api import catalog

    try:
        load_plugins.load([load_plugins.resolve(p, Path.cwd()) for p in plugins or []], "--plugins")
    except PetriError as e:
        fail(e)

    if name is not None:
        try:
            rows = catalog(name)
        except PetriError as e:
            fail(e)
        for _, entry in catalog().query("name == @name").iterrows():
            kind = entry["kind"]
            part = rows[rows["kind"] == kind]
            console.print(f"[bold]{escape(name)}[/bold] ({kind}): {escape(entry['about'])}"
                          + ("" if len(part) else "; no parameters"))
            if not len(part):
                continue
            table = Table("parameter", "type", "default", "description")
            for _, r in part.iterrows():
                table.add_row(*(escape(r[c]) for c in ("parameter", "type", "default", "description")))
            console.print(table)
        return
    for kind, part in catalog().groupby("kind", sort=False):
        table = Table(Column(kind, no_wrap=True), "parameters (default)", "what it is", title=f"{kind}s")
        for _, r in part.iterrows():
            table.add_row(r["name"], escape(r["parameters"]) or "—", escape(r["about"]))
        console.print(table)
    console.print("`petri models NAME` describes one in full. A study writes a network as "
                  "model = [\"flatten\", { name = \"dense\", units = 64 }, \"relu\", { name = \"dense\", units = \"classes\" }]",
                  markup=False, highlight=False)


@app.command("preview")
def preview_cmd(
    study: Path = typer.Argument(..., help="study file"),
    variant: Optional[list[str]] = typer.Option(None, "--variant", help="a variant to show (repeatable; default all)"),
    n: int = typer.Option(8, "--n", help="images per row (1..64)"),
    to: Path = typer.Option(Path("preview.png"), "--to", help="PNG to write (an SVG is written beside it)"),
    data: Optional[str] = typer.Option(None, "--data", help="run on another data set"),
    profile: Optional[str] = typer.Option(None, "--profile", help="apply [profiles.NAME]"),
):
    """A grid of each variant's first training and test images after its treatments (as its first cell
    sees them), to check what a treatment does before training on it."""
    from .api import preview
    from .study.spec import load_study

    try:
        path = preview(load_study(study, data, profile), variant or None, n, to)
    except PetriError as e:
        fail(e)
    console.print(str(path))


@app.command("summary")
def summary_cmd(
    model: str = typer.Argument('{"name": "mlp", "hidden": [64]}',
                                help='a model as a study writes it, in JSON or TOML (\'"mnist_cnn"\', \'{ name = "mlp", '
                                     'hidden = [64] }\', a list of layers), or a study file (each variant\'s network)'),
    data: str = typer.Option("mnist", help="data set (sets the input shape and class count)"),
):
    """Per-layer output shape and parameter count of one member (like Keras' model.summary)."""
    from .api import summary
    from .data import get_spec
    from .models import parse_model

    if model.endswith(".toml") or Path(model).is_file():
        return _summarise_study(Path(model))
    try:
        spec = parse_model(_model_text(model, "MODEL"), "MODEL")
        try:
            dspec = get_spec(data)
        except PetriError as e:
            raise _spec_error(f"--data: {e}") from None
        spec.check(dspec.shape, len(dspec.classes), "MODEL")  # errors name the argument, not the API's `model`
        rows = summary(spec, data)
    except PetriError as e:
        fail(e)
    console.print(f"{spec.name} on {dspec.name} (input {'×'.join(map(str, dspec.shape))}, {len(dspec.classes)} classes)")
    console.print(summary_table(rows, dspec.shape))


def _model_text(text: str, option: str):
    """A model written as JSON ('{"name": "mlp"}') or as TOML, as in a study ('{ name = "mlp" }')."""
    import tomllib

    from .errors import SpecError

    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        error = f"{e.msg} at column {e.colno}"
    try:
        return tomllib.loads(f"model = {text}")["model"]
    except tomllib.TOMLDecodeError:
        raise SpecError(f"{option}: neither JSON ({error}) nor a TOML value such as {{ name = \"mlp\", hidden = [64] }} "
                        "or [\"flatten\", { name = \"dense\", units = \"classes\" }]") from None


def _summarise_study(path: Path) -> None:
    """Each distinct network of a study (its variants' first sweep points) on the study's data set."""
    from .api import summary
    from .data import get_spec
    from .study.spec import load_study

    try:
        study = load_study(path)
        dspec = get_spec(study.data)
        nets: dict[str, list[str]] = {}
        specs = {}
        for c in study.cells:
            key = json.dumps(c.recipe.model.model_dump(mode="json"), sort_keys=True)
            if c.variant not in nets.setdefault(key, []):
                nets[key].append(c.variant)
            specs[key] = c.recipe.model
        tables = [(nets[k], specs[k], summary(specs[k], study.data)) for k in nets]
    except PetriError as e:
        fail(e)
    for users, spec, rows in tables:
        console.print(f"{spec.name} on {dspec.name} (input {'×'.join(map(str, dspec.shape))}, {len(dspec.classes)} "
                      f"classes), used by: {', '.join(users)}")
        console.print(summary_table(rows, dspec.shape))


def summary_table(rows, shape) -> Table:
    """``petri.summary``'s DataFrame as a rich table: layer, one member's output shape, parameters per member."""
    table = Table("layer", "output shape", Column("parameters", justify="right"),
                  caption=f"total parameters per member: {int(rows.loc[rows['depth'] == 0, 'params'].sum()):,}")
    table.add_row("input", "×".join(map(str, shape)), "")
    for _, r in rows.iterrows():
        table.add_row(r["layer"], "×".join(map(str, r["output_shape"])), f"{r['params']:,}")
    return table


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
    from . import api
    from .errors import SpecError

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
        _print_summary(out)
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
        _print_summary(directory)
    except PetriError as e:
        fail(e)


@app.command("export")
def export_cmd(
    directory: Path = typer.Argument(..., help="study directory"),
    format: str = typer.Option("csv", "--format", help="csv, parquet or json"),
    to: Optional[Path] = typer.Option(None, "--to", help="output folder (default: DIR/export)"),
):
    """Write cell-level and epoch-level tables."""
    from .api import open_study

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
    from .api import open_study

    try:
        pt = _json(point, "--point") if point else None
        if pt is not None and not isinstance(pt, dict):
            raise _spec_error("--point: must be a JSON object such as {\"lr\": 0.1}")
        path = open_study(directory).save_weights(variant, seed, to, pt, best)
    except PetriError as e:
        fail(e)
    console.print(str(path))


def _spec_error(message: str):
    from .errors import SpecError

    return SpecError(message)


def _print_summary(directory: Path) -> None:
    """`petri show`: one snapshot of the study (one read of its ledger), every table from it."""
    from .api import open_study

    _print_view(open_study(directory).view(), directory)


def _print_view(v, directory: Path | None) -> None:
    """The tables of one view of a study (or of a table of runs: ``directory`` None)."""
    from .machine import mixed_note
    from .report import text
    from .analysis.variance import noise
    from .study.cellstore import disk_usage
    from .study.runner import human_bytes

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


@app.command("plan")
def plan_cmd(directory: Path = typer.Argument(..., help="study directory (holding petri.sqlite)"),
             detect: float = typer.Option(..., "--detect", help="the smallest true difference to detect: percentage "
                                          "points for accuracies, else the metric's units")):
    """How many seeds each comparison of a finished study needs to detect --detect with 80 % power."""
    from .api import open_study
    from .errors import SpecError

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
        from .analysis.family import pairing_gain
        from .analysis.columns import number

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
    from .analysis.external import describe
    from .api import analyse

    try:
        results = analyse(table, metric, baseline, compare, margin, failed, axis, test_size, classes, config)
        console.print(describe(results.snapshot()), markup=False, highlight=False, soft_wrap=True)
        _print_view(results.view(), None)
        if report is not None:
            console.print(f"report: {results.report(report)}")
    except PetriError as e:
        fail(e)


@app.command("report")
def report_cmd(directory: Path = typer.Argument(..., help="study directory (holding petri.sqlite)"),
               to: Optional[Path] = typer.Option(None, "--to", help="write the report here instead of DIR/report")):
    """Write DIR/report/: index.html (self-contained), report.md, figures (PNG + SVG), cells.csv, variants.csv."""
    from .api import open_study

    try:
        console.print(f"report: {open_study(directory).report(to)}")
    except PetriError as e:
        fail(e)



def _json(text: str, option: str):
    from .errors import SpecError

    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError(f"{option}: not valid JSON ({e.msg} at column {e.colno})") from None


def main(argv: list[str] | None = None) -> int:
    """The console entry point: a bad command line is one line (`petri: error: ...`, exit 2), not a box;
    PETRI_DEBUG=1 shows tracebacks of unexpected errors."""
    import os

    from typer._click import exceptions as cx  # typer carries its own click

    try:
        code = app(args=argv, prog_name="petri", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except cx.NoArgsIsHelpError as e:  # `petri` alone, or a group alone: its help, as usual
        console.print(e.ctx.get_help(), markup=False, highlight=False)
        return 0
    except cx.UsageError as e:
        where = f" (see `{e.ctx.command_path} --help`)" if getattr(e, "ctx", None) else ""
        err_console.print(f"petri: error: {' '.join(e.format_message().split())}{where}", markup=False,
                          highlight=False, soft_wrap=True)
        return 2
    except cx.ClickException as e:
        err_console.print(f"petri: error: {' '.join(e.format_message().split())}", markup=False, highlight=False,
                          soft_wrap=True)
        return e.exit_code
    except typer.Exit as e:
        return e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("petri: interrupted", markup=False)
        return 130
    except PetriError as e:
        err_console.print(f"petri: error: {e}", markup=False, highlight=False, soft_wrap=True)
        return e.exit_code
    except Exception as e:  # noqa: BLE001 - a bug of petri's: one line, and the traceback on request
        if os.environ.get("PETRI_DEBUG"):
            raise
        err_console.print(f"petri: internal error: {type(e).__name__}: {' '.join(str(e).split())[:500]} "
                          "(PETRI_DEBUG=1 shows the traceback; please report it)", markup=False, highlight=False,
                          soft_wrap=True)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
