"""Study files: parsing, sweeps, identity, and every kind of bad input."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from petri.errors import PetriError, SpecError
from petri.study.packing import make_packs
from petri.study.spec import load_study, parse_study
from petri.train.recipe import Recipe

ROOT = Path(__file__).resolve().parent.parent

BASE = """
name = "t"
data = "mnist"
seeds = 2
baseline = "original"

[recipe]
model = { name = "mlp", hidden = [16] }
optimizer = { name = "adam", lr = 1e-3 }
batch_size = 100
epochs = 1
train_size = 1000
test_size = 500

[variants.original]
"""


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


BAD = [
    (BASE.replace("[recipe]", "[recipe"), r"malformed TOML: .*line \d+, column \d+"),
    (BASE.replace('data = "mnist"', 'data = "mnits"'), r"data: unknown data set 'mnits'; known data sets: mnist, fashion-mnist, cifar-10"),
    (BASE.replace('name = "mlp"', 'name = "mpl"'), r"recipe.model: unknown model 'mpl'; known models: mlp, mnist_cnn, vgg, layers"),
    (BASE.replace('name = "adam"', 'name = "adamx"'), r"recipe.optimizer: unknown optimizer 'adamx'; known optimizers: adam, adamw, sgd, rmsprop"),
    (BASE + '[variants.x]\ntreatments = [{ name = "blur" }]\n', r"variants.x.treatments\[0\]: unknown treatment 'blur'; known treatments: invert"),
    (BASE.replace("epochs = 1", 'epochs = "four"'), r"recipe.epochs: must be an integer \(got 'four'\)"),
    (BASE.replace("epochs = 1", "epochs = 0"), r"recipe.epochs: must be ≥ 1 \(got 0\)"),
    (BASE + '[variants.x]\ntreatments = [{ name = "label_noise", p = 1.5 }]\n', r"variants.x.treatments\[0\].p: must be ≤ 1.0 \(got 1.5\)"),
    (BASE + '[variants.x]\ntreatments = [{ name = "window_keep", size = 9, row = 25, col = 0 }]\n', r"treatments\[0\] \(window_keep\): window size=9 at row=25.*allowed: row \+ size <= 28"),
    (BASE.replace("batch_size = 100", "batch_size = 5000"), r"batch_size: 5000 exceeds the 1000 training images; allowed: 1..1000"),
    (BASE.replace('baseline = "original"', 'baseline = "orig"'), r"baseline: 'orig' is not a variant; variants: original"),
    (BASE + '[variants.x]\ntreatments = [{ name = "invert" }]\nrecipe = { epochs = { values = [] } }\n', r"values must be a non-empty list"),
    (BASE + '[variants.x]\nrecipe = { epochs = { range = [5, 5] } }\n', r"range \[5, 5\] is empty"),
    (BASE.replace("seeds = 2", "seeds = 0"), r"seeds: must be a count 1..10,000"),
    (BASE + "colour = 3\n", r"unknown field 'colour'"),
    (BASE.replace("[variants.original]", ""), r"variants: none defined"),
    (BASE.replace('model = { name = "mlp", hidden = [16] }', 'model = { name = "mlp", hidden = [16], depth = 3 }'),
     r"recipe.model.depth: unknown field; allowed: init, hidden, activation, bn, dropout, input_bn"),
]


@pytest.mark.parametrize("text,msg", BAD)
def test_bad_study_files(text, msg, tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(SpecError, match=msg) as e:
        load_study(f)
    assert "\n" not in str(e.value)
    assert "bad.toml" in str(e.value)


_values = st.one_of(st.integers(-5, 100000), st.floats(allow_nan=True), st.text(max_size=8), st.booleans(),
                    st.lists(st.integers(-3, 30), max_size=3), st.just({"range": [3, 1]}), st.just({"values": []}))
_fields = st.sampled_from([
    ("recipe", "epochs"), ("recipe", "batch_size"), ("recipe", "train_size"), ("recipe", "model"),
    ("recipe", "optimizer"), ("recipe", "device"), ("", "seeds"), ("", "data"), ("", "baseline"),
    ("treat", "p"), ("treat", "size"), ("treat", "row"), ("treat", "name"), ("treat", "splits"),
])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_fields, _values), min_size=1, max_size=3))
def test_fuzz_bad_study_files_give_one_line_errors(edits):
    """Whatever we break, the result is a valid study or a one-line SpecError — never a traceback."""
    raw = tomllib.loads(BASE)
    raw["variants"]["x"] = {"treatments": [{"name": "window_keep", "size": 9, "row": 0, "col": 0}]}
    for (where, key), value in edits:
        if where == "recipe":
            raw["recipe"][key] = value
        elif where == "treat":
            raw["variants"]["x"]["treatments"][0][key] = value
        else:
            raw[key] = value
    try:
        parse_study(_dump(raw), "fuzz.toml")
    except SpecError as e:
        assert "\n" not in str(e) and str(e).startswith("fuzz.toml")
    except PetriError as e:  # pragma: no cover - any other user-facing error would be a bug here
        pytest.fail(f"unexpected {type(e).__name__}: {e}")


def _dump(d) -> str:
    """A tiny TOML writer for the fuzz test (inline tables everywhere)."""
    import json
    import math

    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float):
            return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
        if isinstance(v, (int,)):
            return str(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return "{ " + ", ".join(f'"{k}" = {val(x)}' for k, x in v.items()) + " }"

    top = [f'"{k}" = {val(v)}' for k, v in d.items() if k not in ("recipe", "variants")]
    out = "\n".join(top) + "\n[recipe]\n" + "\n".join(f'"{k}" = {val(v)}' for k, v in d["recipe"].items())
    for name, v in d["variants"].items():
        out += f'\n[variants."{name}"]\n' + "\n".join(f'"{k}" = {val(x)}' for k, x in v.items())
    return out + "\n"


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


BASE_ERR = """
name = "x"
data = "mnist"
[recipe]
model = { name = "mlp", hidden = [16] }
SCHED
[variants.a]
[variants.b]
VARIANT
"""


@pytest.mark.parametrize("base, variant, message", [
    ('schedule = { name = "step", gama = 0.5 }', "", "<study>: recipe.schedule.gama: unknown field; allowed: step_epochs, gamma"),
    ("", 'recipe = { schedule = { name = "step", gama = 2 } }',
     "<study>: variants.b.recipe.schedule.gama: unknown field; allowed: step_epochs, gamma"),
    ('schedule = { name = "cosine", gamma = 0.5 }', "", "recipe.schedule.gamma: unknown field; cosine takes no parameters"),
    ('schedule = "cosin"', "", "recipe.schedule: unknown schedule 'cosin'; known schedules: constant, step, cosine, onecycle"),
    ("batch_size = 0", "", "<study>: recipe.batch_size:"),
])
def test_errors_name_where_the_field_is_written(base, variant, message):
    """A field of the top-level [recipe] is reported there, not in the first variant that inherits it."""
    with pytest.raises(SpecError) as e:
        parse_study(BASE_ERR.replace("SCHED", base).replace("VARIANT", variant))
    assert message in str(e.value)


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


def test_a_files_mistakes_are_reported_together(tmp_path, capsys):
    """Three typos, one run: each named where it is written, in one line, exit 2."""
    from petri.cli import main

    text = BASE_ERR.replace("SCHED", 'epochs = 0\nbatch_size = "x"').replace(
        "VARIANT", 'treatments = ["blur"]\nrecipe = { optimizer = { name = "adam", lrr = 1 } }')
    with pytest.raises(SpecError) as e:
        parse_study(text)
    assert e.value.parts == [  # the shared [recipe]'s two once (both variants meet them), then variant b's two
        "<study>: recipe.batch_size: must be an integer (got 'x')", "<study>: recipe.epochs: must be ≥ 1 (got 0)",
        "<study>: variants.b.recipe.optimizer.lrr: unknown field; allowed: lr, beta1, beta2, eps, weight_decay",
        "<study>: variants.b.treatments[0]: unknown treatment 'blur'; known treatments: invert, sparsify, "
        "standardize, window_keep, window_drop, label_noise, permute_pixels, shuffle_pixels, gaussian_images, crop, "
        "flip"]
    assert str(e.value).startswith("<study>: 4 mistakes: (1) recipe.batch_size") and " | (4) variants.b." in str(e.value)
    f = tmp_path / "s.toml"
    f.write_text(text)
    assert main(["run", str(f), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("petri: error: s.toml: 4 mistakes: (1) recipe.batch_size") and err.count("\n") == 1, err


def test_a_wrong_model_does_not_hide_the_recipes_other_mistakes(tmp_path, capsys):
    """A misspelt model parameter, optimizer parameter and two recipe fields: all four in one line."""
    from petri.cli import main

    text = BASE_ERR.replace("hidden = [16]", "hiden = [16]").replace(
        "SCHED", 'batch_sise = 100\nepoch = 1\noptimizer = { name = "sgd", lrr = 0.1 }').replace("VARIANT", "")
    with pytest.raises(SpecError) as e:
        parse_study(text)
    recipe_fields = ", ".join(f for f in Recipe.model_fields)
    assert e.value.parts == [
        "<study>: recipe.model.hiden: unknown field; allowed: init, hidden, activation, bn, dropout, input_bn",
        "<study>: recipe.optimizer.lrr: unknown field; allowed: lr, momentum, nesterov, weight_decay",
        f"<study>: recipe.batch_sise: unknown field; allowed: {recipe_fields}",
        f"<study>: recipe.epoch: unknown field; allowed: {recipe_fields}"]
    f = tmp_path / "s.toml"
    f.write_text(text)
    assert main(["run", str(f), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("petri: error: s.toml: 4 mistakes: (1) recipe.model.hiden") and err.count("\n") == 1, err
    assert "(4) recipe.epoch: unknown field; allowed: model, optimizer" in err


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
