"""Numbers other than accuracy: ECE, per-class accuracy, confusion, eval-mode train accuracy and the gap,
users' own metrics from a plugin, and comparisons on them (lower is better for losses, ECE, the gap)."""

from __future__ import annotations

import math

import pytest
import torch

import petri
from petri.errors import SpecError
from petri.train.metrics import (METRICS, check_metric, expected_calibration_error, final_metrics, higher_is_better,
                                 metric_value, register_metric)


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
