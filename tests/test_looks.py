"""An adaptive study's looks: what each look keeps and says (each comparison against the target), the
summary line, the figure of the intervals over the looks, and a width-targeted study run through the CLI."""

from __future__ import annotations

import math

from typer.testing import CliRunner

from petri.cli import app
from petri.report import looks
from petri.analysis.family import Comparison
from petri.study.seeds import parse_adaptive


def _comparison(a, lo, hi, verdict, n=4):
    return Comparison(a, "base", "vs reference", (), n=n, mean=(lo + hi) / 2, lo_fw=lo, hi_fw=hi, verdict=verdict,
                      margin=0.01)


def test_a_look_says_where_each_comparison_stands_against_the_target():
    family = [_comparison("a", 0.01, 0.03, "better"), _comparison("b", -0.02, 0.02, "inconclusive"),
              _comparison("c", math.nan, math.nan, "", n=1)]
    look = looks.record(family, 4, False)
    assert look["widest"] == 0.04 and look["undecided"] == 2 and look["comparisons"][2]["lo"] is None
    width = parse_adaptive({"min": 3, "max": 8, "until": {"width": 0.3}}, "s", 100)  # 0.3 pp
    assert looks.headline(look, width, True, "test_acc") == (
        "target: every family-wise interval narrower than 0.30 pp; widest now 4.00 pp, 3 of 3 not yet")
    lines = looks.lines(look, width, True, "test_acc")
    assert lines == ["  c − base: no interval yet (1 seeds)",  # short of the target, widest first
                     "  b − base: +0.00 [-2.00, +2.00] pp, width 4.00 pp (≥ target): inconclusive",
                     "  a − base: +2.00 [+1.00, +3.00] pp, width 2.00 pp (≥ target): better"]
    decided = parse_adaptive({"min": 3, "max": 8}, "s", 100)
    assert looks.headline(look, decided, True, "test_acc").endswith("; 2 of 3 comparisons undecided")
    assert looks.lines(look, decided, True, "test_acc")[-1].endswith(": better")  # decided ones last
    many = looks.record([_comparison(f"v{i}", 0.0, 0.001, "equivalent") for i in range(20)], 5, True)
    assert looks.lines(many, width, True, "test_acc")[-1] == "  … and 8 more, all meeting the target"


def test_the_summary_and_the_figure_share_one_scale():
    width = {"min": 3, "max": 5, "step": 1, "until": "width", "width": 0.003}
    state = {"rule": width, "percent": True, "metric": "test_acc", "stopped": "max reached (5 seeds)",
             "looks": [looks.record([_comparison("a", -0.2, 0.2, "inconclusive"), _comparison("b", 0.01, 0.02, "better")],
                                    n, False) for n in (3, 4, 5)]}
    assert looks.summary(state) == ("Adaptive seeds until every family-wise interval narrower than 0.30 pp, looked at "
                                    "after 3 round(s) with 3 (widest 40.00 pp), 4 (widest 40.00 pp), 5 (widest 40.00 "
                                    "pp) seeds; stopped at 5 seeds: max reached (5 seeds).")
    fig = looks.figure(state, True, "test_acc")
    width_panel, a, b = [ax for ax in fig.axes if ax.get_visible()]
    assert width_panel.get_title() == "family-wise interval width" and width_panel.get_yscale() == "log"
    assert a.get_ylim() == b.get_ylim() and a.get_ylim()[0] <= -20 and a.get_ylim()[1] >= 20
    assert [t.get_text() for t in (a.title, b.title)] == ["a − base", "b − base"]
    assert looks.figure({"looks": [{"seeds": 3, "undecided": 1, "widest": 0.1, "met": False}]}, True, "x") is None


STUDY = """
name = "looks"
data = "mnist"
seeds = { min = 3, max = 4, until = { width = 0.3 } }
baseline = "original"

[recipe]
model = { name = "mlp", hidden = [16] }
epochs = 1
train_size = 1000
test_size = 500

[variants.original]
[variants.inverted]
treatments = ["invert"]
"""


def test_an_adaptive_study_says_each_look_against_its_target_and_plots_the_intervals(tmp_path):
    (tmp_path / "s.toml").write_text(STUDY)
    r = CliRunner().invoke(app, ["run", str(tmp_path / "s.toml"), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.stderr
    said = [line for line in r.stderr.splitlines() if line.startswith(("looks: look", "  inverted"))]
    assert said[0].startswith("looks: look 1 of at most 2, 3 seeds; target: every family-wise interval narrower than "
                              "0.30 pp; widest now ") and said[0].endswith("; more seeds")
    assert said[1].startswith("  inverted − original: ") and "(≥ target)" in said[1]
    assert said[2].startswith("looks: look 2 of at most 2, 4 seeds") and "stopped: max reached (4 seeds)" in said[2]
    import petri

    state = petri.open_study(tmp_path / "out").adaptive()
    assert [lk["seeds"] for lk in state["looks"]] == [3, 4]
    last = state["looks"][-1]["comparisons"][0]
    row = petri.open_study(tmp_path / "out").comparisons().iloc[0]
    assert last["label"] == "inverted − original" and math.isclose(last["lo"], row["diff_fw_low"])
    md = (tmp_path / "out" / "report" / "report.md").read_text()
    assert "![Intervals over the looks](figures/adaptive-looks.png)" in md
    assert "Adaptive seeds until every family-wise interval narrower than 0.30 pp" in md
