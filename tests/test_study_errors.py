"""A study file's mistakes: each said in one line naming the file and the field, every mistake of a
file at once, placed where the field is written; hostile files (not text, nested too deeply, huge
values, sizes that would hang) refused in seconds and bounded memory; generated mutations of a valid
study parsed or refused in one line."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import tomllib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import BASE_ERR, SMALL_STUDY, one_line

from petri.errors import PetriError, SpecError
from petri.study.spec import load_study, parse_study
from petri.train.recipe import Recipe

# the small study with one variant and one epoch
BASE = SMALL_STUDY.replace('name = "small"', 'name = "t"').replace("epochs = 2", "epochs = 1").split("[variants.inverted]")[0]


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


# --- hostile study files: one line, no hang, bounded memory -----------------------------------

@pytest.mark.parametrize("content,needle", [
    (b"name = \"x\"\n\xff\xfe garbage", "not UTF-8 text (byte 11)"),
    (bytes(range(256)) * 4, "not UTF-8 text"),
    (b"name = \"a\x00b\"\n", "holds a NUL byte"),
    (b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deeply"),
    (b"x = " + b"{a = " * 3000 + b"1" + b"}" * 3000 + b"\n", "nested too deeply"),
])
def test_files_that_are_not_a_study(tmp_path, cli, content, needle):
    f = tmp_path / "s.toml"
    f.write_bytes(content)
    code, _, err = cli("run", f, "--dry-run")
    one_line(code, err, 2, needle)


def test_a_huge_value_is_not_echoed_back(tmp_path, cli):
    f = tmp_path / "s.toml"
    f.write_text(SMALL_STUDY.replace("batch_size = 100", f'batch_size = "{"9" * 10_000_000}"'))
    t = time.perf_counter()
    code, _, err = cli("run", f, "--dry-run")
    one_line(code, err, 2, "s.toml: recipe.batch_size: must be an integer (got '99999")  # the [recipe] line
    assert len(err) < 300 and time.perf_counter() - t < 30


@pytest.mark.parametrize("old,new,needle", [
    ("batch_size = 100", 'batch_size = "100"', "batch_size: must be an integer (got '100')"),
    ("epochs = 2", "epochs = true", "epochs: must be an integer (got True)"),
    ("lr = 1e-3", 'lr = "0.001"', "lr: must be a number (got '0.001')"),
    ("hidden = [16]", "hidden = [16.0]", "hidden[0]: must be an integer (got 16.0)"),
    ("lr = 1e-3", "lr = inf", "lr: must be a finite number (got inf)"),
    ("lr = 1e-3", "lr = nan", "lr: must be a finite number (got nan)"),
    ('treatments = ["invert"]', 'treatments = [{ name = "standardize", mean = nan }]', "mean: must be a finite number"),
    ('treatments = ["invert"]', 'treatments = [{ name = "standardize", std = inf }]', "std: must be a finite number"),
    ("hidden = [16]", "hidden = [100000000]", "parameters per member need about"),
    ("seeds = 2", "seeds = 1000000000", "seeds: must be a count 1..10,000"),
    ("seeds = 2", "seeds = 100000000000000000000", "seeds: must be a count"),
    ("seeds = 2", "seeds = [0, 1000000000000000000000000000000]", "integers 0..2147483647"),
    ("[variants.original]", '[variants.original]\nrecipe = { batch_size = { range = [1, 100000000] } }',
     "the study has over 100,000 cells"),
    ("[variants.original]", '[variants.original]\nrecipe = { optimizer = { name = "adam", lr = { range = [0.0, 1.0, 1e-9] } } }',
     "the study has over 100,000 cells"),
    ('name = "small"', 'name = "a/../../b"', "name: 'a/../../b' is not allowed"),
    ('name = "small"', 'name = "a\\u0000b"', "name: 'a\\x00b' is not allowed"),
    ("epochs = 2", 'epochs = 2\ndevice = "cuda"', 'device: "cuda", but this machine has no CUDA device'),
    ("[variants.inverted]", '[variants.inverted]\nrecipe = "lr = 0.1"', "variants.inverted.recipe: must be a table"),
    ("[recipe]", "recipe = 3\n[variants.dummy]", "recipe: missing or not a table"),
])
def test_bad_values_are_refused_at_parse_time(tmp_path, cli, old, new, needle):
    f = tmp_path / "s.toml"
    f.write_text(SMALL_STUDY.replace(old, new, 1))
    t = time.perf_counter()
    code, _, err = cli("run", f, "--dry-run", "--out", tmp_path / "out")
    one_line(code, err, 2, needle, "s.toml")
    assert time.perf_counter() - t < 20 and not (tmp_path / "out").exists()


def _limited(seconds: int, gib: int):
    def limit():
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds))
        resource.setrlimit(resource.RLIMIT_DATA, (gib << 30, gib << 30))
    return limit


@pytest.mark.parametrize("old,new", [
    ("seeds = 2", "seeds = 1000000000"),
    ("[variants.original]", '[variants.original]\nrecipe = { epochs = { range = [1, 10000000] }, batch_size = { range = [1, 10000000] } }'),
])
def test_sizes_neither_hang_nor_eat_memory(tmp_path, old, new, shared_data):
    """In a real process with a CPU-time and a memory limit: refused in seconds, in bounded memory."""
    f = tmp_path / "s.toml"
    f.write_text(SMALL_STUDY.replace(old, new, 1))
    r = subprocess.run([sys.executable, "-m", "petri.cli", "run", str(f), "--dry-run"], capture_output=True, text=True,
                       timeout=120, preexec_fn=_limited(60, 6),
                       env={**os.environ, "PETRI_DATA": str(shared_data.resolve())})
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr


_leaf = st.one_of(st.integers(-10**30, 10**30), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                  st.text(max_size=30), st.just([]), st.lists(st.integers(-5, 5), max_size=4), st.just({}),
                  st.just({"values": []}), st.just({"range": [5, 1]}), st.just({"range": [0, 1e300, 1e-300]}),
                  st.just("\x00"), st.just("../../etc"), st.just({"name": "conv2d", "filters": -1}))


def _paths(node, prefix=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


MUTABLE = json.loads(json.dumps({
    "name": "h", "data": "mnist", "seeds": 2, "baseline": "a",
    "recipe": {"model": {"name": "mlp", "hidden": [8]}, "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": 50,
               "epochs": 1, "train_size": 500, "early_stopping": {"monitor": "test_acc", "patience": 2, "on_test": True},
               "schedule": "cosine"},
    "variants": {"a": {}, "b": {"treatments": [{"name": "window_keep", "size": 9, "row": 3, "col": 3}],
                                "recipe": {"model": [{"name": "conv2d", "filters": 2}, "relu", "flatten",
                                                     {"name": "dense", "units": "classes"}]}}},
}))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_mutation_of_a_study_is_a_study_or_one_line(data):
    """Generated: a valid study with one value anywhere replaced by a hostile one is parsed or refused in
    one short line, never a traceback, never a hang."""
    study = json.loads(json.dumps(MUTABLE))
    paths = list(_paths(study))
    path = data.draw(st.sampled_from(paths))
    node = study
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = data.draw(_leaf)
    text = json.dumps(study, allow_nan=True)
    t = time.perf_counter()
    try:
        parse_study(text, "gen.toml")
    except SpecError as e:
        msg = str(e)
        assert "\n" not in msg and len(msg) < 1500 and msg.startswith("gen.toml"), msg
    except PetriError as e:  # data errors surface as SpecError at parse time; nothing else may escape
        raise AssertionError(f"{type(e).__name__}: {e}") from None
    assert time.perf_counter() - t < 10
