"""Numbers other than accuracy: ECE, per-class accuracy, confusion, eval-mode train accuracy and the gap,
users' own metrics from a plugin, and comparisons on them (lower is better for losses, ECE, the gap)."""

from __future__ import annotations

import math

from pathlib import Path

import pytest
import torch

import petri
from petri.errors import SpecError
from petri.train.metrics import (METRICS, check_metric, expected_calibration_error, final_metrics, higher_is_better,
                                 metric_value, register_metric)


ROOT = Path(__file__).resolve().parent.parent


def test_ece_by_hand():
    # two right answers at confidence 0.9 and two wrong ones at 0.6; in 15 bins of width 1/15, 0.9 falls in
    # (0.867, 0.933] and 0.6 in (0.533, 0.6]: ECE = ½·|1 − 0.9| + ½·|0 − 0.6|
    probs = torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.6, 0.4], [0.4, 0.6]])
    labels = torch.tensor([0, 1, 1, 0])
    ece = expected_calibration_error(probs.log(), labels)
    assert ece == pytest.approx(0.5 * abs(1 - 0.9) + 0.5 * abs(0 - 0.6), rel=1e-5)


def test_final_metrics_confusion_and_classes():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    labels = torch.tensor([0, 1, 1, 2])
    out = final_metrics(logits, labels, 3)
    assert out["confusion"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert out["class_acc"] == [1.0, 0.5, 1.0] and set(METRICS) <= set(out)
    assert metric_value("class_acc:1", {}, out) == 0.5 and metric_value("ece", {}, out) == out["ece"]
    assert metric_value("gap", {"train_eval_acc": 0.99, "test_acc": 0.95}, None) == pytest.approx(0.04)
    assert not higher_is_better("ece") and not higher_is_better("gap") and not higher_is_better("test_loss")
    assert higher_is_better("test_acc") and higher_is_better("class_acc:3")


def test_metric_names_are_checked():
    assert check_metric("class_acc:9", 10, "m") == "class_acc:9"
    for bad in ("class_acc:10", "accuracy", 3):
        with pytest.raises(SpecError, match="is not a metric; allowed: test_acc"):
            check_metric(bad, 10, "s.toml: analysis.metric")
    for bad in ("Top1", "test_acc", "class_acc", "a" * 41):
        with pytest.raises(SpecError, match="register_metric: .* is not allowed"):
            register_metric(bad, lambda lo, la: 0.0)


PLUGIN = '''
import petri


def top2(logits, labels):
    """share of test images whose label is among the two highest logits"""
    return (logits.topk(2, dim=-1).indices == labels[:, None]).any(-1).float().mean().item()


petri.register_metric("top2", top2)
'''

STUDY = """
name = "metrics"
data = "mnist"
seeds = 3
baseline = "plain"
plugins = ["top2.py"]

[recipe]
model = { name = "mlp", hidden = [64] }
batch_size = 100
epochs = 3
train_size = 2000
test_size = 1000

[variants.plain]
[variants.dropout]
recipe = { model = { name = "mlp", hidden = [64], dropout = 0.5 } }

[analysis]
compare = ["dropout - plain"]
metric = "top2"
"""


def test_a_users_metric_and_the_gap_through_a_study(tmp_path):
    (tmp_path / "top2.py").write_text(PLUGIN)
    (tmp_path / "s.toml").write_text(STUDY)
    res = petri.run(tmp_path / "s.toml", tmp_path / "out")
    cells = res.cells()
    # eval-mode train accuracy is measured without dropout: with dropout it is above the running mean
    drop = cells[cells["variant"] == "dropout"]
    assert (drop["train_eval_acc"] > drop["train_acc"]).all()
    assert (cells["gap"] == cells["train_eval_acc"] - cells["test_acc"]).all()
    comps = res.comparisons()
    assert list(comps["metric"]) == ["top2"] and comps.loc[0, "n"] == 3
    top2 = res.effects().set_index("variant")["top2"]
    assert (top2 > res.effects().set_index("variant")["top2"] * 0).all() and top2.max() <= 1
    gap = res.compare("dropout", "plain", metric="gap").iloc[0]
    by_hand = (drop.set_index("seed")["gap"] - cells[cells["variant"] == "plain"].set_index("seed")["gap"]).mean()
    assert gap["diff"] == pytest.approx(by_hand) and gap["metric"] == "gap"
    if gap["verdict"] in ("better", "worse"):  # lower is better for the gap
        assert (gap["verdict"] == "better") == (gap["diff"] < 0)
    assert math.isclose(gap["p_better"], ((drop.set_index("seed")["gap"] - cells[cells["variant"] == "plain"]
                                           .set_index("seed")["gap"]) < 0).mean())
    with pytest.raises(petri.PetriError, match="compare: metric: 'nope' is not a metric"):
        res.compare("dropout", "plain", metric="nope")
    md = (tmp_path / "out" / "report" / "report.md").read_text()
    assert "top2 (mean ± 95 % CI)" in md and "Final train accuracy (eval mode" not in md  # no sweep here


def _petri(*args, cwd):
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "petri.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, "COLUMNS": "200",  # (CI gives PETRI_DATA relative to the checkout)
                                          "PETRI_DATA": str(Path(os.environ["PETRI_DATA"]).resolve())})


def _finals(out) -> dict:
    """(variant, seed) -> (test accuracy, top-2 accuracy) of the study's cells as the folder shows them."""
    from petri.analysis.records import load

    return {(p.variant, p.seed): (p.value("test_acc"), p.final["top2_acc"]) for p in load(out).places}


def test_the_own_metric_example_and_an_edit_of_it_refused_like_a_model_plugin(tmp_path):
    # examples/own-metric (as the README shows it), the study's metric from a plugin; editing it (top-2 ->
    # top-3) must not leave old values beside new ones: the run stops in one line (as it is, and with a seed
    # more), and with --changed every value shown is the new code's
    example = ROOT / "examples" / "own-metric"
    code = (example / "top2.py").read_text()
    readme = (ROOT / "README.md").read_text()
    assert 'petri.register_metric("top2_acc", top2)' in readme and "def top2(logits, labels):" in readme
    assert readme.split("def top2(logits, labels):")[1].split("petri.register_metric")[0].split("\n")[-2] in code
    (tmp_path / "top2.py").write_text(code)
    study = (example / "study.toml").read_text().replace("epochs = 2", "epochs = 1")

    def write(seeds):
        (tmp_path / "s.toml").write_text(study.replace("seeds = 3", f"seeds = {seeds}"))

    write(2)
    r = _petri("run", "s.toml", "--out", "out", "--no-report", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "top2_acc (mean ± 95 % CI)" in r.stdout
    before = _finals(tmp_path / "out")
    (tmp_path / "top2.py").write_text(code.replace("topk(2", "topk(3"))
    for seeds in (2, 3):
        write(seeds)
        r = _petri("run", "s.toml", "--out", "out", "--no-report", cwd=tmp_path)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert "plugin top2.py changed since these cells ran (4 finished cells of dropout, plain" in r.stderr
        assert _finals(tmp_path / "out") == before
    r = _petri("run", "s.toml", "--out", "out", "--no-report", "--changed", cwd=tmp_path)
    assert r.returncode == 0 and "6 cells to train" in r.stderr, r.stderr
    after = _finals(tmp_path / "out")
    assert len(after) == 6
    for key, (acc, top) in before.items():  # the same training (a metric does not change it), counted by top-3
        assert after[key][0] == acc and after[key][1] >= top
    assert any(after[k][1] > top for k, (_, top) in before.items())
    r = _petri("show", "out", cwd=tmp_path)
    assert "4 finished cells in this folder belong to an earlier version of the study" in r.stderr


def test_a_cell_records_its_studys_metrics_only(tmp_path):
    # what another study's plugin registered in this process is neither computed nor part of the identity
    from petri.study import plugins
    from petri.study.spec import parse_study

    (tmp_path / "top2.py").write_text(PLUGIN)
    (tmp_path / "s.toml").write_text(STUDY)
    try:
        with_plugin = parse_study(STUDY, str(tmp_path / "s.toml"))
        plain = STUDY.replace('plugins = ["top2.py"]', "").replace('metric = "top2"', "")
        without = parse_study(plain, str(tmp_path / "s.toml"))
        named = parse_study(plain.replace("[analysis]", '[analysis]\nmetric = "top2"'), str(tmp_path / "s.toml"))
        logits, labels = torch.tensor([[2.0, 1.0, 0.0]]), torch.tensor([1])
        assert set(final_metrics(logits, labels, 3)) == {"class_acc", "confusion", "ece"}
        assert final_metrics(logits, labels, 3, ("top2",))["top2"] == 1.0
    finally:
        METRICS.pop("top2", None)
        plugins._loaded.pop(str((tmp_path / "top2.py").resolve()), None)
    assert all(c.metrics == ("top2",) and '"metric_code"' in c.config for c in with_plugin.cells)
    assert all(c.metrics == () and '"metric_code"' not in c.config for c in without.cells)
    assert [c.hash for c in named.cells] == [c.hash for c in with_plugin.cells]  # the metric it compares counts


def test_a_plugin_whose_names_another_file_took_is_imported_again(tmp_path):
    # a notebook opens an old study folder (its stored copy registers the old top2), then parses the live
    # study: the live file is imported again, so its cells carry the live code, not the stored copy's
    from petri.study import plugins
    from petri.study.snapshot import digest
    from petri.study.spec import parse_study

    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "top2.py").write_text(PLUGIN.replace("topk(2", "topk(3"))
    (tmp_path / "top2.py").write_text(PLUGIN)
    old = STUDY.replace('"top2.py"', '"old/top2.py"')
    try:
        live = parse_study(STUDY, str(tmp_path / "s.toml"), base_dir=tmp_path)
        stored = parse_study(old, str(tmp_path / "s.toml"), base_dir=tmp_path)
        again = parse_study(STUDY, str(tmp_path / "s.toml"), base_dir=tmp_path)
        assert METRICS["top2"].code == digest(tmp_path / "top2.py")
    finally:
        METRICS.pop("top2", None)
        for f in ("top2.py", "old/top2.py"):
            plugins._loaded.pop(str((tmp_path / f).resolve()), None)
    assert [c.hash for c in again.cells] == [c.hash for c in live.cells] != [c.hash for c in stored.cells]
