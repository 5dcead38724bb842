"""petri from Python: the public API for studies (load, run, dry-run, open, analyse). Every CLI command
is one call of the public API; the rest of it: ``explore.py`` (fit, summary, catalog, preview) and
``data/public.py`` (datasets, register, verify, fetch, save), re-exported lazily by ``petri/__init__.py``.

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
import sys
from dataclasses import replace
from pathlib import Path

from .errors import SpecError
from .results import Results
from .study.spec import Study, parse_study


def load_study(source: str | Path | dict, data: str | None = None, profile: str | None = None) -> Study:
    """A study from a TOML file's path, a TOML string, or a dict (the same structure as the file).

    ``data`` runs it on another data set (a name, or your .npz / image folder); ``profile`` applies
    its ``[profiles.NAME]``."""
    from .study.spec import load_study as _load

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
    trained = run_study(study, out, executor=executor, address=address, max_members=max_members, console=console,
                        checkpoint_minutes=checkpoint_minutes, changed=changed, judge=_look).get("trained", 0)
    results = Results(out)
    results.trained = trained
    from .report.build import complete

    if report and (results.trained or not complete(out)):  # a report a killed run left unwritten is written now
        results.report()
    return results


def _look(out: Path, study: Study):
    """An adaptive study's look after a round (``study.rounds``): every comparison of the folder as it
    stands, against the study's target."""
    from .analysis.family import target_met
    from .report import looks
    from .study.rounds import Look

    rule, f = study.adaptive, Results(out).view().findings
    met = target_met(f.family, rule.until, rule.width)
    record = looks.record(f.family, len(study.seeds), met)
    percent, unit = f.analysis.percent, f.analysis.metric
    return Look(record, met, looks.target(rule, percent, unit), unit, percent,
                looks.headline(record, rule, percent, unit), looks.lines(record, rule, percent, unit))


def dry_run(study: Study | str | Path | dict, out: str | Path | None = None, max_members: int | None = None,
            changed: bool = False) -> list[str]:
    """What ``run`` would do, in lines: cells, packs, memory, disk, the time it will take on this machine
    (training, evaluation, checkpoints, start-up, report; an adaptive study's first round and most
    seeds), and missing data files. Where ``run`` would refuse (another study's ledger, a plugin or data
    file changed since the folder's cells ran, ``out`` a file) it raises the same error. Reads an
    existing ledger (to skip finished cells), never writes one."""
    from .study.planner import dry_run as plan_lines

    study = study if isinstance(study, Study) else load_study(study)
    return plan_lines(study, Path(out) if out is not None else Path("runs") / study.name, max_members, changed)


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
        analysis = replace(analysis, looks=looks)
    if analysis is None:
        raise SpecError(f"{where}: no 'variant' column; a table of runs has variant, seed (or seed_<source> per "
                        "random source), the metric columns and optionally status and sweep axes")
    snap = snapshot(df, where, analysis, opts["baseline"], opts["axes"], opts["test_size"], opts["classes"], name)
    return Results(snapshot=snap)
