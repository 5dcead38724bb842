"""Commands that look before a study: ``train`` (one model, no ledger), ``models`` (what a study can name),
``preview`` (what treatments do) and ``summary`` (a network's layers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Column, Table

from ..errors import PetriError
from .base import app, console, fail, option_error, parse_json


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

    from ..explore import fit

    def log(m):
        if m["epoch"] == 1:
            console.print("epoch  train/loss  train/acc  test/loss  test/acc  images/s   seconds")
        test = f"{m['test_loss']:9.4f}  {m['test_acc']:8.4f}" if m["test_acc"] is not None else f"{'—':>9}  {'—':>8}"
        console.print(f"{m['epoch']:5d}  {m['train_loss']:10.4f}  {m['train_acc']:9.4f}  {test}  "
                      f"{m['images_per_s']:8,.0f}  {m['seconds']:8.2f}")

    try:
        recipe = {"model": parse_json(model, "--model"), "optimizer": parse_json(optimizer, "--optimizer"), "epochs": epochs,
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

    from ..study import plugins as load_plugins
    from ..explore import catalog

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
    from ..explore import preview
    from ..study.spec import load_study

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
    from ..explore import summary
    from ..data import get_spec
    from ..models import parse_model

    if model.endswith(".toml") or Path(model).is_file():
        return _summarise_study(Path(model))
    try:
        spec = parse_model(_model_text(model, "MODEL"), "MODEL")
        try:
            dspec = get_spec(data)
        except PetriError as e:
            raise option_error(f"--data: {e}") from None
        spec.check(dspec.shape, len(dspec.classes), "MODEL")  # errors name the argument, not the API's `model`
        rows = summary(spec, data)
    except PetriError as e:
        fail(e)
    console.print(f"{spec.name} on {dspec.name} (input {'×'.join(map(str, dspec.shape))}, {len(dspec.classes)} classes)")
    console.print(summary_table(rows, dspec.shape))


def _model_text(text: str, option: str):
    """A model written as JSON ('{"name": "mlp"}') or as TOML, as in a study ('{ name = "mlp" }')."""
    import tomllib

    from ..errors import SpecError

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
    from ..explore import summary
    from ..data import get_spec
    from ..study.spec import load_study

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
