"""A study's places into rows and a family (analysis/findings.py) where cells fail: diverged cells withhold
the verdicts they are in (or count at chance), cells that finish at chance are flagged everywhere."""

from __future__ import annotations

from typer.testing import CliRunner

import petri
from petri.cli import app
from petri.study.spec import parse_study

from ledgers import accuracy, write

STUDY = """
name = "fails"
data = "mnist"
seeds = 6
baseline = "plain"

[recipe]
model = { name = "mlp", hidden = [16] }
epochs = 2
test_size = 1000

[variants.plain]
[variants.fast]
recipe = { optimizer = { name = "adam", lr = 0.1 } }
[variants.stuck]
recipe = { optimizer = { name = "sgd", lr = 3.0 } }
"""


def _folder(tmp_path, failed: str | None = None):
    text = STUDY + (f'\n[analysis]\nfailed = "{failed}"\n' if failed else "")
    study = parse_study(text)
    fast = [c.hash for c in study.cells if c.variant == "fast"]

    def value(s, cell):  # "fast" does well where it trains; "stuck" ends at chance (a constant guess)
        if cell.variant == "stuck":
            return 0.098
        return accuracy(s, cell) + (0.02 if cell.variant == "fast" else 0.0)
    return write(study, tmp_path / "out", {h: "diverged" for h in fast[:3]}, value)


def test_diverged_cells_withhold_the_verdict_and_cells_at_chance_are_flagged(tmp_path):
    out = _folder(tmp_path)
    r = petri.open_study(out)
    comps = r.comparisons().set_index("a")
    fast, stuck = comps.loc["fast"], comps.loc["stuck"]
    assert fast["verdict"] == "withheld" and fast["failed_a"] == 3 and fast["n"] == 3  # survivors would say better
    assert "3 cells of fast diverged" in fast["reason"]
    assert stuck["verdict"] == "worse" and stuck["failed_a"] == 6  # at chance: compared at its measured value
    cells = r.cells()
    assert cells.loc[cells["variant"] == "stuck", "at_chance"].all() and not cells.loc[cells["variant"] == "plain",
                                                                                        "at_chance"].any()
    eff = r.effects().set_index("variant")
    assert eff.loc["stuck", "at_chance"] == 6 and eff.loc["fast", "diverged"] == 3
    show = CliRunner().invoke(app, ["show", str(out)], env={"COLUMNS": "250"})
    assert "6 cells at chance" not in show.output and "(6 of them at chance)" in show.output
    assert "fast − plain: 3 cells of fast diverged" in " ".join(show.output.split())
    md = (r.report().parent / "report.md").read_text()
    assert "Failed cells: diverged cells withhold the verdict" in md


def test_failed_chance_counts_diverged_cells_at_chance_accuracy(tmp_path):
    r = petri.open_study(_folder(tmp_path, failed="chance"))
    fast = r.comparisons().set_index("a").loc["fast"]
    assert fast["n"] == 6 and fast["verdict"] != "withheld" and fast["diff"] < 0  # 3 seeds at 1/10 pull it down
