"""petri from Python: load / run / open, DataFrames with typed columns, the README example and the
quickstart notebook (a real Jupyter kernel), reading a directory another process is writing."""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import petri
import petri.machine
from petri.errors import PetriError, SpecError

ROOT = Path(__file__).resolve().parent.parent

STUDY = {
    "name": "api", "data": "mnist", "seeds": 3, "baseline": "original",
    "recipe": {"model": {"name": "mlp", "hidden": [16]}, "epochs": 2, "train_size": 1500, "test_size": 500,
               "optimizer": {"name": "adam", "lr": 1e-3}},
    "variants": {"original": {}, "inverted": {"treatments": ["invert"]},
                 "lr": {"recipe": {"optimizer": {"name": "adam", "lr": {"values": [3e-3, 1e-2]}}},
                        "treatments": [{"name": "window_keep", "size": 20, "row": {"values": [0, 8]}, "col": 4}]}},
}
TOML = """
name = "api"
data = "mnist"
seeds = 3
baseline = "original"

[recipe]
model = { name = "mlp", hidden = [16] }
epochs = 2
train_size = 1500
test_size = 500
optimizer = { name = "adam", lr = 1e-3 }

[variants.original]

[variants.inverted]
treatments = ["invert"]

[variants.lr]
recipe = { optimizer = { name = "adam", lr = { values = [3e-3, 1e-2] } } }
treatments = [{ name = "window_keep", size = 20, row = { values = [0, 8] }, col = 4 }]
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return petri.run(petri.load_study(STUDY), tmp_path_factory.mktemp("api"))


def test_a_study_from_a_dict_a_toml_string_or_a_file_is_the_same(tmp_path):
    f = tmp_path / "api.toml"
    f.write_text(TOML)
    hashes = [[c.hash for c in s.cells] for s in (petri.load_study(STUDY), petri.load_study(TOML), petri.load_study(f),
                                                  petri.load_study(str(f)))]
    assert hashes[0] == hashes[1] == hashes[2] == hashes[3] and len(hashes[0]) == 18
    with pytest.raises(SpecError, match=r"<dict>: variants.x.treatments\[0\]: unknown treatment 'blur'"):
        petri.load_study({**STUDY, "baseline": "x", "variants": {"x": {"treatments": ["blur"]}}})
    assert issubclass(SpecError, petri.PetriError)


def test_every_recorded_metric_is_summarised_per_variant_and_point(results, tmp_path):
    """Results.metrics(), metrics.csv and the report's tables: each metric's mean ± 95 % half-width."""
    from scipy import stats

    metrics, cells = results.metrics(), results.cells()
    assert list(metrics.columns) == ["variant", "lr", "row", "metric", "n", "mean", "ci95"]
    assert {"test_acc", "test_loss", "train_eval_acc", "gap", "ece", "class_acc:0", "class_acc:9"} <= set(metrics["metric"])
    assert len(metrics) == 6 * len(set(metrics["metric"]))  # original, inverted and the 2 × 2 points of the lr sweep
    ece = cells.loc[cells["variant"] == "inverted", "ece"]
    row = metrics[(metrics["variant"] == "inverted") & (metrics["metric"] == "ece")].iloc[0]
    assert row["n"] == 3 and row["mean"] == pytest.approx(ece.mean())
    assert row["ci95"] == pytest.approx(stats.t.ppf(0.975, 2) * ece.std() / math.sqrt(3))  # plain seeds: the t
    report = results.report(tmp_path / "r").parent
    assert len(pd.read_csv(report / "metrics.csv")) == len(metrics)
    md = (report / "report.md").read_text()
    table = md.split("## Every metric")[1].split("\n## ")[0]
    line = next(x for x in table.splitlines() if x.startswith("| inverted |"))
    assert line.split(" | ")[-1] == f"{100 * row['mean']:.2f} ± {100 * row['ci95']:.2f} |"  # ECE %: the last column
    per_class = md.split("## Test accuracy per class (%)")[1].split("\n## ")[0]
    assert "| variant | 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 |" in per_class  # MNIST's class names


def test_dataframes_have_documented_typed_columns(results):
    cells = results.cells()
    assert list(cells.columns[:4]) == ["variant", "lr", "row", "seed"]
    assert cells["variant"].dtype == "category" and cells["status"].dtype == "category"
    assert cells["lr"].dtype == np.float64 and cells["row"].dtype == np.float64  # NaN where a variant has no such place
    assert (cells.loc[cells["variant"] != "lr", "lr"] == 1e-3).all()  # the lr they trained at, though not swept
    assert cells["row"].isna().sum() == 6 and set(cells["swept"]) == {"", "lr, row"}  # original: no window
    assert cells["seed"].dtype == np.int64 and cells["epochs"].dtype == np.int64
    assert len(cells) == 18 and set(cells["status"]) == {"done"} and (cells["epochs"] == 2).all()
    assert cells.loc[cells["variant"] == "lr", "lr"].tolist() == [3e-3] * 6 + [1e-2] * 6
    epochs = results.epochs()
    assert len(epochs) == 36 and epochs["epoch"].dtype == np.int64
    assert list(epochs.columns) == ["variant", "lr", "row", "seed", "epoch", "train_loss", "train_acc", "val_loss",
                                    "val_acc", "test_loss", "test_acc", "train_eval_loss", "train_eval_acc",
                                    "weight_norm", "learning_rate", "images_per_s", "seconds", "train_seconds", "eval_seconds",
                                    "checkpoint_seconds", "pack_size", "machine", "hash", "swept"]
    assert (epochs["weight_norm"] > 0).all() and epochs["weight_norm"].dtype == np.float64  # train.metrics.EPOCH_METRICS
    assert list(cells.columns[-4:]) == ["class_acc:9", "seconds", "hash", "swept"]  # every recorded metric a column
    assert list(cells.columns[cells.columns.get_loc("gap"):][:3]) == ["gap", "ece", "class_acc:0"]
    assert (cells["gap"] == cells["train_eval_acc"] - cells["test_acc"]).all() and (cells["ece"] > 0).all()
    confusion = results.confusion("inverted")
    assert confusion.shape == (10, 10) and confusion.values.sum() == 3 * 500  # 3 seeds × the 500 test images
    assert np.trace(confusion.values) == round(cells.loc[cells["variant"] == "inverted", "test_acc"].sum() * 500)
    assert epochs["machine"].dtype == "category" and set(epochs["machine"]) == {petri.machine.machine()}
    effects = results.effects()
    assert list(effects.columns) == [
        "variant", "lr", "row", "n", "cells", "test_acc", "test_acc_ci95", "best_test_acc", "test_loss", "epochs",
        "diverged", "at_chance", "missing", "diff", "diff_fw_low", "diff_fw_high", "diff_eq_low", "diff_eq_high",
        "diff_ci95_low", "diff_ci95_high", "p_t", "p_wilcoxon", "p_signflip", "p_holm", "p_bonferroni", "p_tost",
        "p_better", "p_better_low", "p_better_high", "detectable_diff", "disagree", "p_mcnemar", "se", "df", "method",
        "verdict", "reason", "reference", "swept"]
    assert len(effects) == 6 and effects.loc[0, "verdict"] == "baseline"
    inv = effects[effects["variant"] == "inverted"].iloc[0]
    assert inv["diff"] < 0 and inv["diff_ci95_low"] < inv["diff"] < inv["diff_ci95_high"] and 0 < inv["p_holm"] <= 1
    assert inv["diff_fw_low"] <= inv["diff_ci95_low"] and inv["diff_fw_high"] >= inv["diff_ci95_high"]  # wider
    assert inv["p_holm"] <= inv["p_bonferroni"] and 0 <= inv["p_better"] <= 1
    assert set(effects["verdict"]) <= {"baseline", "better", "worse", "no detectable difference"}


def test_the_export_has_the_sweep_axes_as_typed_columns(results, tmp_path):
    cells = results.cells()
    for fmt, read in (("csv", pd.read_csv), ("parquet", pd.read_parquet)):
        paths = results.export(fmt, tmp_path / fmt)
        exported = read(next(p for p in paths if p.name == f"cells.{fmt}"))
        assert list(exported.columns[:5]) == ["hash", "variant", "lr", "row", "seed"] and "point" not in exported
        assert exported["lr"].dtype == np.float64 and exported["row"].dtype == np.float64, fmt
        mine = exported[exported["variant"] == "lr"].sort_values(["lr", "row", "seed"])
        assert mine["lr"].tolist() == cells.loc[cells["variant"] == "lr", "lr"].tolist()
        assert exported.loc[exported["variant"] != "lr", "lr"].isna().all()  # not at a point of that axis: empty
        epochs = read(next(p for p in paths if p.name == f"epochs.{fmt}"))
        assert {"lr", "row", "learning_rate"} <= set(epochs.columns) and epochs["learning_rate"].dtype == np.float64


def test_export_axes_of_mixed_kinds_are_text_and_a_taken_name_is_prefixed():
    from petri.report.export import with_axes

    rows = [{"hash": "a", "variant": "v", "point": '{"padding": 0, "status": 1}', "status": "done", "lr": 0.1},
            {"hash": "b", "variant": "v", "point": '{"padding": "same", "status": 2}', "status": "done", "lr": 0.1}]
    assert with_axes(rows) == [
        {"hash": "a", "variant": "v", "padding": "0", "point.status": 1, "status": "done", "learning_rate": 0.1},
        {"hash": "b", "variant": "v", "padding": "same", "point.status": 2, "status": "done", "learning_rate": 0.1}]


def test_effects_are_the_reports_numbers(results):
    index = results.report()
    report = pd.read_csv(index.parent / "variants.csv")
    effects = results.effects()
    assert list(report.columns) == list(effects.columns)  # one declaration: the CSV is the DataFrame
    for col in ("test_acc", "test_acc_ci95", "diff", "diff_fw_low", "p_bonferroni", "detectable_diff"):
        np.testing.assert_allclose(report[col], effects[col], rtol=1e-12)
    assert report["verdict"].tolist() == effects["verdict"].astype(str).tolist()
    comparisons = pd.read_csv(index.parent / "comparisons.csv")
    assert list(comparisons.columns) == list(results.comparisons().columns)


def test_running_again_trains_nothing_and_open_study_reads_it(results):
    again = petri.run(petri.load_study(STUDY), results.directory)
    assert again.cells()["hash"].tolist() == results.cells()["hash"].tolist()
    same = petri.open_study(results.directory)
    pd.testing.assert_frame_equal(same.effects(), results.effects())
    with pytest.raises(PetriError, match="no ledger here"):
        petri.open_study(results.directory / "nowhere")


def test_register_a_treatment_and_save_a_dataset_from_python(tmp_path):
    from typing import Literal

    from petri.treatments import TREATMENTS
    from petri.treatments.base import Treatment

    @petri.register_treatment
    class Darken(Treatment):
        name: Literal["darken"] = "darken"
        factor: float = 0.5

        def affine(self, st):
            return self.factor, 0.0

        def apply(self, x, idx, st, keys, epoch):
            return x.mul_(self.factor)

    try:
        rng = np.random.default_rng(0)
        path = petri.save_dataset(tmp_path / "toy.npz", rng.integers(0, 256, (300, 8, 8), dtype=np.uint8),
                                  rng.integers(0, 3, 300), rng.integers(0, 256, (60, 8, 8), dtype=np.uint8),
                                  rng.integers(0, 3, 60), classes=["a", "b", "c"])
        study = petri.load_study({"name": "toy", "data": str(path), "seeds": 2,
                                  "recipe": {"model": {"name": "mlp", "hidden": [8]}, "epochs": 1, "batch_size": 20},
                                  "variants": {"plain": {}, "dark": {"treatments": [{"name": "darken", "factor": 0.25}]}}})
        res = petri.run(study, tmp_path / "out", report=False)
        assert set(res.cells()["status"]) == {"done"} and len(res.effects()) == 2
        with pytest.raises(petri.PetriError, match=r"y_train: label -1 is negative"):
            petri.save_dataset(tmp_path / "bad.npz", np.zeros((3, 8, 8), np.uint8), np.array([0, -1, 0]),
                               np.zeros((3, 8, 8), np.uint8), np.zeros(3, np.int64))
    finally:
        TREATMENTS.classes.pop("darken", None)


def _python_block(readme: str) -> str:
    section = readme.split("## Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_python_example_works_verbatim(tmp_path, shared_data):
    code = _python_block((ROOT / "README.md").read_text())
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PETRI_DATA": str(shared_data.resolve())})
    assert r.returncode == 0, r.stderr
    assert "inverted" in r.stdout and "worse" in r.stdout
    assert (tmp_path / "runs" / "python-demo" / "report" / "index.html").is_file()


@pytest.mark.slow
def test_the_quickstart_notebook_runs_on_a_real_kernel(tmp_path, shared_data, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("PETRI_DATA", str(shared_data.resolve()))
    nb = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    table = nb.cells[2].outputs[-1]["data"]["text/plain"]
    assert re.search(r"0\s+original\s+0\.001\s+3", table) and re.search(r"1\s+inverted\s+0\.001\s+3", table)
    assert re.search(r"2\s+inverted\s+0\.003\s+3", table) and "baseline" in table
    streams = "".join(o.get("text", "") for o in nb.cells[2].outputs if o.output_type == "stream")
    assert "\x1b[" not in streams and "pack 1/1" in streams  # plain lines, no terminal codes
    assert any("image/png" in o.get("data", {}) for o in nb.cells[4].outputs)  # the figure


def test_reading_a_directory_another_process_is_training(tmp_path, shared_data):
    """A real writer process; every read is one consistent snapshot: never an error, never a half row,
    the finished epochs only grow."""
    slow = TOML.replace("epochs = 2", "epochs = 12").replace("train_size = 1500", "train_size = 3000")
    f = tmp_path / "slow.toml"
    f.write_text(slow)
    out = tmp_path / "out"
    writer = subprocess.Popen([sys.executable, "-m", "petri.cli", "run", str(f), "--out", str(out), "--no-report"],
                              env={**os.environ, "PETRI_DATA": str(shared_data.resolve())},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen, reads = [], 0
    try:
        while writer.poll() is None:
            if not (out / "petri.sqlite").exists():
                time.sleep(0.05)
                continue
            try:
                res = petri.open_study(out)
                cells, epochs = res.cells(), res.epochs()  # each call one snapshot: the epochs at least as new
            except PetriError as e:
                if "holds no runs yet" in str(e):
                    continue
                raise
            reads += 1
            assert not epochs[["train_loss", "train_acc", "test_loss", "test_acc"]].isna().any().any()
            assert (epochs.groupby("hash")["epoch"].max() == epochs.groupby("hash")["epoch"].count()).all()
            finished = set(cells.loc[cells["status"].isin(["done"]), "hash"])
            assert all(epochs[epochs["hash"] == h]["epoch"].max() == 12 for h in finished)
            seen.append(len(epochs))
        assert writer.wait(timeout=300) == 0, writer.stderr.read()
    finally:
        writer.kill()
    assert reads >= 5 and seen == sorted(seen) and seen[-1] <= 18 * 12
    assert len(petri.open_study(out).epochs()) == 18 * 12
    assert sqlite3.connect(out / "petri.sqlite").execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_train_one_model_from_python_returns_its_epochs_and_the_trained_module(mnist):
    import torch

    from petri.study.recipes import recipe_from_dict
    from petri.train.splits import make_splits
    from petri.treatments import Pipeline

    seen = []
    recipe = {"model": ["flatten", {"name": "dense", "units": 32}, "relu", {"name": "dense", "units": "classes"}],
              "epochs": 2, "train_size": 2000, "test_size": 1000}
    trained = petri.fit(recipe, "mnist", seed=1, on_epoch=seen.append)
    assert trained.status == "done" and [m["epoch"] for m in seen] == [1, 2]
    assert trained.epochs["epoch"].tolist() == [1, 2] and trained.epochs["epoch"].dtype == "int64"
    assert trained.epochs["test_acc"].tolist() == [m["test_acc"] for m in seen]
    model = trained.model
    assert isinstance(model, torch.nn.Sequential) and not model.training
    _, _, test = make_splits(mnist, recipe_from_dict(recipe), "cpu")
    pipe = Pipeline([[]], [1], mnist.spec.shape, 10, mnist.train_x, mnist.train_y, "cpu")
    with torch.no_grad():
        correct = int((model(pipe.images(test.x[None], test.ids[None], "test", 0)[0]).argmax(1) == test.y).sum())
    assert correct == round(trained.epochs["test_acc"].iloc[-1] * len(test.y))  # plain PyTorch, the same count
    again = petri.fit(recipe, "mnist", seed=1)
    pd.testing.assert_frame_equal(again.epochs.drop(columns=["images_per_s", "seconds"]),
                                  trained.epochs.drop(columns=["images_per_s", "seconds"]))
    with pytest.raises(SpecError, match=r"recipe\.model\.layers\[1\] \(dense\): dense needs a feature vector"):
        petri.fit({"model": ["relu", {"name": "dense", "units": 10}]}, "mnist")


def test_catalog_names_every_registered_thing_and_describes_one():
    from petri.explore import _registries

    table = petri.catalog()
    for kind, registry in _registries().items():
        assert set(table.loc[table["kind"] == kind, "name"]) == set(registry.classes), kind
    assert (table["about"].str.len() > 0).all()
    dropout = petri.catalog("dropout")
    assert dropout["parameter"].tolist() == ["p", "spatial"] and dropout["default"].tolist() == ["0.5", "false"]
    assert petri.catalog("label_noise").set_index("parameter").loc["p", "default"] == "required"
    # what each thing is: a whole sentence (never cut at a docstring's line end), its splits its own
    about = table.set_index("name")["about"]
    assert about["onecycle"].endswith("then down to lr / div_factor / final_div_factor at the last step, updated every step")
    assert not about.str.endswith((",", ";", ":")).any() and (about.str.count(r"\(") == about.str.count(r"\)")).all()
    for name, cls in _registries()["treatment"].items():
        splits = petri.catalog(name).set_index("parameter").loc["splits"]
        assert splits["default"] == json.dumps(list(cls.default_splits)), name
        assert ("train only" in splits["description"]) == (cls.allowed_splits == ("train",)), name
    assert petri.catalog("label_noise").set_index("parameter").loc["splits", "type"] == 'list of "train"'
    with pytest.raises(SpecError, match="'convv' is no model, layer, optimizer, schedule or treatment; known: models: mlp"):
        petri.catalog("convv")


def test_summary_and_datasets_as_dataframes(shared_data):
    s = petri.summary(["flatten", {"name": "dense", "units": 32}, "tanh", {"name": "dense", "units": "classes"}])
    assert s["output_shape"].tolist() == [(784,), (32,), (32,), (10,)] and s["params"].sum() == 25_450
    assert petri.summary("mnist_cnn", "cifar-10")["output_shape"].iloc[0] == (32, 30, 30)
    with pytest.raises(SpecError, match=r"model\.layers\[0\] \(dense\): dense needs a feature vector"):
        petri.summary([{"name": "dense", "units": 10}])
    with pytest.raises(SpecError, match="data: unknown data set 'nope'"):
        petri.summary("mlp", "nope")
    d = petri.datasets().set_index("name")
    from petri.data import DATASETS

    assert list(d.index) == list(DATASETS) and len(d) == 6
    assert d.loc["mnist", ["channels", "height", "width", "classes", "train", "test"]].tolist() == [1, 28, 28, 10, 60_000, 10_000]
    assert d.loc["mnist", "files"] == str(shared_data.resolve() / "mnist") or d.loc["mnist", "files"].endswith("mnist")
    assert pd.isna(petri.datasets(shared_data / "nowhere").loc[0, "files"])
    assert "cifar-100/coarse (20 classes)" in d.loc["cifar-100", "variants"]
    v = petri.verify_dataset("fashion-mnist")
    assert (v["train"], v["test"]) == (60_000, 10_000)


def test_help_on_results_documents_its_columns():
    doc = petri.Results.__doc__
    for needle in ("``cells()`` one row per place", "``epochs()`` one row per finished epoch", "``learning_rate``",
                   "``effects()`` one row per (variant, point)", "``seed_<source>``", "``noise()``"):
        assert needle in doc, needle
    assert {"Results", "Treatment", "Context"} <= set(dir(petri))


MIXED = {"name": "mixed", "data": "mnist", "seeds": 2,
         "recipe": {"model": {"name": "mlp", "hidden": [16]}, "epochs": 1, "train_size": 500, "test_size": 200},
         "variants": {"fixed": {},
                      "swept": {"recipe": {"optimizer": {"lr": {"values": [0.003, 0.01]}}}},
                      "sgd": {"recipe": {"optimizer": {"name": "sgd", "lr": {"values": [0.1]}}},
                              "treatments": [{"name": "sparsify", "threshold": {"values": [0.2]}}]}}}


def test_sweep_columns_hold_the_value_every_row_used(tmp_path, capsys):
    """A variant that does not sweep lr shows the lr it trained at; `swept` tells swept from fixed, and
    `optimizer` which optimiser a row's lr belongs to."""
    res = petri.run(petri.load_study(MIXED), tmp_path / "out")
    cells = res.cells()
    first = cells.drop_duplicates("variant").set_index("variant")
    assert first.loc["fixed", "lr"] == 1e-3 and first.loc["fixed", "swept"] == ""
    assert first.loc["sgd", "lr"] == 0.1 and first.loc["sgd", "optimizer"] == "sgd"
    assert first.loc["swept", "optimizer"] == "adam" and first.loc["swept", "swept"] == "lr"
    assert first.loc["sgd", "swept"] == "lr, threshold" and first.loc["sgd", "threshold"] == 0.2
    assert math.isnan(first.loc["fixed", "threshold"])  # it has no sparsify: nothing to fill in
    assert sorted(cells.loc[cells["variant"] == "swept", "lr"].unique()) == [0.003, 0.01]
    effects = res.effects().set_index("variant")
    assert effects.loc["fixed", "lr"] == 1e-3 and effects.loc["fixed", "swept"] == ""
    from petri.cli import main

    capsys.readouterr()
    assert main(["show", str(tmp_path / "out")]) == 0  # the terminal shows a variant's swept values as its point
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in capsys.readouterr().out.splitlines()
            if line.startswith("│")}
    assert rows["fixed"] == "—" and rows["sgd"] == "lr=0.1, threshold=0.2"


def test_frames_say_their_units(results):
    units = results.effects().attrs["units"]
    assert units["diff"].startswith("fraction") and units["test_acc"] == units["diff_fw_low"]
    assert results.comparisons().attrs["units"]["detectable_diff"].startswith("fraction")


def test_a_residual_blocks_rows_add_up_to_its_total():
    rows = petri.summary([{"name": "conv2d", "filters": 8, "padding": 1},
                          {"name": "residual", "layers": [{"name": "conv2d", "filters": 16, "padding": 1}, "relu"]},
                          "flatten", {"name": "dense", "units": "classes"}])
    block = rows.index[rows["layer"].str.startswith("residual")][0]
    inner = rows[(rows.index > block) & (rows["depth"] == 1)]
    assert inner["params"].sum() == rows.loc[block, "params"] == 1_328
    assert inner["layer"].str.strip().str.startswith("shortcut: ").sum() == 2  # the automatic 1×1 projection and its BN
