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

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .errors import PetriError, PlaceError, SpecError
from .results import Results
from .study.spec import Study, parse_study

if TYPE_CHECKING:
    from .models import ModelSpec

METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "train_eval_loss", "train_eval_acc")


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

    from .analysis.family import target_met
    from .report import looks as look
    from .study.ledger import Ledger
    from .study.runner import run_study

    rule, trained, looks = study.adaptive, 0, []
    for n in rule.rounds():
        now = parse_study(study.text, study.path, study.data_override, study.profile,
                          Path(study.path).parent if Path(study.path).is_file() else None, n)
        trained += run_study(now, out, **kw).get("trained", 0)
        f = Results(out).view().findings
        met = target_met(f.family, rule.until, rule.width)
        looks.append(look.record(f.family, n, met))
        last = met or n == rule.max
        reason = (f"target met: {look.target(rule, f.analysis.percent, f.analysis.metric)}" if met else
                  f"max reached ({rule.max} seeds)") if last else None
        ledger = Ledger(out, create=True)
        try:
            ledger.note("adaptive", {"looks": looks, "stopped": reason, "at": time.time() if last else None,
                                     "rule": {"min": rule.min, "max": rule.max, "step": rule.step, "until": rule.until,
                                              "width": rule.width},
                                     "metric": f.analysis.metric, "percent": f.analysis.percent})
        finally:
            ledger.close()
        percent, unit = f.analysis.percent, f.analysis.metric
        console.print("\n".join([f"{study.name}: look {len(looks)} of at most {rule.looks}, {n} seeds; "
                                 + look.headline(looks[-1], rule, percent, unit)
                                 + (f"; stopped: {reason}" if last else "; more seeds"),
                                 *look.lines(looks[-1], rule, percent, unit)]),
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


def analyse(table, metric: str = "test_acc", baseline: str | None = None, compare: list | None = None,
            margin: float | None = None, failed: str = "withhold", axes: list[str] | None = None,
            test_size: int | None = None, classes: int | None = None, config: str | Path | None = None,
            name: str | None = None, looks: int = 1) -> Results:
    """petri's statistics for runs made elsewhere: ``table`` (a CSV or Parquet path, or a pandas
    DataFrame; e.g. a W&B or MLflow export) has one row per run with ``variant``, ``seed`` (or one
    ``seed_<source>`` column per random source: crossed sources), the sweep ``axes`` you name, the
    ``metric`` column compared and optionally ``status`` (done, diverged, ...). The options are a study's
    ``[analysis]`` table — ``compare`` (["a - b", ...]), ``margin`` (percentage points for accuracies),
    ``failed`` ("withhold" or "chance") — plus the ``baseline`` (default: the first variant),
    ``test_size`` (test images behind an accuracy: its step of one image, and the binomial noise that
    "at chance" is judged with) and ``classes``; or ``config``, a TOML file with the same keys (an
    ``[analysis]`` table beside ``baseline``, ``axes``, ``test_size``, ``classes``). Returns a
    ``Results`` with the same ``effects()``, ``comparisons()``, ``noise()``, ``metrics()`` and
    ``report(to=...)`` as a petri study. ``looks``: how many times a sequential procedure may look at
    these comparisons (an adaptive design: α is split over the looks, as petri's adaptive seeds do)."""
    import tomllib

    from .analysis.external import read_table, snapshot
    from .specs import echo
    from .study.questions import parse_analysis

    where = str(table) if isinstance(table, (str, Path)) else "table"
    raw = {"metric": metric, "failed": failed, **({"compare": list(compare)} if compare else {}),
           **({"margin": margin} if margin is not None else {})}
    opts = {"baseline": baseline, "axes": axes, "test_size": test_size, "classes": classes}
    if config is not None:
        try:
            conf = tomllib.loads(Path(config).read_text())
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise SpecError(f"{config}: cannot read it as TOML ({e})") from None
        extra = set(conf) - {"analysis", *opts}
        if extra:
            raise SpecError(f"{config}: unknown field {echo(sorted(extra)[0])}; allowed: analysis, {', '.join(opts)}")
        raw |= conf.get("analysis", {})
        opts |= {k: v for k, v in conf.items() if k != "analysis" and opts.get(k) is None}
        where_conf = str(config)
    else:
        where_conf = where
    for k in ("test_size", "classes"):
        v = opts[k]
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 2):
            raise SpecError(f"{where_conf}: {k}: an integer >= 2 (got {echo(v)})")
    if opts["axes"] is not None and not (isinstance(opts["axes"], list) and all(isinstance(a, str) for a in opts["axes"])):
        raise SpecError(f"{where_conf}: axes: a list of column names (got {echo(opts['axes'])})")
    df = read_table(table, where)

    def column(name, w):
        if not isinstance(name, str) or name not in df.columns:
            raise SpecError(f"{w}: {echo(name)} is not a column of {where}; columns: {', '.join(map(str, df.columns))}")
        return name

    variants = {str(v): {} for v in dict.fromkeys(df["variant"])} if "variant" in df.columns else {}
    analysis = parse_analysis(raw, variants, where_conf, metric_ok=column) if variants else None
    if isinstance(looks, bool) or not isinstance(looks, int) or looks < 1:
        raise SpecError(f"looks: a positive integer (got {echo(looks)})")
    if analysis is not None:
        analysis.looks = looks
    if analysis is None:
        raise SpecError(f"{where}: no 'variant' column; a table of runs has variant, seed (or seed_<source> per "
                        "random source), the metric columns and optionally status and sweep axes")
    snap = snapshot(df, where, analysis, opts["baseline"], opts["axes"], opts["test_size"], opts["classes"], name)
    return Results(snapshot=snap)


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

    from .specs import describe_fields, first_paragraph

    registries = _registries()
    if name is None:
        rows = [{"kind": kind, "name": n,
                 "parameters": ", ".join(p if d == "required" else f"{p}={d}" for p, _, d, _ in describe_fields(cls)),
                 "about": getattr(cls, "about", "") or first_paragraph(cls.__doc__)}
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
    from .plugins import code
    from .treatments import TREATMENTS
    from .treatments.base import Treatment

    if not (isinstance(cls, type) and issubclass(cls, Treatment)):
        raise SpecError(f"register_treatment: {cls!r} is not a subclass of petri.Treatment")
    if "name" not in cls.model_fields or cls.model_fields["name"].is_required():
        raise SpecError(f"register_treatment: {cls.__name__} needs a name field with a default, e.g. "
                        "name: Literal[\"brightness\"] = \"brightness\"")
    cls.code = code(cls)
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
