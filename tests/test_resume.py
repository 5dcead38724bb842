"""Durable runs: cell checkpoints (atomic, verified), kill -9 and resume bitwise, trained weights out."""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import petri
import petri.data
from petri.cli import app
from petri.errors import SpecError, StoreError
from petri.study import cellstore
from petri.study.runner import run_study
from petri.study.spec import parse_study
from petri.train import Member, Recipe, train_pack
from petri.train.state import CellState
from petri.treatments.pipeline import Pipeline

METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")

NETWORKS = """
name = "nets"
data = "mnist"
seeds = [3]
baseline = "mlp"

[recipe]
model = { name = "mlp", hidden = [32] }
batch_size = 50
epochs = 2
train_size = 600
test_size = 400

[variants.mlp]
treatments = [{ name = "invert" }]

[variants.mlp-input-bn]
treatments = [{ name = "permute_pixels" }, { name = "sparsify", threshold = 0.2 }]
recipe = { model = { name = "mlp", hidden = [32], input_bn = true } }

[variants.mnist_cnn]
recipe = { model = "mnist_cnn", epochs = 1 }

[variants.vgg-bn]
treatments = [{ name = "invert" }]
recipe = { model = { name = "vgg", cfg = [8, "M", 16, "M"], fc = [32], bn = true } }
"""


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    out = tmp_path_factory.mktemp("nets")
    study = parse_study(NETWORKS)
    run_study(study, out)
    return out, study


def test_exposed_subsets_let_plain_pytorch_reproduce_the_ledger(nets, mnist):
    """The public subset indices (API and export) and load_model, in plain PyTorch on the raw test images:
    the ledger's count of correct test images, exactly."""
    import json

    out, _ = nets
    res = petri.open_study(out)
    ids = res.subsets("mnist_cnn")
    assert len(ids["train"]) == 600 and len(ids["test"]) == 400 and len(ids["val"]) == 0
    model = res.load_model("mnist_cnn", 3)
    x = mnist.test_x[torch.from_numpy(ids["test"])].float() / 255  # no treatment: the images as stored
    with torch.no_grad():
        correct = int((model(x).argmax(1) == mnist.test_y[torch.from_numpy(ids["test"])]).sum())
    acc = res.cells().set_index("variant").loc["mnist_cnn", "test_acc"]
    assert correct == round(acc * 400)
    exported = json.loads((out / "export" / "subsets.json").read_text()) if res.export("json") else None
    row = next(r for r in exported if r["variant"] == "mnist_cnn")
    assert row["test"] == ids["test"].tolist() and row["train"] == ids["train"].tolist()


@pytest.mark.parametrize("variant", ["mlp", "mlp-input-bn", "mnist_cnn", "vgg-bn"])
def test_loaded_module_reproduces_the_ledgers_test_accuracy(nets, variant, mnist):
    """Plain PyTorch, the cell's weights and its test-time treatments: the same count of correct images."""
    out, study = nets
    model = petri.load_model(out, variant=variant, seed=3)
    assert isinstance(model, torch.nn.Module) and not model.training
    cell = next(c for c in study.cells if c.variant == variant)
    from petri.train.splits import make_splits

    _, _, test = make_splits(mnist, cell.recipe, "cpu")
    pipe = Pipeline([list(cell.treatments)], [cell.seed], mnist.spec.shape, 10, mnist.train_x, mnist.train_y, "cpu")
    x = pipe.images(test.x[None], test.ids[None], "test", 0)[0]  # the test split as the cell saw it
    with torch.no_grad():
        correct = int((model(x).argmax(1) == test.y).sum())
    db = sqlite3.connect(out / "petri.sqlite")
    acc = db.execute("SELECT test_acc FROM epochs WHERE cell_hash=? ORDER BY epoch DESC LIMIT 1", (cell.hash,)).fetchone()[0]
    assert correct == round(acc * len(test.y))
    if variant == "mlp-input-bn":  # the first layer had absorbed the permutation: undone for the module
        assert isinstance(model[1], torch.nn.BatchNorm1d)


def test_weights_command_and_bad_names(nets, tmp_path):
    out, _ = nets
    r = CliRunner().invoke(app, ["weights", str(out), "--variant", "vgg-bn", "--seed", "3", "--to",
                                 str(tmp_path / "w.safetensors")])
    assert r.exit_code == 0, r.stderr
    from safetensors.torch import load_file

    state = load_file(tmp_path / "w.safetensors")
    assert "conv2d_0.weight" in state and state["batch_norm_1.running_var"].shape == (8,)  # keys name the layers
    with pytest.raises(SpecError, match="^variant 'cnn' is not a variant of nets; variants: mlp, mlp-input-bn, "
                                        "mnist_cnn, vgg-bn"):  # in words from Python and the command line alike
        petri.load_model(out, variant="cnn", seed=3)
    with pytest.raises(SpecError, match="^seed 4: 'mlp' has no such seed; seeds: 3"):
        petri.load_model(out, variant="mlp", seed=4)
    with pytest.raises(StoreError, match="no best-epoch weights"):
        petri.load_model(out, variant="mlp", seed=3, best=True)
    r = CliRunner().invoke(app, ["weights", str(out), "--variant", "mlp", "--seed", "9", "--to", str(tmp_path / "x")])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1


def test_finished_cells_keep_weights_not_checkpoints(nets):
    out, study = nets
    for c in study.cells:
        files = sorted(p.name for p in cellstore.cell_dir(out, c.hash).iterdir())
        assert files == ["predictions.json", "predictions.safetensors", "weights.json", "weights.safetensors"], files


def _state(epoch: int) -> CellState:
    return CellState(epoch, epoch * 10, {"theta": torch.full((5,), float(epoch)), "rng.order": torch.arange(4,
                     dtype=torch.uint8)}, {"best": 0.5, "since_best": 1})


def test_checkpoints_are_atomic_verified_and_fall_back(tmp_path):
    for e in (1, 2, 3):
        cellstore.save_checkpoint(tmp_path, "abc", _state(e))
    names = sorted(p.name for p in cellstore.cell_dir(tmp_path, "abc").iterdir())
    assert names == ["checkpoint-00002.json", "checkpoint-00002.safetensors", "checkpoint-00003.json",
                     "checkpoint-00003.safetensors"]  # the latest two
    got = cellstore.latest_checkpoint(tmp_path, "abc")
    assert got.epoch == 3 and got.step == 30 and torch.equal(got.tensors["theta"], torch.full((5,), 3.0))
    assert got.stopper == {"best": 0.5, "since_best": 1}
    latest = cellstore.cell_dir(tmp_path, "abc") / "checkpoint-00003.safetensors"
    blob = bytearray(latest.read_bytes())
    blob[-3] ^= 0xFF  # one flipped bit in the data: the checksum catches it
    latest.write_bytes(bytes(blob))
    assert cellstore.latest_checkpoint(tmp_path, "abc").epoch == 2
    (cellstore.cell_dir(tmp_path, "abc") / "checkpoint-00002.json").unlink()  # a torn pair: ignored
    assert cellstore.latest_checkpoint(tmp_path, "abc") is None
    assert cellstore.latest_checkpoint(tmp_path, "nothing") is None
    cellstore.save_checkpoint(tmp_path, "abc", _state(4))
    assert cellstore.latest_checkpoint(tmp_path, "abc", epochs=4) is None  # not before the budget: useless


def test_checkpoints_within_an_epoch_are_newer_than_its_start(tmp_path):
    """Named by epoch and step: checkpoint-00004-0000120 (120 steps into epoch 5) is newer than
    checkpoint-00004 and older than checkpoint-00005; the latest two are kept."""
    for epoch, inner in ((4, 0), (4, 120), (4, 9), (5, 0), (5, 7)):
        state = _state(epoch)
        state.inner = inner
        cellstore.save_checkpoint(tmp_path, "abc", state)
        got = cellstore.latest_checkpoint(tmp_path, "abc")
        assert (got.epoch, got.inner) == (epoch, inner) or (epoch, inner) == (4, 9)
    names = sorted(p.name for p in cellstore.cell_dir(tmp_path, "abc").glob("*.safetensors"))
    assert names == ["checkpoint-00005-0000007.safetensors", "checkpoint-00005.safetensors"]
    (tmp_path / "s.toml").write_text(KILLED)
    for bad in ("0", "-1", "inf", "nan"):
        r = CliRunner().invoke(app, ["run", str(tmp_path / "s.toml"), "--out", str(tmp_path / "o"),
                                     "--checkpoint-minutes", bad])
        assert r.exit_code == 2 and "--checkpoint-minutes): must be a number > 0" in r.stderr, r.stderr
    assert not (tmp_path / "o").exists()


def test_resumed_cell_alone_equals_uninterrupted_cell_in_a_pack(mnist):
    """A cell's state after epoch 2 of a 3-member pack, resumed alone: epochs 3-4 bitwise as uninterrupted
    (BN after hidden layers, dropout, early stopping on a validation split, a permutation in its weights)."""
    from petri.models import MLP
    from petri.train import EarlyStopping
    from petri.treatments import parse_treatment

    recipe = Recipe(model=MLP(hidden=[32], bn=True, dropout=0.2), epochs=4, batch_size=50, train_size=1000,
                    test_size=300, val_size=200, device="cpu", early_stopping=EarlyStopping(patience=3))
    perm = [parse_treatment("permute_pixels")]
    full = train_pack(mnist, recipe, [Member(1), Member(2, perm), Member(3)], keep_state=True)[1]
    saved = {}

    class Stop(Exception):
        pass

    def stop_after_2(epoch, results):
        if epoch == 2:
            saved["state"] = results[1].state
            raise Stop

    with pytest.raises(Stop):
        train_pack(mnist, recipe, [Member(1), Member(2, perm), Member(3)], on_epoch=stop_after_2, keep_state=True)
    alone = train_pack(mnist, recipe, [Member(2, perm, state=saved["state"])], keep_state=True)[0]
    assert [e["epoch"] for e in alone.epochs] == [3, 4]
    for a, b in zip(full.epochs[2:], alone.epochs):
        assert all(a[k] == b[k] for k in METRICS)
    assert all(torch.equal(full.weights[n], alone.weights[n]) for n in full.weights)
    assert full.best_epoch == alone.best_epoch and all(torch.equal(full.best[n], alone.best[n]) for n in full.best)


@pytest.mark.parametrize("train_size", [720, 700, 1000])  # 24 steps of 30, 24 with a short last (both: a checkpoint after the last step), 34
def test_a_checkpoint_within_an_epoch_resumes_bitwise_alone_or_packed(mnist, train_size):
    """Checkpoints within every epoch (taken between segments of 8 steps), resumed alone and as the
    same pack: the rest bitwise as uninterrupted, and taking them changes nothing (BN and dropout,
    label noise, crop, early stopping with best weights)."""
    from petri.models import MLP
    from petri.train import EarlyStopping
    from petri.treatments import parse_treatment

    recipe = Recipe(model=MLP(hidden=[32], bn=True, dropout=0.2), epochs=3, batch_size=30, train_size=train_size,
                    test_size=300, val_size=200, device="cpu", early_stopping=EarlyStopping(patience=3))

    def members(states=(None, None, None)):
        return [Member(1, [parse_treatment({"name": "crop", "pad": 2})], state=states[0]),
                Member(2, [parse_treatment({"name": "label_noise", "p": 0.2})], state=states[1]),
                Member(3, state=states[2])]

    full = train_pack(mnist, recipe, members(), keep_state=True)
    taken = []
    checkpointed = train_pack(mnist, recipe, members(), keep_state=True, checkpoint_every=0.0,
                              on_checkpoint=lambda results: taken.append([r.state for r in results]))
    # segments of 8 steps (they would grow while shorter than an eighth of the interval), a checkpoint
    # after each but the epoch's last (with 24 steps: after the last step too, before the epoch's end)
    steps = -(-train_size // 30)
    assert [(s[0].epoch, s[0].inner) for s in taken] == [(e, i) for e in range(3) for i in range(8, steps + 1, 8)]
    for a, b in zip(full, checkpointed):  # checkpoints are read only
        assert [{k: e[k] for k in METRICS} for e in a.epochs] == [{k: e[k] for k in METRICS} for e in b.epochs]
    for states in taken:
        alone = train_pack(mnist, recipe, members(states)[1:2], keep_state=True)[0]
        pack = train_pack(mnist, recipe, members(states), keep_state=True)
        for ref, got in ((full[1], alone), *zip(full, pack)):
            assert [e["epoch"] for e in got.epochs] == [states[0].epoch + 1, *range(states[0].epoch + 2, 4)]
            for a, b in zip(ref.epochs[states[0].epoch:], got.epochs):
                assert all(a[k] == b[k] for k in METRICS), (states[0].inner, a, b)
            assert all(torch.equal(ref.weights[n], got.weights[n]) for n in ref.weights)
            assert ref.best_epoch == got.best_epoch and all(torch.equal(ref.best[n], got.best[n]) for n in ref.best)
    with pytest.raises(ValueError, match="resume from one point"):
        train_pack(mnist, recipe, [members(taken[0])[0], members(taken[1])[1]])


KILLED = """
name = "killed"
data = "mnist"
seeds = 3
baseline = "plain"

[recipe]
model = { name = "mlp", hidden = [24] }
batch_size = 20
epochs = 8
train_size = 3000
test_size = 500
val_size = 300

[variants.plain]

[variants.bn-dropout]
recipe = { model = { name = "mlp", hidden = [24], bn = true, dropout = 0.2 }, optimizer = "rmsprop" }

[variants.early]
recipe = { early_stopping = { monitor = "val_loss", patience = 2 }, optimizer = { name = "sgd", lr = 0.3, momentum = 0.9 } }

[variants.lr]
recipe = { optimizer = { name = "adamw", lr = { values = [1e-3, 3e-3] } } }
"""


def _epochs(out: Path) -> dict:
    db = sqlite3.connect(out / "petri.sqlite")
    rows = db.execute(f"SELECT cell_hash, epoch, {', '.join(METRICS)} FROM epochs").fetchall()
    status = dict(db.execute("SELECT hash, status FROM cells"))
    db.close()
    return {(h, e): tuple(m) for h, e, *m in rows}, status


def _kill_and_resume(tmp_path, shared_data, text: str, kills: int, extra: list[str], within: bool = False
                     ) -> tuple[int, str]:
    """Run the study uninterrupted, then kill -9 a real `petri run` at ``kills`` random moments (soon
    after some progress: a new epoch, or with ``within`` a new checkpoint inside an epoch), resuming
    each time, then to the end: every epoch of every cell must equal the uninterrupted run's.
    Returns how many resumes continued from a checkpoint, and everything the runs said."""
    study = tmp_path / "killed.toml"
    study.write_text(text)
    env = {**os.environ, "PETRI_DATA": str(shared_data.resolve())}
    cmd = [sys.executable, "-m", "petri.cli", "run", str(study), "--no-report", "--max-members", "3", *extra]
    ref = tmp_path / "ref"
    subprocess.run([*cmd, "--out", str(ref)], check=True, capture_output=True, env=env, timeout=600)
    expected, ref_status = _epochs(ref)

    out, rng, killed, resumed, said = tmp_path / "out", random.Random(7), 0, 0, ""
    for attempt in range(kills + 1):  # kills at random moments, then a run to the end
        def progress():
            if within:
                return set((out / "cells").glob("*/checkpoint-*-*.safetensors"))
            return len(_epochs(out)[0]) if (out / "petri.sqlite").exists() else 0

        before = progress()
        proc = subprocess.Popen([*cmd, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=env, text=True)
        if attempt < kills:
            deadline = time.time() + 120
            while proc.poll() is None and time.time() < deadline:  # some progress, then a random moment
                time.sleep(0.05)
                try:
                    if progress() != before:
                        break
                except sqlite3.Error:
                    pass
            time.sleep(rng.uniform(0.0, 0.3 if within else 2.5))
            if proc.poll() is None:
                proc.kill()
                killed += 1
        _, err = proc.communicate(timeout=300)
        said += err
        resumed += "continue from a checkpoint" in err
        db = sqlite3.connect(out / "petri.sqlite")
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
        if proc.returncode == 0:
            break
    assert proc.returncode == 0, err
    got, status = _epochs(out)
    assert killed >= 2 and resumed >= 1, (killed, resumed)
    assert status == ref_status and set(got) == set(expected)
    assert got == expected  # every metric of every epoch of every cell, to the bit
    return resumed, said


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_is_bitwise(tmp_path, shared_data):
    """kill -9 a real `petri run` at random moments, resume each time; every epoch of every cell equals
    an uninterrupted run's, and no finished epoch is trained twice beyond the one in flight."""
    _kill_and_resume(tmp_path, shared_data, KILLED, 6, [])


@pytest.mark.slow
def test_kill_9_within_long_epochs_resumes_from_their_checkpoints_bitwise(tmp_path, shared_data):
    """The same with epochs longer than the checkpoint interval: resumes continue from checkpoints
    taken inside an epoch (by step), bitwise."""
    text = KILLED.replace("epochs = 8", "epochs = 2").replace("train_size = 3000", "train_size = 12000")
    _, said = _kill_and_resume(tmp_path, shared_data, text, 4, ["--checkpoint-minutes", "0.005"], within=True)
    assert "of them from within an epoch" in said, said


def test_dry_run_and_show_say_how_much_disk(nets, tmp_path):
    out, _ = nets
    study = tmp_path / "s.toml"
    study.write_text(NETWORKS)
    r = CliRunner().invoke(app, ["run", str(study), "--dry-run", "--out", str(tmp_path / "fresh")], env={"COLUMNS": "200"})
    import re

    found = re.search(r"disk: ([\d.]+) MB of trained weights, ([\d.]+) (k?B) of per-example predictions", r.output)
    said = float(found.group(1))
    actual = sum(p.stat().st_size for p in (out / "cells").rglob("*.safetensors") if p.name != "predictions.safetensors")
    assert abs(said - actual / 1e6) / (actual / 1e6) < 0.05, (said, actual)  # the estimate is what the run then kept
    kept = sum(p.stat().st_size for p in (out / "cells").rglob("predictions.safetensors"))
    said = float(found.group(2)) * (1e3 if found.group(3) == "kB" else 1)
    assert kept and abs(said - kept) / kept < 0.1, (said, kept)  # (a file's header: ~100 bytes beside its bytes)
    r = CliRunner().invoke(app, ["show", str(out)], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and " MB on disk in " in r.output


def test_weights_files_say_how_to_rebuild_their_network(nets):
    import json

    from safetensors import safe_open

    out, study = nets
    cell = next(c for c in study.cells if c.variant == "vgg-bn")
    with safe_open(str(out / "cells" / cell.hash / "weights.safetensors"), "pt") as f:
        meta = json.loads(f.metadata()["petri"])
        keys = list(f.keys())
    assert meta["model"] == "vgg" and meta["model_params"]["bn"] is True and meta["input_shape"] == [1, 28, 28]
    assert meta["classes"][:2] == ["0", "1"] and meta["layers"][0]["name"] == "conv2d"
    module = petri.load_model(out, "vgg-bn", 3)
    assert len(meta["layers"]) == len(module) and set(keys) == set(module.state_dict())
    assert [m["name"] for m in meta["layers"]][:3] == ["conv2d", "batch_norm", "relu"]
    assert {k.split(".")[0].rsplit("_", 1)[0] for k in keys} <= {m["name"] for m in meta["layers"]}


def test_weights_keyed_by_position_still_load():
    """Weights files written before layers were named (keys "3.body.0.weight") load into the named module."""
    from petri.models import parse_model
    from petri.models.compile import by_name

    spec = parse_model([{"name": "conv2d", "filters": 2, "padding": 1}, {"name": "residual", "layers": [
        {"name": "conv2d", "filters": 2, "padding": 1}, "relu"]}, "flatten", {"name": "dense", "units": 10}], "m")
    module = spec.module((1, 8, 8), 10)
    old = {k: v for k, v in zip([".".join(str(list(module._modules).index(p)) if i == 0 else p
                                         for i, p in enumerate(k.split("."))) for k in module.state_dict()],
                               module.state_dict().values())}
    old = {k.replace("body.conv2d_0", "body.0"): v for k, v in old.items()}
    assert "1.body.0.weight" in old
    module.load_state_dict(by_name(old, module), strict=True)
