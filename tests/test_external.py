"""petri's statistics for runs made elsewhere (analysis/external.py, petri.analyse, `petri analyse`): a
table of runs gets the same family, verdicts, noise decomposition and report as a study; bad tables are
one line each."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import petri
from petri.cli import app
from petri.errors import SpecError


def _runs(seeds: int = 6, effect: float = 0.02) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    shared = rng.normal(0, 0.004, seeds)
    rows = []
    for v, shift in (("plain", 0.0), ("bn", effect), ("bn-copy", 0.0)):
        for s in range(seeds):
            acc = round(0.9 + shift + shared[s] + rng.normal(0, 0.002), 4)
            rows.append({"variant": v, "seed": s, "test_acc": acc, "test_loss": 1.4 * (1 - acc) + rng.normal(0, 0.001),
                         "run_id": f"wandb-{v}-{s}"})
    return pd.DataFrame(rows)


def test_a_table_of_runs_gets_the_studys_comparisons():
    r = petri.analyse(_runs(), test_size=10000)
    eff = r.effects()
    assert list(eff["variant"]) == ["plain", "bn", "bn-copy"] and eff.loc[0, "verdict"] == "baseline"
    bn = eff[eff["variant"] == "bn"].iloc[0]
    assert bn["verdict"] == "better" and bn["diff"] == pytest.approx(0.02, abs=0.003) and bn["method"] == "paired t"
    assert (r.comparisons()["family_size"] == 2).all()
    metrics = r.metrics()
    assert set(metrics["metric"]) >= {"test_acc", "test_loss"}  # every numeric column is a recorded metric
    # the same table, asked another question: one comparison, a margin, another metric
    asked = petri.analyse(_runs(), compare=["bn-copy - plain"], margin=1.0, test_size=10000)
    c = asked.comparisons().iloc[0]
    assert c["verdict"] == "equivalent" and c["margin"] == pytest.approx(0.01)
    assert petri.analyse(_runs(), metric="test_loss").comparisons().iloc[0]["verdict"] == "better"  # lower is better


def test_crossed_seed_columns_are_analysed_as_crossed_sources(tmp_path):
    rng = np.random.default_rng(2)
    rows = []
    for v in ("a", "b"):
        init, order = rng.normal(0, 0.01, 4), rng.normal(0, 0.01, 4)
        for i in range(4):
            for o in range(4):
                rows.append({"variant": v, "seed_init": i, "seed_order": o,
                             "test_acc": 0.9 + init[i] + order[o] + rng.normal(0, 0.002)})
    path = tmp_path / "runs.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    r = petri.analyse(path)
    c = r.comparisons().iloc[0]
    assert c["method"] == "crossed random effects" and c["n"] == 16 and c["df"] < 15
    noise = r.noise()
    assert set(noise["source"]) >= {"init", "order", "residual"}
    assert list(r.cells().columns[:4]) == ["variant", "seed", "seed_init", "seed_order"]
    index = r.report(tmp_path / "report")
    md = (index.parent / "report.md").read_text()
    assert "## Where the noise comes from" in md and "crossed random-effects model" in md
    assert (index.parent / "comparisons.csv").is_file() and "Recipes" not in md  # nothing of a study to show


def test_a_source_that_left_every_run_unchanged_is_one_cell_seen_again():
    """A one-bit perturbation an MLP's training does not feel: every run is bitwise the same across the
    perturb seeds (losses included), so its 4 × 3 places are 4 trainings — the t over the init seeds —
    not 12 draws; where the runs do differ across perturb, it stays a source."""
    rng = np.random.default_rng(4)
    rows = []
    for v in ("a", "b"):
        init = rng.normal(0, 0.01, 4)
        for i in range(4):
            loss = float(rng.normal(0.3, 0.01))
            for p in range(3):
                rows.append({"variant": v, "seed_init": i, "seed_perturb": p, "test_acc": 0.9 + init[i],
                             "train_loss": loss, "test_loss": loss + 0.01})
    table = pd.DataFrame(rows)
    r = petri.analyse(table, test_size=10000)
    c = r.comparisons().iloc[0]
    d = table[table["seed_perturb"] == 0].set_index("seed_init")
    diffs = d[d["variant"] == "b"]["test_acc"] - d[d["variant"] == "a"]["test_acc"]
    assert c["df"] == 3 and c["se"] == pytest.approx(diffs.std() / 2) and r.view().findings.family[0].est.n == 4
    assert set(r.view().snapshot.uses().values()) == {frozenset({"init"})}
    table.loc[table["seed_perturb"] == 1, "train_loss"] += 1e-7  # the runs differ: perturb is drawn from
    assert set(petri.analyse(table, test_size=10000).view().snapshot.uses().values()) == {frozenset({"init", "perturb"})}


def test_sweep_axes_status_and_failed_runs():
    df = _runs()
    df["lr"] = 0.1
    more = df.copy()
    more["lr"] = 1.0
    table = pd.concat([df, more], ignore_index=True)
    table["status"] = "done"
    table.loc[(table["variant"] == "bn") & (table["lr"] == 1.0) & (table["seed"] < 2), ["status", "test_acc"]] = \
        ["diverged", np.nan]
    r = petri.analyse(table, axes=["lr"], compare=["bn - plain"], test_size=10000)
    comps = r.comparisons()
    high = comps[comps["at"] == "lr=1"].iloc[0]
    assert high["verdict"] == "withheld" and high["failed_a"] == 2 and "diverged" in high["reason"]
    assert comps[comps["at"] == "lr=0.1"].iloc[0]["verdict"] == "better"
    counted = petri.analyse(table, axes=["lr"], compare=["bn - plain"], failed="chance", classes=10)
    high = counted.comparisons().query("at == 'lr=1'").iloc[0]
    assert high["verdict"] == "no detectable difference" and high["n"] == 6  # at 1/10: a huge spread, no verdict


@pytest.mark.parametrize("edit,message", [
    (lambda d: d.drop(columns="variant"), "no 'variant' column"),
    (lambda d: d.drop(columns="seed"), "no 'seed' column"),
    (lambda d: d[d["seed"] == 0], "every variant has one run: a comparison needs 2 seeds"),
    (lambda d: pd.concat([d, d.iloc[:1]]), "rows 2 and 20 are the same run (variant, seed alike)"),
    (lambda d: d.assign(test_acc=d["test_acc"].astype(object).where(d.index != 3, "n/a")),
     "test_acc: row 5 holds 'n/a', not a number"),
    (lambda d: d.assign(status="ok"), "status: 'ok' is not a status; allowed: pending"),
    (lambda d: d.assign(test_acc=d["test_acc"].where(d.index != 4)), "test_acc: row 6 is empty; add a status column"),
    (lambda d: d.assign(seed_init=d["seed"]), "both 'seed' and seed_<source> columns"),
])
def test_bad_tables_are_one_line_each(edit, message):
    with pytest.raises(SpecError) as e:
        petri.analyse(edit(_runs()))
    assert message in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_bad_options_are_one_line_each(tmp_path):
    for kw, message in [({"metric": "accuracy"}, "'accuracy' is not a column of table"),
                        ({"compare": ["bn - nope"]}, "'nope' is not a variant"),
                        ({"baseline": "nope"}, "baseline: 'nope' is not a variant"),
                        ({"axes": ["lr"]}, "axes: no column 'lr'"),
                        ({"test_size": 1}, "test_size: an integer >= 2"),
                        ({"failed": "chance", "metric": "test_loss"}, "the metric must be an accuracy")]:
        with pytest.raises(SpecError, match=None) as e:
            petri.analyse(_runs(), **kw)
        assert message in str(e.value), (kw, str(e.value))
    with pytest.raises(SpecError, match="no such file"):
        petri.analyse(tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_bytes(b"\x00\x01\x02garbage")
    with pytest.raises(SpecError, match="bad.csv"):
        petri.analyse(tmp_path / "bad.csv")
    conf = tmp_path / "a.toml"
    conf.write_text("baseline = 'plain'\nwho = 1\n")
    with pytest.raises(SpecError, match="a.toml: unknown field 'who'; allowed: analysis, baseline"):
        petri.analyse(_runs(), config=conf)


def test_the_command_line(tmp_path):
    path = tmp_path / "runs.csv"
    _runs().to_csv(path, index=False)
    conf = tmp_path / "analysis.toml"
    conf.write_text('baseline = "plain"\ntest_size = 10000\n[analysis]\ncompare = ["bn - plain"]\n')
    runner = CliRunner()
    r = runner.invoke(app, ["analyse", str(path), "--config", str(conf), "--report", str(tmp_path / "rep")],
                      env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    assert "18 runs of 3 variants" in r.output and "bn − plain" in r.output and "better" in r.output
    assert (tmp_path / "rep" / "index.html").is_file()
    r = runner.invoke(app, ["analyse", str(path), "--metric", "nope"])
    assert r.exit_code == 2 and r.stderr.startswith("petri: error:") and "'nope' is not a column" in r.stderr
