"""Study files: parsing, profiles, sweeps, named networks, cell identity (mistakes: test_study_errors.py)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from conftest import BASE_ERR, SMALL_STUDY

from petri.errors import SpecError
from petri.study.packing import make_packs
from petri.study.spec import load_study, parse_study

ROOT = Path(__file__).resolve().parent.parent

# the small study with one variant and one epoch
BASE = SMALL_STUDY.replace('name = "small"', 'name = "t"').replace("epochs = 2", "epochs = 1").split("[variants.inverted]")[0]


def test_shipped_inverted_mnist_study():
    s = load_study(ROOT / "studies" / "inverted-mnist.toml")
    assert s.name == "inverted-mnist" and s.seeds == [0, 1, 2, 3, 4] and s.baseline == "original"
    assert len(s.cells) == 20
    bn = [c for c in s.cells if c.variant == "inverted-bn"][0]
    assert bn.recipe.model.input_bn and bn.recipe.model.hidden == [64]
    assert [t.name for t in bn.treatments] == ["invert"]
    assert len({c.hash for c in s.cells}) == 20


def test_window_grid_sweep_is_400_cells_per_seed():
    text = BASE + """
[variants.grid]
treatments = [{ name = "window_keep", size = 9, row = { range = [0, 20] }, col = { range = [0, 20] } }]
"""
    s = parse_study(text)
    grid = [c for c in s.cells if c.variant == "grid"]
    assert len(grid) == 400 * 2
    assert {dict(c.point)["row"] for c in grid} == set(range(20))
    assert grid[1].point_label == "row=0, col=0" and grid[2].point_label == "row=0, col=1"


def test_values_and_float_range_axes_multiply():
    text = BASE + """
[variants.lr]
recipe = { optimizer = { name = "adam", lr = { values = [1e-3, 1e-2] } } }
treatments = [{ name = "label_noise", p = { range = [0.0, 1.0, 0.25] } }]
"""
    s = parse_study(text)
    cells = [c for c in s.cells if c.variant == "lr"]
    assert len(cells) == 2 * 4 * 2
    assert sorted({dict(c.point)["p"] for c in cells}) == [0.0, 0.25, 0.5, 0.75]
    # lr differs within a pack; everything else is shared
    assert len(make_packs(cells, max_members=64)) == 1


def test_hash_identity():
    a = parse_study(BASE).cells
    b = parse_study(BASE.replace("seeds = 2", "seeds = [1, 0, 5]")).cells
    assert {c.hash for c in a} < {c.hash for c in b}
    c = parse_study(BASE.replace("epochs = 1", "epochs = 2")).cells
    assert not ({x.hash for x in a} & {x.hash for x in c})
    d = parse_study(BASE.replace('name = "t"', 'name = "other"')).cells
    assert [x.hash for x in a] == [x.hash for x in d]  # the study name is not part of a cell


def test_model_override_with_other_family_replaces():
    text = BASE + """
[variants.cnn]
recipe = { model = { name = "mnist_cnn" }, batch_size = 50 }
"""
    cnn = [c for c in parse_study(text).cells if c.variant == "cnn"][0]
    assert cnn.recipe.model.name == "mnist_cnn" and cnn.recipe.batch_size == 50


def test_profiles_override_recipe_and_seeds():
    text = BASE + """
[profiles.cpu]
seeds = 1
recipe = { epochs = 3, model = { name = "mlp", hidden = [8] } }
"""
    full = parse_study(text)
    cpu = parse_study(text, profile="cpu")
    assert len(full.cells) == 2 and len(cpu.cells) == 1
    assert cpu.cells[0].recipe.epochs == 3 and cpu.cells[0].recipe.model.hidden == [8]
    assert cpu.cells[0].recipe.train_size == 1000  # everything else from the base recipe
    with pytest.raises(SpecError, match=r"--profile 'gpu' is not a profile of this study; profiles: cpu"):
        parse_study(text, "s.toml", profile="gpu")
    with pytest.raises(SpecError, match=r"profiles.cpu: unknown field 'epochs'"):
        parse_study(BASE + "[profiles.cpu]\nepochs = 3\n")


@pytest.mark.parametrize("path", sorted((ROOT / "studies").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_study_validates(path):
    raw = tomllib.loads(path.read_text())
    for profile in [None, *raw.get("profiles", {})]:
        data = "fashion-mnist" if raw["data"] == "cifar-10" else None  # CIFAR-10 is not on these machines
        s = load_study(path, data, profile)
        assert s.cells and make_packs(s.cells, max_members=64)


# Each shipped study's cell hashes (per profile), as sha256 of the hashes in order: a ledger made by any
# earlier petri keeps its cells. A change meant to re-key cells bumps spec.SEMANTICS and these pins with it.
SHIPPED_HASHES = {
    "activations": "93301ec50bc40396",
    "adaptive": "243d43a318c126a8",
    "bn-lr": "a99ca1e009b3bcf9",
    "calibration": "094b458ca845539f",
    "cifar-augment": "113d74e323c2cf5a",
    "cifar-augment@cpu": "43922ef0957bf95d",
    "cifar-bn-lr": "f8590f99fbd4db01",
    "cifar-bn-lr@cpu": "478135cc7b2ac4c0",
    "cifar-corruptions": "0704e545fec1ff96",
    "cifar-corruptions@cpu": "d9e7a493dfcf5cf4",
    "cifar-label-noise": "99f31175a05a4abc",
    "cifar-label-noise@cpu": "5ff0ac26f20ad03b",
    "cross-sampling": "3fd69f1f494553c8",
    "cross-sampling@cpu": "94d99c75616afe20",
    "crossed-seeds": "f8f6b7c6515d267f",
    "equivalence": "851255f9bfa02412",
    "equivalence@few": "97e2103ee6cc4659",
    "inverted-mnist-bn": "ddeb88db07148658",
    "inverted-mnist": "aa49b7191040be41",
    "lenet5": "a3e7e70dcedf78f5",
    "lenet5@cpu": "858b7c45d78dff84",
    "mlp-log": "cb1c8eb7c650698e",
    "noise-sources": "185799f513189431",
}


@pytest.mark.parametrize("key", sorted(SHIPPED_HASHES))
def test_shipped_studies_keep_their_cell_hashes(key):
    import hashlib

    name, _, profile = key.partition("@")
    path = ROOT / "studies" / f"{name}.toml"
    data = "fashion-mnist" if tomllib.loads(path.read_text())["data"] == "cifar-10" else None
    cells = load_study(path, data, profile or None).cells
    assert hashlib.sha256(" ".join(c.hash for c in cells).encode()).hexdigest()[:16] == SHIPPED_HASHES[key]


def test_val_monitor_needs_a_validation_split():
    text = BASE.replace("epochs = 1", 'epochs = 1\nearly_stopping = { monitor = "val_acc", patience = 2 }')
    with pytest.raises(SpecError, match=r"recipe: early_stopping.monitor 'val_acc' needs a validation split: add "
                                         r"val_size \(e.g. val_size = 5000"):
        parse_study(text)
    assert parse_study(text.replace("test_size = 500", "test_size = 500\nval_size = 200")).cells


def test_selecting_on_test_data_is_refused_unless_asked_for():
    text = BASE.replace("epochs = 1", 'epochs = 1\nearly_stopping = { monitor = "test_acc", patience = 2 }')
    with pytest.raises(SpecError, match=r"early_stopping.monitor 'test_acc' would choose each cell's stopping epoch on "
                                         r"the test set.*set early_stopping.on_test = true"):
        parse_study(text)
    knowingly = parse_study(text.replace("patience = 2", "patience = 2, on_test = true"))
    assert knowingly.cells[0].recipe.early_stopping.on_test


def test_adding_a_field_with_a_default_keeps_cell_hashes(monkeypatch):
    """A cell is hashed without the fields at their defaults: a new optional field orphans no ledger."""
    from pydantic import Field

    from petri.models import MLP, MODELS

    before = [c.hash for c in parse_study(BASE).cells]

    class Grown(MLP):
        new_knob: float = Field(default=0.5)

    monkeypatch.setitem(MODELS.classes, "mlp", Grown)
    after = parse_study(BASE).cells
    assert isinstance(after[0].recipe.model, Grown)
    assert [c.hash for c in after] == before
    knob = parse_study(BASE.replace("hidden = [16]", "hidden = [16], new_knob = 0.7")).cells
    assert {c.hash for c in knob}.isdisjoint(before)
    explicit = parse_study(BASE.replace("hidden = [16]", "hidden = [16], activation = \"relu\", init = \"torch\""))
    assert [c.hash for c in explicit.cells] == before  # a default written out is the same cell


def test_layer_lists_sweep_and_override():
    text = BASE.replace('model = { name = "mlp", hidden = [16] }',
                        'model = ["flatten", { name = "dense", units = { values = [16, 32] } }, '
                        '{ values = ["relu", "tanh"] }, { name = "dense", units = "classes" }]')
    text = text.replace("epochs = 1", 'epochs = 1\nschedule = "cosine"') + """
[variants.bn]
recipe = { model = { layers = ["flatten", { name = "dense", units = 16 }, "batch_norm", "relu",
                                { name = "dense", units = "classes" }] }, optimizer = "adamw" }
"""
    s = parse_study(text)
    orig = [c for c in s.cells if c.variant == "original"]
    assert len(orig) == 8 and {c.point for c in orig} == {
        (("units", u), ("layers[2]", a)) for u in (16, 32) for a in ("relu", "tanh")}
    tanh32 = next(c for c in orig if c.point == (("units", 32), ("layers[2]", "tanh")))
    assert [type(x).__name__ for x in tanh32.recipe.model.layers] == ["FlattenSpec", "Dense", "Tanh", "Dense"]
    assert tanh32.recipe.model.layers[1].units == 32 and tanh32.recipe.schedule.name == "cosine"
    bn = [c for c in s.cells if c.variant == "bn"][0]
    assert bn.recipe.model.layers[2].name == "batch_norm" and bn.recipe.optimizer.name == "adamw"
    assert len({c.hash for c in s.cells}) == len(s.cells)


def test_layer_list_errors_name_the_variant_and_layer():
    text = BASE + '[variants.x]\nrecipe = { model = ["flatten", { name = "conv2d", filters = 4 }] }\n'
    with pytest.raises(SpecError, match=r"variants.x.recipe.model.layers\[1\] \(conv2d\): conv2d needs an image"):
        parse_study(text)
    text = BASE + '[variants.x]\nrecipe = { model = [{ name = "conv2d", filters = 4, kernel = 0 }] }\n'
    with pytest.raises(SpecError, match=r"variants.x.recipe.model.layers\[0\].kernel: must be ≥ 1 \(got 0\)"):
        parse_study(text)


def test_study_names_in_any_script_and_petri_shows_its_api():
    import petri

    assert parse_study(BASE.replace('name = "', 'name = "петри-тест ', 1)).name.startswith("петри-тест")
    for bad in ("a/b", "a\\tb", "_x", ".."):
        with pytest.raises(SpecError, match="is not allowed; a study name is"):
            parse_study(BASE.replace('name = "', f'name = "{bad}', 1) if bad != ".." else
                        re.sub(r'name = "[^"]*"', 'name = ".."', BASE, count=1))
    assert {"open_study", "run", "load_study", "register_metric", "Results"} <= set(dir(petri))


def test_every_schedule_is_documented_and_starts_at_its_rate():
    import petri
    from petri.train import SCHEDULES

    for name, cls in SCHEDULES.items():
        s = cls()
        assert cls.__doc__ and petri.catalog(name)["kind"].tolist() in ([], ["schedule"] * len(petri.catalog(name)))
        factors = [s.factor(i, 10, 100) for i in range(100)]
        assert all(0 <= f <= 1 for f in factors), name
    assert petri.catalog("onecycle")["parameter"].tolist() == ["warmup", "div_factor", "final_div_factor"]
    assert parse_study(BASE_ERR.replace("SCHED", 'schedule = "cosine"').replace("VARIANT", "")).cells[0].hash == \
        parse_study(BASE_ERR.replace("SCHED", 'schedule = { name = "cosine" }').replace("VARIANT", "")).cells[0].hash


def test_petri_models_describes_a_schedule_without_parameters(capsys):
    from petri.cli import main

    assert main(["models", "cosine"]) == 0
    assert "cosine (schedule): cosine annealing from the base rate" in capsys.readouterr().out
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "schedules" in out and "onecycle" in out and "warmup=0.3" in out


def test_petri_summary_reads_toml_json_and_study_files(capsys):
    from petri.cli import main

    assert main(["summary", '{ name = "mlp", hidden = [32] }']) == 0
    assert "total parameters per member: 25,450" in capsys.readouterr().out
    assert main(["summary", '{"name": "mlp", "hidden": [32]}']) == 0
    assert "25,450" in capsys.readouterr().out
    assert main(["summary", '["flatten", { name = "dense", units = "classes" }]']) == 0
    assert "7,850" in capsys.readouterr().out
    assert main(["summary", "studies/noise-sources.toml"]) == 0
    out = capsys.readouterr().out
    assert "used by: mlp, mlp-inverted" in out and "used by: cnn" in out and "5,258" in out
    assert main(["summary", "{ name = "]) == 2
    err = capsys.readouterr().err
    assert err.startswith("petri: error: MODEL: neither JSON") and err.count("\n") == 1


def test_packs_are_even_and_say_why_they_are_apart():
    """33 cells of one shape at most 32 per pack train as 17 + 16 (no pack of one, 2-3x slower per
    image); a pack says what keeps it apart: the differing recipe field, or the size limit."""
    from petri.study.packing import split_by

    text = BASE_ERR.replace("SCHED", "").replace("VARIANT", 'recipe = { optimizer = { name = "sgd", momentum = '
                                                                '{ values = [0.0, 0.9] } } }')
    s = parse_study(text.replace('name = "x"', 'name = "x"\nseeds = 33'))
    plain = [c for c in s.cells if c.variant == "a"]
    packs = make_packs(plain, max_members=32)
    assert sorted(len(p.cells) for p in packs) == [16, 17]
    assert split_by(packs) == ["one of 2 packs of the same shape: at most 32 members per pack"] * 2
    sgd = make_packs([c for c in s.cells if c.variant == "b"], max_members=64)
    assert [len(p.cells) for p in sgd] == [33, 33]
    assert split_by(sgd) == ["optimizer.momentum=0.0", "optimizer.momentum=0.9"]
    mixed = make_packs(s.cells, max_members=64)
    assert split_by(mixed)[0].startswith("optimizer.")  # adam vs sgd: their settings differ


NETS = """
name = "x"
data = "mnist"
baseline = "tanh"
[networks]
small = ["flatten", { name = "dense", units = 32 }, "tanh", { name = "dense", units = "classes" }]
[recipe]
model = "small"
[variants.tanh]
[variants.relu]
recipe = { model = { layers = { 2 = "relu" } } }
[variants.sweep]
recipe = { model = { values = ["small", "mlp"] } }
"""


def test_a_network_is_written_once_and_variants_change_what_differs():
    """[networks] names a layer list; a variant patches one layer of the inherited list; a sweep over
    models reads the names; each cell is the cell the whole list written out would be."""
    s = parse_study(NETS)
    by = {(c.variant, c.point): c for c in s.cells}
    assert [x.name for x in by[("relu", ())].recipe.model.layers] == ["flatten", "dense", "relu", "dense"]
    assert [x.name for x in by[("tanh", ())].recipe.model.layers] == ["flatten", "dense", "tanh", "dense"]
    assert by[("sweep", (("model", "small"),))].hash == by[("tanh", ())].hash  # the same cell, trained once
    assert by[("sweep", (("model", "mlp"),))].recipe.model.name == "mlp"
    inline = NETS.replace('model = "small"', 'model = ["flatten", { name = "dense", units = 32 }, "relu", '
                                             '{ name = "dense", units = "classes" }]')
    assert parse_study(inline.split("[variants.relu]")[0]).cells[0].hash == by[("relu", ())].hash


@pytest.mark.parametrize("edit, message", [
    (('recipe = { model = { layers = { 2 = "relu" } } }', 'recipe = { model = { layers = { 9 = "relu" } } }'),
     "variants.relu.recipe.model.layers.9: a patch of the inherited layer list names positions 0..3"),
    (("small = [", "mlp = ["), "networks.mlp: is a model's name already"),
    (('small = ["flatten"', 'small = 3\nother = ["flatten"'), "networks: a table of named layer lists"),
])
def test_bad_networks_are_one_line(edit, message):
    with pytest.raises(SpecError) as e:
        parse_study(NETS.replace(*edit))
    assert message in str(e.value) and "\n" not in str(e.value)
