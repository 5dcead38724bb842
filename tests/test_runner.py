"""Running studies: the ledger a run writes, resume, kill -9 and SIGTERM, Ray, packs of any size, the
time split and the dry run's price."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import SMALL_STUDY, ledger, write_study

from petri.cli import app
from petri.errors import StoreError
from petri.study.runner import run_study
from petri.study.spec import parse_study

ROOT = Path(__file__).resolve().parent.parent
STUDY = SMALL_STUDY
runner = CliRunner()


def test_run_then_rerun_trains_nothing_then_new_seed_only(tmp_path):
    out = tmp_path / "out"
    counts = run_study(parse_study(STUDY), out)
    assert counts["trained"] == 4 and counts["done"] == 4
    db = ledger(out)
    assert db.execute("SELECT COUNT(*) FROM epochs").fetchone()[0] == 8
    finished = dict(db.execute("SELECT hash, finished FROM cells"))
    assert run_study(parse_study(STUDY), out)["trained"] == 0
    more = parse_study(STUDY.replace("seeds = 2", "seeds = 3"))
    assert run_study(more, out)["trained"] == 2
    after = dict(db.execute("SELECT hash, finished FROM cells"))
    assert all(after[h] == t for h, t in finished.items())  # old cells untouched
    runs = db.execute("SELECT status, petri_version, torch_version, device, host, study_text FROM runs").fetchall()
    assert [r[0] for r in runs] == ["done", "done"] and all(r[1] and r[2] and r[3] and r[5] for r in runs)
    # a changed recipe makes new cells; the old ones stay queryable
    assert run_study(parse_study(STUDY.replace("epochs = 2", "epochs = 1")), out)["trained"] == 4
    assert db.execute("SELECT COUNT(*) FROM cells").fetchone()[0] == 10


def test_other_study_name_is_refused(tmp_path):
    out = tmp_path / "out"
    run_study(parse_study(STUDY.replace("seeds = 2", "seeds = 1")), out)
    with pytest.raises(StoreError, match="belongs to study 'small', not 'other'"):
        run_study(parse_study(STUDY.replace('name = "small"', 'name = "other"')), out)


def test_ledger_schema_and_metrics(tmp_path):
    out = tmp_path / "out"
    run_study(parse_study(STUDY.replace("seeds = 2", "seeds = 1")), out)
    db = ledger(out)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    row = db.execute("SELECT c.variant, c.status, c.seconds, e.epoch, e.train_loss, e.train_acc, e.test_loss, e.test_acc,"
                     " e.images_per_s, e.seconds FROM cells c JOIN epochs e ON e.cell_hash = c.hash"
                     " WHERE c.variant='original' AND e.epoch=2").fetchone()
    assert row[1] == "done" and row[2] > 0 and 0 < row[5] <= 1 and 0.2 < row[7] <= 1 and row[8] > 0


def _spawn(study: Path, out: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "petri.cli", "run", str(study), "--out", str(out), "--no-report"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)


# the fast pack (2 cells, 1 epoch) trains first; the slow one would take far longer than the test
SLOW = STUDY.replace("epochs = 2", "epochs = 500").replace("train_size = 1000", "train_size = 20000").replace(
    "[variants.original]", "[variants.fast]\nrecipe = { epochs = 1, batch_size = 50 }\n\n[variants.original]")


def _wait_for(out: Path, sql: str, at_least: int, proc, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        assert proc.poll() is None, proc.stdout.read().decode()
        try:
            n = sqlite3.connect(out / "petri.sqlite", timeout=5).execute(sql).fetchone()[0]
            if n >= at_least:
                return
        except sqlite3.OperationalError:
            pass
        time.sleep(0.2)
    raise AssertionError("timed out")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_kill_mid_run_keeps_ledger_and_resumes(tmp_path, sig):
    study = write_study(tmp_path, SLOW)
    out = tmp_path / "out"
    proc = _spawn(study, out)
    _wait_for(out, "SELECT COUNT(*) FROM cells WHERE variant='fast' AND status='done'", 2, proc)
    _wait_for(out, "SELECT COUNT(*) FROM epochs e JOIN cells c ON c.hash=e.cell_hash WHERE c.variant!='fast'", 4, proc)
    proc.send_signal(sig)
    code = proc.wait(60)
    assert code != 0
    db = ledger(out)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    fast = dict(db.execute("SELECT hash, finished FROM cells WHERE variant='fast'"))
    assert len(fast) == 2 and all(fast.values())
    kept = db.execute("SELECT COUNT(*) FROM epochs e JOIN cells c ON c.hash=e.cell_hash WHERE c.variant!='fast'").fetchone()[0]
    assert kept >= 4  # finished epochs survive the kill
    if sig == signal.SIGTERM:
        assert db.execute("SELECT status FROM runs").fetchone()[0] == "interrupted"
        assert db.execute("SELECT COUNT(*) FROM cells WHERE status='interrupted'").fetchone()[0] == 4
    db.close()
    from petri.api import open_study

    shown = open_study(out).cells()["status"].astype(str).value_counts().to_dict()
    assert shown == {"done": 2, "interrupted": 4}, shown  # Ctrl-C / SIGTERM or kill -9: not "failed"
    # resume: the fast cells are kept; the 4 interrupted cells are the only ones trained again
    # (with a shorter epoch budget, i.e. new hashes, to keep the test quick)
    counts = run_study(parse_study(SLOW.replace("epochs = 500", "epochs = 1")), out)
    assert counts["trained"] == 4
    db = ledger(out)
    assert dict(db.execute("SELECT hash, finished FROM cells WHERE variant='fast'")) == fast


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_polite_stop_recomputes_no_finished_epoch(tmp_path, sig):
    """SIGTERM or Ctrl-C at random moments of a pack with short epochs: each time, every interrupted cell's
    latest checkpoint is its last epoch in the ledger (the signal waits for that writing), the cells are
    recorded as interrupted, and the resume continues from there."""
    import random

    from petri.study.cellstore import latest_checkpoint

    text = SLOW.replace("train_size = 20000", "train_size = 2000").replace("epochs = 500", "epochs = 60")
    study, out = write_study(tmp_path, text), tmp_path / "out"
    rng = random.Random(int(sig))
    count = "SELECT COUNT(*) FROM epochs e JOIN cells c ON c.hash=e.cell_hash WHERE c.variant!='fast'"
    for round_ in range(4):
        before = ledger(out).execute(count).fetchone()[0] if (out / "petri.sqlite").exists() else 0
        proc = _spawn(study, out)
        _wait_for(out, count, before + 8, proc)  # this process has trained two epochs of each cell
        time.sleep(rng.uniform(0, 0.3))
        proc.send_signal(sig)
        assert proc.wait(60) != 0, (round_, proc.stdout.read().decode()[-2000:])
        said = proc.stdout.read().decode()
        assert round_ == 0 or "(2 already finished, 4 continue from a checkpoint)" in said, said[:500]
        db = ledger(out)
        rows = db.execute("SELECT c.hash, c.status, MAX(e.epoch) FROM cells c JOIN epochs e ON e.cell_hash = c.hash"
                          " WHERE c.variant != 'fast' GROUP BY c.hash").fetchall()
        db.close()
        assert {status for _, status, _ in rows} == {"interrupted"}, rows
        for h, _, last in rows:
            state = latest_checkpoint(out, h)
            assert state is not None and state.epoch == last and not state.inner, (round_, h, last, state)


def test_resume_retrains_only_unfinished(tmp_path):
    out = tmp_path / "out"
    s = parse_study(STUDY)
    run_study(s, out)
    db = ledger(out)
    victim = s.cells[1].hash
    db.execute("UPDATE cells SET status='running' WHERE hash=?", (victim,))  # as after kill -9
    db.commit()
    assert run_study(s, out)["trained"] == 1
    assert db.execute("SELECT status FROM cells WHERE hash=?", (victim,)).fetchone()[0] == "done"


def test_ray_executor_matches_local(tmp_path):
    ray = pytest.importorskip("ray")
    s = parse_study(STUDY.replace("seeds = 2", "seeds = 1"))
    run_study(s, tmp_path / "local")
    try:
        run_study(s, tmp_path / "ray", executor="ray")
    finally:
        ray.shutdown()
    q = "SELECT c.hash, e.epoch, e.test_loss FROM cells c JOIN epochs e ON e.cell_hash=c.hash ORDER BY 1, 2"
    local = ledger(tmp_path / "local").execute(q).fetchall()
    ray_rows = ledger(tmp_path / "ray").execute(q).fetchall()
    assert local == ray_rows and len(local) == 4
    assert ledger(tmp_path / "ray").execute("SELECT executor FROM runs").fetchone()[0] == "ray"


RESNET = """
name = "resnet-adamw"
data = "mnist"
seeds = 2
baseline = "adam"

[recipe]
model = [
  { name = "conv2d", filters = 8, kernel = 3, padding = 1 }, "batch_norm", "relu",
  { name = "residual", layers = [{ name = "conv2d", filters = 8, padding = 1 }, "batch_norm", "relu",
                                 { name = "conv2d", filters = 8, padding = 1 }, "batch_norm"] }, "relu",
  { name = "residual", layers = [{ name = "conv2d", filters = 16, stride = 2, padding = 1 }, "batch_norm", "relu",
                                 { name = "conv2d", filters = 16, padding = 1 }, "batch_norm"] }, "relu",
  "global_avg_pool", { name = "dense", units = "classes" },
]
optimizer = { name = "adam", lr = 3e-3 }
batch_size = 64
epochs = 2
train_size = 1280
test_size = 300

[variants.adam]

[variants.adamw]
recipe = { optimizer = { name = "adamw", lr = 3e-3, weight_decay = 0.05 } }
"""


def test_resnet_blocks_and_adamw_study(tmp_path):
    """A ResNet-style network (identity and 1×1-projection shortcuts) against itself under AdamW,
    through the runner; the report shows the blocks' layers."""
    study = parse_study(RESNET)
    counts = run_study(study, tmp_path)
    assert counts["trained"] == 4 and counts.get("done") == 4
    from petri.report.build import build_report

    md = (build_report(tmp_path).parent / "report.md").read_text()
    assert "| residual (5 layers) | 16×14×14 |" in md and "| \u2003conv2d filters=16, kernel=3, stride=2, padding=1 |" in md
    db = sqlite3.connect(tmp_path / "petri.sqlite")
    accs = db.execute("SELECT train_acc, test_acc FROM epochs WHERE epoch = 2").fetchall()
    assert len(accs) == 4 and min(a for a, _ in accs) > 0.2  # it learns (plain PyTorch reaches 0.30 here too)


PACKING = """
name = "packing"
data = "mnist"
seeds = 3
baseline = "a"

[recipe]
model = { name = "mlp", hidden = [32] }
batch_size = 10
epochs = 2
train_size = 5000
test_size = 1000

[variants.a]

[variants.b]
recipe = { model = { name = "mlp", hidden = [32], bn = true } }
"""


def test_cells_compute_the_same_bits_in_packs_of_any_size_through_the_cli(tmp_path):
    """The same study with --max-members 1, 2 and the default (all of a variant's seeds in one pack, on
    shards of one thread each) gives the same numbers to the last bit."""
    study = write_study(tmp_path, PACKING)
    ledgers = []
    for k in ("1", "2", None):
        out = tmp_path / f"k{k}"
        args = ["run", str(study), "--out", str(out), "--no-report"] + (["--max-members", k] if k else [])
        assert runner.invoke(app, args).exit_code == 0
        db = ledger(out)
        ledgers.append(db.execute("SELECT cell_hash, epoch, train_loss, train_acc, test_loss, test_acc, pack_size "
                                  "FROM epochs ORDER BY cell_hash, epoch").fetchall())
        db.close()
    assert {r[-1] for r in ledgers[0]} == {1} and {r[-1] for r in ledgers[2]} == {3}
    strip = [[r[:-1] for r in rows] for rows in ledgers]  # pack size aside
    assert strip[0] == strip[1] == strip[2]


def test_epochs_record_the_time_split_and_show_prints_it(tmp_path):
    """Each epoch row holds its cell's share of its pack's seconds training, evaluating and checkpointing
    (the same share for every cell of a pack in an epoch); the study's split adds the runs' other time
    (start-up and packing); `petri show` prints it."""
    from petri.study.timing import time_split

    out = tmp_path / "out"
    run_study(parse_study(STUDY), out)
    rows = ledger(out).execute("SELECT epoch, train_seconds, eval_seconds, checkpoint_seconds FROM epochs").fetchall()
    assert len(rows) == 8 and all(t > 0 and e > 0 and c >= 0 for _, t, e, c in rows)
    by_epoch = {}
    for epoch, *shares in rows:  # one pack of 4 cells: one share per epoch
        by_epoch.setdefault(epoch, set()).add(tuple(shares))
    assert all(len(s) == 1 for s in by_epoch.values())
    assert all(c > 0 for epoch, _, _, c in rows)  # states kept at each epoch's end; epoch 1's files in epoch 2's
    split = time_split(out)
    wall = sum(f - s for s, f in ledger(out).execute("SELECT started, finished FROM runs"))
    assert split.training == pytest.approx(sum(r[1] for r in rows)) and split.startup > 0
    assert split.total == pytest.approx(wall) and split.report is None
    shown = runner.invoke(app, ["show", str(out)])
    assert shown.exit_code == 0 and "time: " in shown.output and "training" in shown.output and "start-up" in shown.output


def test_the_dry_run_prices_every_part_and_remembers_this_machines_rates(tmp_path, monkeypatch):
    """The estimate covers start-up, training, evaluation, checkpoints and the report; a second dry run
    takes its pack shapes' rates from this machine's cache (measures nothing) unless they were measured
    while the machine was oversubscribed and it is quieter now; an adaptive study is priced for its first
    round and for its most seeds."""
    from petri.study import estimate

    load = {"now": 0.5}  # the load average per core the dry run sees
    monkeypatch.setattr(estimate, "_load", lambda: load["now"])
    study = write_study(tmp_path, STUDY)
    args = ["run", str(study), "--out", str(tmp_path / "out"), "--dry-run"]
    first, again = runner.invoke(app, args), runner.invoke(app, args)
    assert first.exit_code == again.exit_code == 0, first.output
    for part in ("start-up and packing", "training", "evaluation", "checkpoints", "report"):
        assert part in first.output
    assert "timed now: 1, from this machine's cache: 0" in first.output
    assert "timed now: 0, from this machine's cache: 1" in again.output
    load["now"] = 3.0  # measured while three processes wanted each core ...
    monkeypatch.setattr(estimate, "MAX_AGE", 0)
    assert "timed now: 1" in runner.invoke(app, args).output
    monkeypatch.setattr(estimate, "MAX_AGE", 30 * 86400)
    assert "from this machine's cache: 1" in runner.invoke(app, args).output  # ... as busy now: kept
    load["now"] = 0.2
    assert "timed now: 1, from this machine's cache: 0" in runner.invoke(app, args).output  # quieter: again
    adaptive = write_study(tmp_path, STUDY.replace("seeds = 2", "seeds = { min = 2, max = 4 }"), "adaptive.toml")
    r = runner.invoke(app, ["run", str(adaptive), "--out", str(tmp_path / "a"), "--dry-run"])
    assert r.exit_code == 0 and "first round (2 seeds): about" in r.output
    assert "at most 4 seeds (3 looks, each a run): about" in r.output


def test_a_killed_run_shows_as_interrupted_and_a_second_run_is_refused(tmp_path, shared_data):
    slow = STUDY.replace("epochs = 2", "epochs = 400")
    f = tmp_path / "slow.toml"
    f.write_text(slow)
    out = tmp_path / "out"
    env = {**os.environ, "PETRI_DATA": str(shared_data.resolve())}
    proc = subprocess.Popen([sys.executable, "-m", "petri.cli", "run", str(f), "--out", str(out), "--no-report"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            time.sleep(0.2)
            try:
                if sqlite3.connect(out / "petri.sqlite").execute("SELECT COUNT(*) FROM epochs").fetchone()[0]:
                    break
            except sqlite3.Error:
                pass
        r = runner.invoke(app, ["run", str(f), "--out", str(out)])
        assert r.exit_code == 2 and "another petri run (pid" in r.stderr and "is training this study" in r.stderr
        assert r.stderr.count("\n") == 1
        r = runner.invoke(app, ["show", str(out)])
        assert "4 running" in r.output
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    r = runner.invoke(app, ["show", str(out)])
    assert "4 interrupted" in r.output and "running" not in r.output
