"""Reports: statistics against hand-computed cases, a real small study's report, Chromium rendering."""

from __future__ import annotations

import math
import re
import shutil
import sqlite3
import subprocess

import pytest
from typer.testing import CliRunner

from petri.analysis.records import load
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
                 "figures/heatmap-window.png", "figures/sweeps.svg", "figures/throughput.png",
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
    assert "**mlp hidden=[16]** (12,730 parameters per member), used by: original, inverted, noise (p=0)" in md
    assert "| dense units=16 | 16 | 12,560 |" in md and "<td>dense units=10</td><td>10</td><td>170</td>" in html
    row = next(line for line in md.splitlines() if line.startswith("| inverted "))
    assert row.rstrip(" |").endswith("worse")
    import csv

    rows = list(csv.DictReader(open(rep / "cells.csv")))
    assert all(abs(float(r["gap"]) - (float(r["train_eval_acc"]) - float(r["test_acc"]))) < 1e-12
               for r in rows)
    cells = (rep / "cells.csv").read_text().splitlines()
    assert len(cells) == 1 + 3 * (1 + 1 + 2 + 4)


def test_figures_show_every_point_on_one_scale(study_dir):
    """Confusion matrices at every sweep point, counted, classes by their full names; sweep panels and
    grids on one scale."""
    import numpy as np

    from petri.analysis.findings import Row, findings
    from petri.analysis.records import load
    from petri.report import figures
    from petri.report.build import _confusions

    snap = load(study_dir)
    rows = findings(snap).rows
    matrices, n = _confusions(snap, rows)
    assert n == 8 and list(matrices)[:4] == ["original", "inverted", "noise (p=0)", "noise (p=0.5)"]
    assert all(m.sum() == 3 * 1000 for m in matrices.values())  # 3 seeds × the 1,000 test images, each point
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    fig = figures.confusions(dict(list(matrices.items())[:2]), classes)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == classes
    m = matrices["original"]
    written = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    assert written[(0, 0)] == str(m[0, 0]) and len(written) == np.count_nonzero(m)

    def row(variant, lr, acc):
        return Row(variant, {"lr": lr}, 3, 3, acc, 0.01, acc, "test", 0.3, 2.0, {"done": 3}, {0: acc})

    lines = [row("plain", lr, acc) for lr, acc in ((0.1, 0.2), (1.0, 0.8))] + \
        [row("bn", lr, acc) for lr, acc in ((0.1, 0.85), (1.0, 0.9))]
    fig = figures.sweeps(lines, [("plain", "lr"), ("bn", "lr")], {})
    assert fig.axes[0].get_ylim() == fig.axes[1].get_ylim() and fig.axes[1].get_ylim()[0] < 20
    grids = [r for r in rows if r.variant == "window"]
    alone = figures.heatmaps(grids, "window", ("row", "col"))
    together = figures.heatmaps(grids, "window", ("row", "col"), rows)
    assert alone.axes[0].images[0].get_clim() == (100 * min(r.mean for r in grids), 100 * max(r.mean for r in grids))
    assert together.axes[0].images[0].get_clim() == (100 * min(r.mean for r in rows), 100 * max(r.mean for r in rows))


def test_the_noise_figure_shows_each_shares_interval_and_the_test_set_on_its_own_row():
    from petri.report import figures
    from petri.analysis.variance import Part, Spread

    parts = [Part("init", 1.0, 0.1, 3.0, 0.11, 0.01, 0.77), Part("order", 2.0, 0.1, 5.0, 0.21, 0.02, 0.7),
             Part("residual", 6.5, 3.0, 9.0, 0.68, 0.2, 0.9)]
    spread = Spread("mlp", {}, 9, 0.9, 9.5, 3.1, parts, test_set=1.2)
    ax = figures.noise([spread], ["init", "order"]).axes[0]
    intervals = [line for line in ax.get_lines() if line.get_linewidth() == 2.5]  # (not the rule above the test set)
    assert [list(line.get_xdata()) for line in intervals] == [pytest.approx(v) for v in ([1, 77], [2, 70], [20, 90])]
    marker = next(line for line in ax.get_lines() if line.get_marker() == "D")
    assert marker.get_ydata()[0] == 3 and marker.get_xdata()[0] == 100 * 1.2 / 9.5  # a row below the three parts
    assert [t.get_text() for t in ax.get_yticklabels()][-1] == "test set alone (binomial bound)  13 %"


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


def test_a_study_of_one_variant_reports_its_spread_not_comparisons(tmp_path):
    """One variant (a noise study): no warning, no reference, no family boilerplate; the spread between seeds."""
    one = STUDY.split("[variants.inverted]")[0].replace("epochs = 2", "epochs = 1")
    (tmp_path / "s.toml").write_text(one)
    runner = CliRunner()
    r = runner.invoke(app, ["run", str(tmp_path / "s.toml"), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0 and "warning" not in r.stderr, r.stderr
    assert "nothing is compared; n: seeds" in " ".join(r.stdout.split())
    md = (tmp_path / "out" / "report" / "report.md").read_text()
    table = md.split("\n| variant")[1].split("\n\n")[0]
    assert table.split("\n")[0].endswith("| epochs | failed | SD between seeds (pp) |")
    cells = parse_study(one).cells
    from petri.api import open_study

    acc = open_study(tmp_path / "out").cells()["test_acc"]
    assert table.splitlines()[-1].split(" | ")[-3:] == ["1", "0", f"{100 * acc.std():.2f} |"]  # epochs "1", not "1.0"
    assert len(cells) == 3 and "Reference:" not in md and "family" not in md and "add a variant" not in md
    assert "One variant: nothing is compared. n: its seeds" in md and "P(A beats B)" not in md


def test_epochs_run_read_as_counts():
    from petri.analysis.columns import epochs_text

    assert [epochs_text(x) for x in (3.0, 22 / 3, math.nan)] == ["3", "7.3", "—"]  # a mean over seeds: early stopping


def test_one_comparison_is_one_comparison(tmp_path):
    two = STUDY.split("[variants.noise]")[0].replace("epochs = 2", "epochs = 1")
    (tmp_path / "s.toml").write_text(two)
    runner = CliRunner()
    r = runner.invoke(app, ["run", str(tmp_path / "s.toml"), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.stderr
    md = (tmp_path / "out" / "report" / "report.md").read_text()
    assert "1 comparisons" not in md and "Bonferroni over the study's 1 comparison)" in md
    r = runner.invoke(app, ["plan", str(tmp_path / "out"), "--detect", "1"])
    assert r.exit_code == 0 and "over 1 comparison)" in " ".join(r.stdout.split()), r.stdout


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


PLAIN = """
name = "plain"
data = "mnist"
seeds = 3
baseline = "base"

[recipe]
model = { name = "mlp", hidden = [16] }
optimizer = { name = "sgd", lr = 0.1 }
batch_size = 128
epochs = 2
train_size = 2048
test_size = 500

[variants.base]
"""


def test_best_is_chosen_on_validation_data_when_there_is_some(tmp_path):
    text = PLAIN + '[variants.other]\ntreatments = ["invert"]\n'
    out = tmp_path / "test-chosen"
    run_study(parse_study(text), out)
    md = (build_report(out).parent / "report.md").read_text()
    assert "best test acc % (epoch chosen on test: optimistic, never in verdicts)" in md
    assert "The best epoch is chosen on the test set" in md and "p (Wilcoxon) is '—' with fewer than 6" in md
    out = tmp_path / "val-chosen"
    run_study(parse_study(text.replace("test_size = 500", "test_size = 500\nval_size = 300")), out)
    md = (build_report(out).parent / "report.md").read_text()
    assert "best epoch's test acc % (chosen on val)" in md and "chosen on the test set" not in md


def test_two_packs_alike_get_distinct_throughput_labels(tmp_path):
    text = PLAIN + '[variants.other]\ntreatments = ["invert"]\n'
    out = tmp_path / "o"
    run_study(parse_study(text), out, max_members=3)
    from petri.report.facts import packs

    labels = [label for label, _, _ in packs(load(out))]
    assert len(labels) == 2 and len(set(labels)) == 2


def test_label_noise_curves_say_the_labels_are_noisy(tmp_path):
    text = PLAIN + '[variants.noisy]\ntreatments = [{ name = "label_noise", p = 0.3 }]\n'
    out = tmp_path / "o"
    run_study(parse_study(text), out)
    md = (build_report(out).parent / "report.md").read_text()
    assert "under label_noise, the noisy ones" in md


def test_sweep_figure_labels_the_swept_values_and_shows_both_markers():
    """The swept values are the tick labels (not 6×10⁻² on a log axis), test is drawn over train, and a
    train marker is hollow so a test point under it still shows."""
    from petri.report import figures
    from petri.analysis.findings import Row

    rows = [Row("sgd", {"lr": lr}, 3, 3, 0.9 + lr / 100, 0.01, 0.9, "test", 0.3, 2.0, {"done": 3},
                {0: 0.9, 1: 0.91, 2: 0.92}) for lr in (0.05, 0.5, 2.0)]
    train = {r.label: [0.95, 0.96, 0.97] for r in rows}
    fig = figures.sweeps(rows, [("sgd", "lr")], train)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and [t.get_text() for t in ax.get_xticklabels()] == ["0.05", "0.5", "2.0"]
    test, train_line = [line for line in ax.get_lines() if line.get_marker() in ("o", "s")]
    assert test.get_zorder() > train_line.get_zorder() and train_line.get_markerfacecolor() == "none"


def test_curves_show_the_learning_rate_when_a_schedule_moves_it():
    from petri.report import figures

    def rows(place, lrs):
        return [{"place": place, "epoch": i + 1, "train_loss": 1.0, "train_acc": 0.5, "test_acc": 0.5, "lr": lr}
                for i, lr in enumerate(lrs)]

    labels = {"a": "constant", "b": "cosine"}
    flat = figures.curves(rows("a", [1e-3] * 3), labels, ["constant"])
    assert len(flat.axes) == 3  # nothing changed: no panel
    moved = figures.curves(rows("a", [1e-3] * 3) + rows("b", [1e-3, 5e-4, 0.0]), labels, ["constant", "cosine"])
    assert len(moved.axes) == 4 and "learning rate" in moved.axes[3].get_title()
    assert list(moved.axes[3].get_lines()[1].get_ydata()) == [1e-3, 5e-4, 0.0]
