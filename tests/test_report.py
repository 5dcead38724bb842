"""Reports: statistics against hand-computed cases, a real small study's report, Chromium rendering."""

from __future__ import annotations

import math
import re
import shutil
import sqlite3
import subprocess

import pytest
from typer.testing import CliRunner

from petri.cli import app
from petri.report.build import build_report
from petri.report.stats import t_interval
from petri.study.runner import run_study
from petri.study.spec import parse_study

STUDY = """
name = "report-test"
data = "mnist"
seeds = 3
baseline = "original"

[recipe]
model = { name = "mlp", hidden = [16] }
optimizer = { name = "adam", lr = 3e-3 }
batch_size = 100
epochs = 2
train_size = 2000
test_size = 1000

[variants.original]

[variants.inverted]
treatments = [{ name = "invert" }]

[variants.noise]
treatments = [{ name = "label_noise", p = { values = [0.0, 0.5] } }]

[variants.window]
treatments = [{ name = "window_keep", size = 14, row = { values = [0, 14] }, col = { values = [0, 14] } }]
"""


def test_t_interval_known_values():
    mean, hw = t_interval([1, 2, 3, 4, 5])
    assert mean == 3
    assert hw == pytest.approx(2.7764451 * math.sqrt(2.5) / math.sqrt(5), rel=1e-6)
    assert math.isnan(t_interval([0.9])[1]) and math.isnan(t_interval([])[0])


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    run_study(parse_study(STUDY), out)
    return out


def test_report_files_and_verdicts(study_dir):
    index = build_report(study_dir)
    rep = index.parent
    for name in ("report.md", "cells.csv", "variants.csv", "figures/curves.png", "figures/curves.svg",
                 "figures/heatmap-window.png", "figures/sweep-noise.svg", "figures/throughput.png",
                 "figures/paired-differences.png", "figures/confusion.png", "comparisons.csv",
                 "figures/treated-images.png"):
        assert (rep / name).stat().st_size > 0, name
    html = index.read_text()
    assert html.count("<img") == 7 and "data:image/png;base64," in html  # curves, forest, heatmap, sweep, treated
    # images, confusion, throughput
    assert not re.search(r"(src|href)=['\"]https?:", html)  # self-contained: nothing fetched
    assert "inverted" in html and "worse" in html
    md = (rep / "report.md").read_text()
    assert re.search(r"time: [0-9.]+ s over 1 run — training \d+ %, evaluation \d+ %, checkpoints \d+ %, start-up and "
                     r"packing \d+ %, report \d+ %", md)
    assert "**mlp hidden=[16]** (12,730 parameters per member), used by: original, inverted, noise (p=0.0)" in md
    assert "| dense units=16 | 16 | 12,560 |" in md and "<td>dense units=10</td><td>10</td><td>170</td>" in html
    row = next(line for line in md.splitlines() if line.startswith("| inverted "))
    assert row.rstrip(" |").endswith("worse")
    import csv

    rows = list(csv.DictReader(open(rep / "cells.csv")))
    assert all(abs(float(r["gap"]) - (float(r["train_eval_acc"]) - float(r["test_acc"]))) < 1e-12
               for r in rows)
    cells = (rep / "cells.csv").read_text().splitlines()
    assert len(cells) == 1 + 3 * (1 + 1 + 2 + 4)


def test_report_on_partial_study_says_what_is_missing(study_dir, tmp_path):
    part = tmp_path / "partial"
    shutil.copytree(study_dir, part, ignore=shutil.ignore_patterns("report"))
    db = sqlite3.connect(part / "petri.sqlite")
    db.execute("UPDATE cells SET status='failed' WHERE variant='inverted' AND seed=2")
    db.commit()
    html = build_report(part).read_text()
    assert "1 of 24 cells have no final result yet" in html and "inverted" in html


def _chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        pytest.fail("headless Chromium is needed for this test: install the Debian package 'chromium'")
    return exe


def test_html_renders_in_headless_chromium(study_dir, tmp_path):
    import matplotlib.image as mpimg

    index = build_report(study_dir)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    shot = tmp_path / "shot.png"
    r = subprocess.run([_chromium(), *flags, f"--screenshot={shot}", "--window-size=1280,2400", index.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert shot.exists(), r.stderr[-2000:]
    img = mpimg.imread(shot)
    assert img.shape[0] >= 2000 and img.std() > 0.05  # not blank
    console_errors = [line for line in r.stderr.splitlines() if "CONSOLE" in line and "rror" in line]
    assert not console_errors, console_errors
    dom = subprocess.run([_chromium(), *flags, "--dump-dom", index.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    imgs = re.findall(r"<img [^>]*src=\"data:image/png;base64,([A-Za-z0-9+/=]+)\"", dom)
    assert len(imgs) == 7  # with the treated images
    import base64
    import io

    for b64 in imgs:  # every inline figure decodes as a real, non-empty picture
        pic = mpimg.imread(io.BytesIO(base64.b64decode(b64)), format="png")
        assert pic.shape[0] > 100 and pic.std() > 0.01


def test_report_cli_and_broken_ledgers(study_dir, tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["report", str(study_dir)])
    assert r.exit_code == 0 and "index.html" in r.output
    (tmp_path / "petri.sqlite").write_bytes(b"\x00garbage" * 64)
    r = runner.invoke(app, ["report", str(tmp_path)])
    assert r.exit_code == 2 and "not a petri ledger" in r.stderr and "\n" not in r.stderr.strip()
    empty = tmp_path / "empty"
    from petri.study.ledger import Ledger

    Ledger(empty, create=True).close()
    r = runner.invoke(app, ["report", str(empty)])
    assert r.exit_code == 2 and "holds no runs yet" in r.stderr
    r = runner.invoke(app, ["report", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and "no ledger here" in r.stderr


def test_preview_shows_each_variants_treated_images(tmp_path, capsys):
    """petri preview / petri.preview: the images as a cell sees them (checked through their data), in one
    command before training, and one-line refusals."""
    import numpy as np

    import petri
    from petri.cli import main
    from petri.report.preview import treated_images

    study = petri.load_study({"name": "p", "data": "mnist", "recipe": {"model": "mlp", "train_size": 500},
                              "variants": {"plain": {}, "inverted": {"treatments": ["invert"]},
                                           "crop": {"treatments": [{"name": "crop", "pad": 4}]}}})
    plain, inverted, crop = (treated_images(study, v, 5) for v in ("plain", "inverted", "crop"))
    assert plain["train"].shape == (5, 1, 28, 28) and plain["train"].min() >= 0 and plain["train"].max() <= 1
    assert np.allclose(inverted["train"], 1 - plain["train"]) and np.allclose(inverted["test"], 1 - plain["test"])
    assert not np.array_equal(crop["train"], plain["train"]) and np.array_equal(crop["test"], plain["test"])
    fig = petri.preview(study, n=5)
    assert len(fig.axes) == 3 * 2 * 5
    f = tmp_path / "s.toml"
    f.write_text('name = "p"\ndata = "mnist"\n[recipe]\nmodel = "mlp"\n[variants.plain]\n[variants.inv]\n'
                 'treatments = ["invert"]\n')
    assert main(["preview", str(f), "--variant", "inv", "--n", "3", "--to", str(tmp_path / "x.png")]) == 0
    assert (tmp_path / "x.png").stat().st_size > 1000
    assert main(["preview", str(f), "--variant", "nope"]) == 2
    assert "variant 'nope' is not in p; variants: plain, inv" in capsys.readouterr().err
    assert main(["preview", str(f), "--to", str(tmp_path / "missing" / "deeper" / "x.png")]) == 0  # folders made


def test_eval_every_leaves_test_metrics_of_unevaluated_epochs_empty_and_curves_skip_them(tmp_path):
    """recipe.eval_every = 2 over 3 epochs: epochs() has NaN test metrics at epoch 1 and numbers at 2 and 3
    (the last epoch is always evaluated); the learning curves draw the test accuracy at evaluated epochs only."""
    import petri
    from petri.report import figures

    text = """
name = "sparse"
data = "mnist"
seeds = 2
baseline = "plain"
[recipe]
model = { name = "mlp", hidden = [8] }
epochs = 3
eval_every = 2
train_size = 500
test_size = 200
[variants.plain]
"""
    run_study(parse_study(text), tmp_path / "out")
    epochs = petri.open_study(tmp_path / "out").epochs()
    assert epochs.loc[epochs.epoch == 1, "test_acc"].isna().all() and epochs.loc[epochs.epoch == 1, "train_loss"].notna().all()
    assert epochs.loc[epochs.epoch > 1, ["test_acc", "test_loss", "train_eval_acc"]].notna().all().all()
    rows = [{"place": "p", **r} for r in epochs.to_dict("records")]
    fig = figures.curves([{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                          for r in rows], {"p": "plain"}, ["plain"])
    test_axis = [ax for ax in fig.axes if ax.get_title().startswith("test accuracy")][0]
    assert list(test_axis.lines[0].get_xdata()) == [2, 3]
    assert list(fig.axes[0].lines[0].get_xdata()) == [1, 2, 3]  # the train loss: every epoch
