"""The results side pinned on every shipped study (and a crossed one): findings, comparisons, noise
tables, CSVs and `petri show` on ledgers written from a known model (tests/ledgers.py), compared with
tests/golden/<study>.json. A change to any number or line shows here; a deliberate one is written with
PETRI_UPDATE_GOLDEN=1 and reviewed in the diff."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

import petri
from petri.cli import app
from petri.study.spec import load_study

from ledgers import canonical, write

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "golden"
STUDIES = sorted(p.stem for p in (ROOT / "studies").glob("*.toml"))


def outputs(directory: Path, report: bool) -> dict:
    r = petri.open_study(directory)
    out = {"effects": r.effects().to_dict("records"), "comparisons": r.comparisons().to_dict("records")}
    noise, pairing = r.noise(), r.pairing()
    out["noise"] = None if noise is None else noise.to_dict("records")
    out["pairing"] = None if pairing is None else pairing.to_dict("records")
    show = CliRunner().invoke(app, ["show", str(directory)])
    assert show.exit_code == 0, show.output
    out["show"] = [line.rstrip() for line in show.stdout.splitlines()[1:]]  # (the first line names the folder)
    if report:
        folder = Path(r.report()).parent
        for csv in sorted(folder.glob("*.csv")):
            text = csv.read_text()
            if csv.name == "cells.csv":  # (its seconds are the ledger writer's wall time)
                import pandas as pd

                text = pd.read_csv(csv).drop(columns="seconds").to_csv(index=False)
            out[csv.name] = text.splitlines() if csv.name != "cells.csv" else hashlib.sha256(text.encode()).hexdigest()
    return out


@pytest.mark.parametrize("name", STUDIES)
def test_shipped_study_results_are_pinned(name, tmp_path):
    study = load_study(ROOT / "studies" / f"{name}.toml")
    write(study, tmp_path / name)
    got = canonical(outputs(tmp_path / name, report=len(study.cells) <= 200))
    path = GOLDEN / f"{name}.json"
    if os.environ.get("PETRI_GOLDEN_OUT"):  # to compare by hand: write what it gives elsewhere
        (Path(os.environ["PETRI_GOLDEN_OUT"]) / f"{name}.json").write_text(got + "\n")
    if os.environ.get("PETRI_UPDATE_GOLDEN") or not path.exists():
        path.write_text(got + "\n")
    assert got + "\n" == path.read_text(), f"{name}: results differ from {path} (PETRI_UPDATE_GOLDEN=1 rewrites it)"
