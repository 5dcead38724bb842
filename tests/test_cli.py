"""The command line: run, show and export of a study; data, train, summary and models; a bad command
line or bad input is one line (exit 2, the ledger untouched), an internal error one line unless
PETRI_DEBUG=1 asks for its traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from conftest import SMALL_STUDY, ledger, write_study

from petri.cli import app, main

STUDY = SMALL_STUDY
runner = CliRunner()


@pytest.mark.parametrize("args,needle", [
    (["run", "{f}", "--max-members", "abc"], "Invalid value for '--max-members'"),
    (["run", "{f}", "--max-members", "0"], "greater than or equal to 1"),
    (["run", "{f}", "--max-members", "-3"], "greater than or equal to 1"),
    (["run", "{f}", "--frobnicate"], "No such option: --frobnicate"),
    (["run"], "Missing argument"),
    (["show"], "Missing argument"),
    (["nosuchcommand"], "No such command 'nosuchcommand'"),
    (["run", "{f}", "--executor", "spark"], "--executor: 'spark' is not an executor; allowed: local, ray"),
    (["export", "{out}", "--format", "xlsx"], "--format: 'xlsx' is not supported"),
    (["run", "{f}", "--out", "{file}"], "is a file; a study directory is a folder"),
    (["run", "{missing}"], "cannot read study file (No such file or directory)"),
    (["run", "{tmp}"], "is a folder; give the study's TOML file"),
])
def test_bad_command_lines_are_one_line(tmp_path, cli, small_study, small_study_run, args, needle):
    f = tmp_path / "s.toml"
    f.write_text(small_study)
    (tmp_path / "a-file").write_text("x")
    subs = {"f": f, "out": small_study_run, "file": tmp_path / "a-file", "missing": tmp_path / "nope.toml", "tmp": tmp_path}
    code, _, err = cli(*[a.format(**subs) for a in args])
    assert code == 2 and err.startswith("petri: error: ") and err.count("\n") == 1 and needle in err, err


def test_debug_shows_the_traceback(cli, small_study_file, monkeypatch):
    import petri.api

    def broken(*a, **k):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(petri.api, "dry_run", broken)
    f = small_study_file
    code, _, err = cli("run", f, "--dry-run")
    assert code == 1 and "petri: internal error: ZeroDivisionError: a bug" in err and err.count("\n") == 1
    monkeypatch.setenv("PETRI_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["run", str(f), "--dry-run"])


def test_cli_run_show_export(tmp_path):
    study = write_study(tmp_path, STUDY.replace("seeds = 2", "seeds = 1"))
    out = tmp_path / "out"
    r = runner.invoke(app, ["run", str(study), "--out", str(out), "--dry-run"])
    assert r.exit_code == 0 and "2 cells" in r.output and "pack 1: K=2" in r.output
    assert not (out / "petri.sqlite").exists()
    r = runner.invoke(app, ["run", str(study), "--out", str(out), "--no-report"])
    assert r.exit_code == 0, r.output
    assert "original" in r.output and "±" not in r.output.split("original")[1].split("\n")[0]  # n = 1: no interval
    r = runner.invoke(app, ["show", str(out)])
    assert r.exit_code == 0 and "2 done" in r.output
    for fmt in ("csv", "json", "parquet"):
        r = runner.invoke(app, ["export", str(out), "--format", fmt])
        assert r.exit_code == 0, r.output
        assert (out / "export" / f"cells.{fmt}").stat().st_size > 0 and (out / "export" / f"epochs.{fmt}").exists()
    lines = (out / "export" / "epochs.csv").read_text().splitlines()
    assert lines[0].startswith("cell_hash,epoch,train_loss") and len(lines) == 1 + 4


@pytest.mark.parametrize("args,msg", [
    (["run", "{study}", "--executor", "slurm"], "--executor: 'slurm' is not an executor; allowed: local, ray"),
    (["run", "{bad}", "--out", "{out}"], "bad.toml: variants.x.treatments[0]: unknown treatment 'blurr'"),
    (["run", "{study}", "--out", "{out}", "--data", "nosuchset"], "data: unknown data set 'nosuchset'"),
    (["show", "{tmp}/nowhere"], "no ledger here"),
    (["run", "{other}", "--out", "{out}", "--dry-run"], "belongs to study 'small', not 'other'"),
    (["run", "{study}", "--out", "{out}", "--profile", "gpu"], "--profile 'gpu' is not a profile of this study"),
    (["export", "{out}", "--format", "xlsx"], "--format: 'xlsx' is not supported; allowed: csv, parquet, json"),
    (["data", "verify", "mnits"], "unknown data set 'mnits'; known data sets: mnist, fashion-mnist, cifar-10"),
])
def test_cli_bad_input_one_line_exit_nonzero_ledger_untouched(tmp_path, args, msg):
    study = write_study(tmp_path, STUDY.replace("seeds = 2", "seeds = 1"))
    bad = write_study(tmp_path, STUDY + '[variants.x]\ntreatments = [{ name = "blurr" }]\n', "bad.toml")
    other = write_study(tmp_path, STUDY.replace('name = "small"', 'name = "other"'), "other.toml")
    out = tmp_path / "out"
    assert runner.invoke(app, ["run", str(study), "--out", str(out), "--no-report"]).exit_code == 0
    before = ledger(out).execute("SELECT hash, status, finished FROM cells ORDER BY hash").fetchall()
    argv = [a.format(study=study, bad=bad, other=other, out=out, tmp=tmp_path) for a in args]
    r = runner.invoke(app, argv)
    assert r.exit_code != 0
    err = r.stderr.strip()
    assert msg in err and "\n" not in err and "Traceback" not in err, err
    assert ledger(out).execute("SELECT hash, status, finished FROM cells ORDER BY hash").fetchall() == before


def test_cli_spec_error_exit_code_2(tmp_path):
    bad = write_study(tmp_path, STUDY.replace("epochs = 2", "epochs = 0"))
    r = runner.invoke(app, ["run", str(bad), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "recipe.epochs: must be ≥ 1 (got 0)" in r.stderr
    assert not (tmp_path / "o" / "petri.sqlite").exists()


def test_cli_data_commands(shared_data):
    r = runner.invoke(app, ["data", "verify", "mnist"])
    assert r.exit_code == 0 and "checksums match" in r.output and "5923, 6742" in r.output
    r = runner.invoke(app, ["data", "list"])
    assert r.exit_code == 0 and "fashion-mnist" in r.output and "cifar-10" in r.output


def test_cli_train_prints_epoch_log():
    r = runner.invoke(app, ["train", "--epochs", "1", "--train-size", "1000", "--model", '{"name": "mlp", "hidden": [16]}'])
    assert r.exit_code == 0, r.output
    assert "train/loss" in r.output and "status: done" in r.output
    r = runner.invoke(app, ["train", "--model", "{oops"])
    assert r.exit_code == 2 and "--model: not valid JSON" in r.stderr
    for args, said in ((["--model", '["flatten", {"name": "dropout", "rate": 0.2}]'], "--model.layers[1].rate: unknown field"),
                       (["--batch-size", "0"], "--batch-size: must be ≥ 1 (got 0)")):
        r = runner.invoke(app, ["train", *args])  # errors name the option, and no log header comes before them
        assert r.exit_code == 2 and r.stderr.startswith(f"petri: error: {said}") and r.output == r.stderr, r.output


def test_cli_model_summary():
    r = runner.invoke(app, ["summary", '{"name": "mnist_cnn"}'])
    assert r.exit_code == 0 and "1,199,882" in r.output and "conv2d filters=64, kernel=3" in r.output
    r = runner.invoke(app, ["summary", '{"name": "vgg", "cfg": [8, "M"], "fc": [16]}', "--data", "cifar-10"])
    assert r.exit_code == 0 and "3×32×32" in r.output
    r = runner.invoke(app, ["summary", '{"name": "mlp", "hidden": [0]}'])
    assert r.exit_code == 2 and "MODEL.hidden[0]: must be ≥ 1 (got 0)" in r.stderr
    r = runner.invoke(app, ["summary", '{"name": "resnet"}'])
    assert r.exit_code == 2 and "unknown model 'resnet'; known models: mlp, mnist_cnn, vgg, layers" in r.stderr
    r = runner.invoke(app, ["summary", '["flatten", {"name": "dense", "units": 32}, "tanh", {"name": "dense", "units": "classes"}]'])
    assert r.exit_code == 0 and "25,450" in r.output and "tanh" in r.output
    r = runner.invoke(app, ["summary", '[{"name": "dense", "units": 10}]'])
    assert r.exit_code == 2 and "MODEL.layers[0] (dense): dense needs a feature vector" in r.stderr


def test_cli_models_lists_every_registered_model_layer_optimizer_and_treatment():
    from petri.models import LAYERS, MODELS
    from petri.train.recipe import OPTIMIZERS
    from petri.treatments import TREATMENTS

    r = runner.invoke(app, ["models"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    for reg in (MODELS, LAYERS, OPTIMIZERS, TREATMENTS):
        for name in reg:
            assert f"│ {name} " in r.output, name
    r = runner.invoke(app, ["models", "conv2d"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "integer ≥ 1" in r.output and '"same"' in r.output
    r = runner.invoke(app, ["models", "convv"])
    assert r.exit_code == 2 and "'convv' is no model, layer, optimizer, schedule or treatment" in r.stderr
    r = runner.invoke(app, ["models", "crop"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "crop (treatment)" in r.output and "pad" in r.output
