"""Per-example predictions kept by every finished cell (study/cellstore.py, train/shard.py) and what they
answer: they reproduce the ledger's accuracies, survive a zip and move of the study folder byte for byte,
give confusion matrices at any seed, the two sides' disagreement and a one-seed McNemar test, the test
set's share of the spread measured per example (below its binomial bound), and the export."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pandas as pd
import pytest

import petri
from petri.errors import SpecError

STUDY = {"name": "preds", "data": "mnist", "seeds": {"init": 3, "order": 2}, "baseline": "a",
         "recipe": {"model": {"name": "mlp", "hidden": [16]}, "epochs": 3, "train_size": 1200, "test_size": 500,
                    "val_size": 300, "early_stopping": {"monitor": "val_acc", "patience": 1}},
         "variants": {"a": {}, "b": {"treatments": ["invert"]}}}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return petri.run(petri.load_study(STUDY), tmp_path_factory.mktemp("preds") / "out", report=False)


def test_predictions_reproduce_the_ledger_and_survive_a_zip_and_move(results, tmp_path):
    cells = results.cells()
    for _, c in cells.iterrows():
        p = results.predictions(c["variant"], int(c["seed"]))
        assert len(p) == 500 and p["correct"].mean() == pytest.approx(c["test_acc"], abs=1e-6)  # (float32 in the ledger)
        assert (p["image"].to_numpy() == results.subsets(c["variant"])["test"]).all()
    best = results.predictions("a", 0, best=True)
    assert len(best) == 500 and len(results.predictions("a", 0, split="val")) == 300
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in results.directory.rglob("*"):
            z.write(f, f.relative_to(results.directory))
    moved = tmp_path / "elsewhere" / "study"
    zipfile.ZipFile(archive).extractall(moved)
    again = petri.open_study(moved)
    for variant, seed in (("a", 0), ("b", 5)):
        pd.testing.assert_frame_equal(again.predictions(variant, seed), results.predictions(variant, seed))


def test_confusion_disagreement_and_errors(results):
    m = results.confusion("b", seed=1)
    p = results.predictions("b", 1)
    assert m.values.sum() == 500 and np.trace(m.values) == p["correct"].sum() and m.index.name == "true"
    comp = results.comparisons().iloc[0]
    a, b = (np.stack([results.predictions(v, s)["predicted"] for s in range(6)]) for v in ("a", "b"))
    assert comp["disagree"] == pytest.approx((a != b).mean())
    with pytest.raises(SpecError, match="split 'train': allowed: test, val"):
        results.predictions("a", 0, split="train")
    with pytest.raises(SpecError, match="no place 'c', seed 0"):
        results.predictions("c", 0)


def test_the_test_sets_share_is_measured_per_example_below_its_binomial_bound(results):
    noise = results.noise()
    measured = noise[noise["source"] == "test set (per example)"]
    bound = noise[noise["source"] == "test set (binomial bound)"]
    assert len(measured) == 2 and len(bound) == 2
    for (_, m), (_, b) in zip(measured.iterrows(), bound.iterrows()):
        assert 0 < m["variance"] <= b["variance"] and m["low"] <= m["variance"] <= m["high"]
    # the measured value is Jordan's sum over images of p_i (1 - p_i) / n², p_i each image's error rate
    wrong = np.stack([~results.predictions("a", s)["correct"].to_numpy() for s in range(6)]).astype(float)
    k, m_ = wrong.sum(0), wrong.shape[0]
    assert measured.iloc[0]["variance"] == pytest.approx((k * (m_ - k) / (m_ * (m_ - 1))).sum() / 500 ** 2)


def test_a_single_seed_comparison_gets_mcnemar(tmp_path):
    one = {**STUDY, "seeds": 1, "recipe": {**STUDY["recipe"], "early_stopping": None}}
    r = petri.run(petri.load_study(one), tmp_path / "one", report=False)
    c = r.comparisons().iloc[0]
    a, b = r.predictions("a", 0), r.predictions("b", 0)
    only_a = int((a["correct"] & ~b["correct"]).sum())
    only_b = int((~a["correct"] & b["correct"]).sum())
    from scipy.stats import binomtest

    assert c["verdict"] == "too few seeds" and c["p_mcnemar"] == pytest.approx(binomtest(only_a, only_a + only_b).pvalue)
    assert "McNemar" in c["reason"] and "not whether the variants do" in c["reason"]


def test_export_has_the_predictions_and_old_cells_say_they_have_none(results, tmp_path):
    paths = results.export("csv", tmp_path / "export")
    table = pd.read_csv(next(p for p in paths if p.name == "predictions.csv"))
    assert set(table["split"]) == {"test", "val", "best.test", "best.val"}
    cell = table[(table["variant"] == "a") & (table["seed"] == 0) & (table["split"] == "test")]
    assert (cell["predicted"].to_numpy() == results.predictions("a", 0)["predicted"].to_numpy()).all()
    copy = tmp_path / "old"
    shutil.copytree(results.directory, copy)
    for f in copy.rglob("predictions.*"):
        f.unlink()  # a folder from before petri kept predictions
    with pytest.raises(SpecError, match="trained before petri kept predictions; Results.refill_predictions"):
        petri.open_study(copy).predictions("a", 0)


def test_old_cells_predictions_are_refilled_from_their_kept_weights(results, tmp_path):
    """Predictions recomputed from the weights equal those the run kept, final and best epoch, byte for byte."""
    from petri.study import cellstore

    copy = tmp_path / "old"
    shutil.copytree(results.directory, copy)
    for f in copy.rglob("predictions.*"):
        f.unlink()
    hashes = results.cells()["hash"].tolist()
    cellstore.weights_path(copy, hashes[0]).unlink()  # a cell whose weights were not kept: it cannot be refilled
    old = petri.open_study(copy)
    assert old.refill_predictions() == {"refilled": 11, "kept": 0, "without weights": 1}
    for h in hashes[1:]:
        got, kept = cellstore.load_predictions(copy, h), cellstore.load_predictions(results.directory, h)
        assert sorted(got) == sorted(kept) == ["best.test", "best.val", "test", "test.labels", "val", "val.labels"]
        for name in kept:
            assert got[name].dtype == kept[name].dtype and (got[name] == kept[name]).all(), (h, name)
    assert cellstore.load(cellstore.cell_dir(copy, hashes[1]) / cellstore.PREDICTIONS)[1] == {"refilled": True}
    assert old.refill_predictions() == {"refilled": 0, "kept": 11, "without weights": 1}


def test_a_test_source_resamples_the_test_set_without_retraining(tmp_path):
    """seeds = { init = 2, test = 3 }: 6 places per variant from 2 trained cells; each place's accuracy is its
    cell's on the subsample its test seed draws (from the kept predictions), and the test set's part is a
    component of the decomposition like any source's."""
    from petri.rng import derive_seed

    study = {**STUDY, "seeds": {"init": 2, "order": 2, "test": 3}, "recipe": {**STUDY["recipe"], "early_stopping": None},
             "analysis": {"test_sample": {"size": 200, "replace": False}}}
    r = petri.run(petri.load_study(study), tmp_path / "t", report=False)
    cells = r.cells()
    assert len(cells) == 24 and cells["hash"].nunique() == 8  # trained once per (init, order) and variant
    place = cells[(cells["variant"] == "a")].iloc[5]
    p = r.predictions("a", int(place["seed"]))
    rng = np.random.default_rng(derive_seed(int(place["seed_test"]), "test"))
    assert place["test_acc"] == pytest.approx(p["correct"].to_numpy()[rng.choice(500, 200, replace=False)].mean())
    assert {"test", "cell", "residual"} <= set(r.noise()["source"])  # init × order cells: a term of their own
    md = (r.report(tmp_path / "report").parent / "report.md").read_text()
    assert "trained cell (interactions) % [95 % CI]" in md and (tmp_path / "report" / "figures" / "noise-sources.png").exists()
    for bad, message in [({"size": 1}, "test_sample.size: an integer >= 2"), ({"replace": False}, "give a size"),
                         ({"sise": 3}, "unknown field 'sise'")]:
        with pytest.raises(SpecError, match=message):
            petri.load_study({**study, "analysis": {"test_sample": bad}})
