"""Sweeps: a grid point equal to the baseline (trained once, shown in both places), a baseline inside a
sweep and its reference point, comparisons inside a sweep, and the heatmaps, forest plot and curves
of a swept study."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
from typer.testing import CliRunner

from petri.analysis.findings import findings
from petri.analysis.records import load
from petri.cli import app
from petri.errors import SpecError
from petri.report.build import build_report
from petri.study.runner import run_study
from petri.study.spec import parse_study

runner = CliRunner()


GRID = """
name = "grid"
data = "mnist"
seeds = 3
baseline = "base"

[recipe]
model = {{ name = "mlp", hidden = [16] }}
optimizer = {{ name = "sgd", lr = 0.1 }}
batch_size = 128
epochs = 2
train_size = 2048
test_size = 500

[variants.base]

[variants.grid]
recipe = {{ optimizer = {{ name = "sgd", lr = {{ values = [1.0, 0.01, 0.1] }} }}, batch_size = {{ values = [512, 32, 128] }} }}
{extra}"""


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    out = tmp_path_factory.mktemp("grid")
    study = parse_study(GRID.format(extra=""))
    run_study(study, out)
    return out, study


def test_a_grid_point_equal_to_the_baseline_is_trained_once_and_shown_in_both_places(grid):
    out, study = grid
    assert len(study.cells) == 30 and len({c.hash for c in study.cells}) == 27
    db = sqlite3.connect(out / "petri.sqlite")
    assert db.execute("SELECT COUNT(*) FROM cells").fetchone()[0] == 27  # trained once
    places = load(out).places
    assert len(places) == 30 and {str(p.status) for p in places} == {"done"}
    r = runner.invoke(app, ["show", str(out)], env={"COLUMNS": "250"})
    assert r.exit_code == 0 and "grid: 30 cells — 30 done" in r.output
    grid_rows = [line for line in r.output.splitlines() if line.startswith("│ grid")]
    assert len(grid_rows) == 9
    assert "lr=0.1, batch_size=128" in "".join(grid_rows)
    same = next(line for line in grid_rows if "lr=0.1, batch_size=128" in line)
    assert "same cells as the reference" in same
    points = [line.split("│")[2].strip() for line in grid_rows]  # numbers as numbers
    assert points[:3] == ["lr=0.01, batch_size=32", "lr=0.01, batch_size=128", "lr=0.01, batch_size=512"]
    md = (build_report(out).parent / "report.md").read_text()
    base = next(line for line in md.splitlines() if line.startswith("| base |"))
    assert base.split("|")[6].strip() == "2"  # its epochs counted once, though it fills two places


def test_heatmap_has_no_hole_numeric_order_and_the_dry_run_counts(grid, tmp_path):
    out, study = grid
    from petri.report import figures
    rows = findings(load(out)).rows
    fig = figures.heatmaps(rows, "grid", ("lr", "batch_size"))
    left = fig.axes[0]
    data = left.images[0].get_array()
    assert not data.mask.any() if hasattr(data, "mask") else True
    import numpy as np

    assert np.isfinite(np.asarray(data)).all()  # no white hole
    assert [t.get_text() for t in left.get_xticklabels()] == ["32", "128", "512"]  # numbers as numbers
    assert [t.get_text() for t in left.get_yticklabels()] == ["0.01", "0.1", "1.0"]
    f = tmp_path / "grid.toml"
    f.write_text(GRID.format(extra=""))
    r = runner.invoke(app, ["run", str(f), "--dry-run", "--out", str(tmp_path / "o")], env={"COLUMNS": "250"})
    assert r.exit_code == 0
    assert ("30 cells (2 variants with 10 sweep points × 3 seeds; 3 of them the same cell as another place "
            "(trained once)); 0 already finished, 27 to train") in r.output
    # the estimate: the whole run's time by part; each pack its measured rate and why it is apart
    assert re.search(r"training images in all: about [\d.,]+ (s|min) \(start-up and packing [\d.,]+ (s|min), training "
                     r"[\d.,]+ (s|min), evaluation [\d.,]+ (s|min), .*report [\d.,]+ (s|min)\) on this machine", r.output), r.output
    assert re.search(r"~[\d,]+ img/s — its own pack: ", r.output), r.output


def test_comparisons_inside_a_sweep(tmp_path):
    text = GRID.format(extra="").replace('baseline = "base"', 'baseline = "grid"\nbaseline_point = { lr = 0.1, batch_size = 128 }')
    study = parse_study(text)
    assert study.reference == "'grid' at lr=0.1, batch_size=128"
    out = tmp_path / "o"
    run_study(study, out)
    rows = findings(load(out)).rows
    ref = [r for r in rows if r.verdict == "baseline"]
    assert len(ref) == 1 and ref[0].point == {"lr": 0.1, "batch_size": 128}
    assert sum(1 for r in rows if r.effect) == 8  # the other 8 grid points; base holds the reference's cells
    assert next(r for r in rows if r.variant == "base").verdict == "same cells as the reference"
    md = (build_report(out).parent / "report.md").read_text()
    assert "Reference: 'grid' at lr=0.1, batch_size=128" in md and "against 'grid' at lr=0.1, batch_size=128" in md
    with pytest.raises(SpecError, match=r'baseline_point = "best" would choose the reference on the test set.*add '
                                         r"val_size to 'grid'"):
        parse_study(text.replace("baseline_point = { lr = 0.1, batch_size = 128 }", 'baseline_point = "best"'))


@pytest.mark.parametrize("edit,msg", [
    (('baseline = "base"', 'baseline = "grid"\nbaseline_point = { lr = 0.5, batch_size = 128 }'),
     r"baseline_point: no point of 'grid' has lr=0.5, batch_size=128; its points have lr: 1.0, 0.01, 0.1; "
     r"batch_size: 512, 32, 128"),
    (('baseline = "base"', 'baseline = "grid"\nbaseline_point = { lr = 0.1 }'),
     r"baseline_point: 'grid' sweeps lr, batch_size; give a value for each \(got lr\)"),
    (('baseline = "base"', 'baseline = "grid"\nbaseline_point = 3'), r"baseline_point: a table of 'grid'"),
])
def test_bad_baseline_points(edit, msg):
    with pytest.raises(SpecError, match=msg):
        parse_study(GRID.format(extra="").replace(*edit))


def test_a_swept_baseline_without_a_point_is_a_warning_at_parse_time(tmp_path):
    swept = GRID.format(extra="").replace('baseline = "base"', 'baseline = "grid"')
    s = parse_study(swept)
    assert len(s.warnings) == 1 and "nothing is compared; set baseline_point = { lr = ..., batch_size = ... }" in s.warnings[0]
    alone = GRID.format(extra="").split("[variants.grid]")[0]
    assert parse_study(alone).warnings == []  # one variant at one point: a study of its noise, nothing to warn of
    f = tmp_path / "s.toml"
    f.write_text(swept)
    r = runner.invoke(app, ["run", str(f), "--dry-run", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0 and r.stderr.startswith("petri: warning: s.toml: baseline 'grid' is a sweep")


def test_report_figures_in_percent_clipped_and_all_linked(grid):
    out, study = grid
    index = build_report(out)
    md = (index.parent / "report.md").read_text()
    html = index.read_text()
    for slug in ("curves", "paired-differences", "heatmap-grid", "throughput"):
        assert f"(figures/{slug}.png)" in md, slug
    assert md.count("![") == html.count("<img")
    assert "**base**" in md and '"eps": 1e-08' not in md  # sgd: its resolved fields, defaults included
    recipe = md.split("**base**")[1].split("```json")[1].split("```")[0]
    assert json.loads(recipe)["recipe"]["schedule"] == {"name": "constant"}  # its own fields (it has none)
    from petri.report import figures

    from petri.report.build import _epoch_dicts

    places = load(out).places
    labels = {(p.key, p.seed): p.variant for p in places}
    fig = figures.curves(_epoch_dicts(places), labels, ["base", "grid"])
    acc = fig.axes[2]
    assert "(%)" in acc.get_title()
    for coll in acc.collections:  # the bands
        for path in coll.get_paths():
            ys = path.vertices[:, 1]
            assert ys.max() <= 100.0 and ys.min() >= 0.0


def test_forest_plot_shows_each_seeds_difference(grid):
    out, study = grid
    from petri.report import figures
    rows = findings(load(out)).rows
    ref = next(r for r in rows if r.verdict == "baseline")
    fig = figures.forest([(r.label, r.effect) for r in rows if r.effect is not None and r is not ref], "Δ (pp)")
    ax = fig.axes[0]
    dots = [c for c in ax.collections if c.get_offsets().shape[0] == 3]
    assert len(dots) == 8  # three seed dots per compared grid point (the one equal to the reference is not compared)
    r = next(r for r in rows if r.point == {"lr": 1.0, "batch_size": 512})
    i = [t.get_text() for t in ax.get_yticklabels()].index(r.label)
    xs = sorted(dots[i].get_offsets()[:, 0])
    assert xs == pytest.approx(sorted(100 * (r.by_seed[s] - ref.by_seed[s]) for s in r.by_seed))


def test_sweep_figures_show_the_analysed_metric_in_its_own_units(tmp_path):
    """A study whose metric is test_loss: the sweep panel plots the loss as it is (not ×100, no train
    accuracy beside it), labelled as the loss, and the report's caption says so."""
    import numpy as np
    import pandas as pd

    import petri
    from petri.report import figures

    rng = np.random.default_rng(0)
    rows = [{"variant": v, "lr": lr, "seed": s, "test_acc": 0.9, "test_loss": 0.3 + 0.1 * lr + rng.normal(0, 0.01)}
            for v, lrs in (("plain", [0.1]), ("bn", [0.1, 0.5, 1.0])) for lr in lrs for s in range(4)]
    r = petri.analyse(pd.DataFrame(rows), axes=["lr"], metric="test_loss", test_size=10000)
    fig = figures.sweeps(r.view().findings.rows, [("bn", "lr")], {}, None, False, "test_loss")
    ax = fig.axes[0]
    means = [r.view().findings.rows[i].mean for i in range(1, 4)]
    assert ax.get_ylabel() == "final test loss" and ax.get_title() == "bn: test loss vs lr"
    assert np.allclose(ax.lines[0].get_ydata(), means) and len(ax.containers) == 1  # no train line
    effects = r.effects()  # the metric's own column and the fixed final-loss column are the same numbers: once
    assert list(effects.columns).count("test_loss") == 1 and effects["test_loss"].tolist()[1:] == pytest.approx(means)
    fig = figures.heatmaps([*r.view().findings.rows], "bn", ("lr", "lr"), metric="test_loss")
    assert fig.axes[0].get_title() == "bn: mean test loss"
