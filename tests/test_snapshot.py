"""A study folder holds its results by itself: after a run, edit, move or delete the plugin and the data
file, or copy the folder elsewhere, and show, report, export, open_study and load_model give the same
numbers and weights; a run that would use a changed file says so in one line and trains only when asked."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import petri

ROOT = Path(__file__).resolve().parent.parent

PLUGIN = '''
import petri
from torch import nn


def tiny(n_classes: int, width: int = 16):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, n_classes))


petri.register_model("tiny", tiny)
'''

STUDY = """
name = "lab-notebook"
data = "digits.npz"
seeds = 2
baseline = "narrow"
plugins = ["tiny.py"]

[recipe]
model = { name = "tiny", width = 8 }
batch_size = 50
epochs = 4

[variants.narrow]
[variants.wide]
recipe = { model = { name = "tiny", width = 32 } }
"""


def _petri(*args, cwd):
    return subprocess.run([sys.executable, "-m", "petri.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, env={**__import__("os").environ, "COLUMNS": "200"})


def _state(out: Path) -> tuple:
    res = petri.open_study(out)
    cells = res.cells()[["variant", "seed", "status", "test_acc"]].to_dict("records")
    weights = res.load_model("wide", 1).state_dict()
    return cells, {k: v.clone() for k, v in weights.items()}


@pytest.fixture
def lab(tmp_path):
    digits = load_digits()
    x = (digits.images * 255 / 16).astype(np.uint8)[:, None]
    petri.save_dataset(tmp_path / "digits.npz", x[:1400], digits.target[:1400], x[1400:], digits.target[1400:])
    (tmp_path / "tiny.py").write_text(PLUGIN)
    (tmp_path / "study.toml").write_text(STUDY)
    r = _petri("run", "study.toml", "--out", "out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return tmp_path


def test_edited_moved_and_copied(lab):
    out = lab / "out"
    cells, weights = _state(out)
    assert [c["status"] for c in cells] == ["done"] * 4 and all(c["test_acc"] > 0.3 for c in cells)
    assert sorted(p.name for p in (out / "plugins").iterdir()) and (out / "report" / "index.html").is_file()
    report_before = (out / "report" / "report.md").read_text()

    # 1. the plugin edited after the run: everything reads as it ran; a run stops in one line
    (lab / "tiny.py").write_text(PLUGIN + "\n# a comment added later\n")
    assert _state(out)[0] == cells
    r = _petri("show", "out", cwd=lab)
    assert r.returncode == 0 and "4 done" in r.stdout
    r = _petri("report", "out", cwd=lab)
    assert r.returncode == 0 and "4 of 4 in the study: 4 done" in (out / "report" / "report.md").read_text()
    r = _petri("run", "study.toml", "--out", "out", cwd=lab)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "plugin tiny.py changed since these cells ran (4 finished cells of narrow, wide keep their numbers" in r.stderr
    assert "--changed" in r.stderr and _state(out)[0] == cells

    # 2. the plugin deleted and the data moved away: show, report, export, open_study and load_model work alike
    (lab / "tiny.py").unlink()
    (lab / "digits.npz").rename(lab / "elsewhere.npz")
    got_cells, got_weights = _state(out)
    assert got_cells == cells and all(torch.equal(got_weights[k], weights[k]) for k in weights)
    for cmd in (["show", "out"], ["report", "out"], ["export", "out"]):
        r = _petri(*cmd, cwd=lab)
        assert r.returncode == 0, (cmd, r.stderr)
    assert (out / "report" / "report.md").read_text().split("\n")[2] == report_before.split("\n")[2]
    assert "digits.npz" in (out / "report" / "report.md").read_text()  # the data set's identity, as it ran

    # 3. the folder copied to another machine's path: the same numbers and weights
    copy = lab / "archive" / "copied"
    shutil.copytree(out, copy)
    shutil.rmtree(out)
    got_cells, got_weights = _state(copy)
    assert got_cells == cells and all(torch.equal(got_weights[k], weights[k]) for k in weights)


def test_a_changed_plugin_trains_only_when_asked_and_the_report_says_what_is_not_shown(lab):
    out = lab / "out"
    cells, _ = _state(out)
    (lab / "tiny.py").write_text(PLUGIN.replace("nn.ReLU()", "nn.Tanh()"))
    r = _petri("run", "study.toml", "--out", "out", "--changed", cwd=lab)
    assert r.returncode == 0, r.stderr
    now = petri.open_study(out).cells()
    assert list(now["status"]) == ["done"] * 4 and list(now["test_acc"]) != [c["test_acc"] for c in cells]
    md = (out / "report" / "report.md").read_text()
    assert "**Not shown.** 4 finished cells in this folder belong to an earlier version of the study" in md
    r = _petri("show", "out", cwd=lab)
    assert "petri: note: 4 finished cells in this folder belong to an earlier version" in r.stderr
    data = np.load(lab / "digits.npz")
    petri.save_dataset(lab / "digits.npz", data["x_train"][:1000], data["y_train"][:1000], data["x_test"],
                       data["y_test"])
    r = _petri("run", "study.toml", "--out", "out", cwd=lab)
    assert r.returncode == 2 and "data " in r.stderr and "changed since these cells ran" in r.stderr


def test_the_dry_run_says_what_run_would_do_after_a_plugin_edit(lab):
    """After the plugin's edit `petri run` refuses in one line; its dry run refuses with the same line
    (and with --changed plans the changed study's cells, as the run would train them)."""
    (lab / "tiny.py").write_text(PLUGIN + "\n# a comment added later\n")
    run = _petri("run", "study.toml", "--out", "out", cwd=lab)
    dry = _petri("run", "study.toml", "--out", "out", "--dry-run", cwd=lab)
    assert run.returncode == dry.returncode == 2 and dry.stderr == run.stderr and dry.stdout == ""
    dry = _petri("run", "study.toml", "--out", "out", "--dry-run", "--changed", cwd=lab)
    assert dry.returncode == 0 and "4 to train" in dry.stdout
