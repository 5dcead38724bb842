"""Reliability of long runs: kill -9 at random moments and resume, and what checkpoints cost.

Run: PETRI_DATA=../shared/datasets .venv/bin/python benchmarks/reliability.py [--kills 20] [--within 10]

1. A 24-cell study is run once without interruption, then again killed (SIGKILL) at `--kills`
   random moments and resumed each time. Counted: ledger integrity-check failures, finished epochs
   trained again (a cell's ledger rows beyond its checkpoint when killed: the window between the
   ledger commit and the checkpoint write), and whether every epoch of every cell equals the
   uninterrupted run's, to the bit. With `--within N`, then the same with N kills of a study whose
   epochs are longer than its checkpoint interval (`--checkpoint-minutes 0.01`): counted too, the
   cells that continue from a checkpoint taken within an epoch.
2. The checkpoint cost per epoch: a 32-member `mlp` [64] pack and an 8-member `mnist_cnn` pack train
   epochs with and without checkpoints (states captured, files written and fsynced, as a run does);
   time and bytes per epoch.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import petri.data
from petri.models import MLP, MnistCNN
from petri.study import cellstore
from petri.train import Member, Recipe, train_pack

STUDY = """
name = "reliability"
data = "mnist"
seeds = 4
baseline = "plain"

[recipe]
model = { name = "mlp", hidden = [32] }
batch_size = 20
epochs = 20
train_size = 3000
test_size = 500
val_size = 300

[variants.plain]

[variants.bn-dropout]
recipe = { model = { name = "mlp", hidden = [32], bn = true, dropout = 0.2 }, optimizer = "rmsprop" }

[variants.early]
recipe = { early_stopping = { monitor = "val_loss", patience = 3 } }

[variants.lr]
recipe = { optimizer = { name = "adamw", lr = { values = [1e-3, 3e-3, 1e-2] } } }
"""
METRICS = "train_loss, train_acc, val_loss, val_acc, test_loss, test_acc"


def rows(out: Path) -> dict:
    db = sqlite3.connect(out / "petri.sqlite")
    try:
        return {(h, e): tuple(m) for h, e, *m in db.execute(f"SELECT cell_hash, epoch, {METRICS} FROM epochs")}
    finally:
        db.close()


def kills(n: int, seed: int, within: bool = False) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="petri-reliability-"))
    study = tmp / "study.toml"
    study.write_text(STUDY.replace("epochs = 20", "epochs = 3").replace("train_size = 3000", "train_size = 15000")
                     if within else STUDY)
    cmd = [sys.executable, "-m", "petri.cli", "run", str(study), "--no-report", "--max-members", "4",
           *(["--checkpoint-minutes", "0.01"] if within else [])]
    t0 = time.perf_counter()
    subprocess.run([*cmd, "--out", str(tmp / "ref")], check=True, capture_output=True)
    print(f"uninterrupted: {len(rows(tmp / 'ref'))} epoch rows in {time.perf_counter() - t0:.0f} s", flush=True)
    out, rng = tmp / "out", random.Random(seed)
    integrity_failures = recomputed = worst = done_kills = from_within = 0
    while True:
        before = len(rows(out)) if (out / "petri.sqlite").exists() else 0
        proc = subprocess.Popen([*cmd, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if done_kills < n:
            while proc.poll() is None:
                time.sleep(0.05)
                try:
                    if len(rows(out)) > before:
                        break
                except sqlite3.Error:
                    pass
            time.sleep(rng.uniform(0, 1.0))
        if done_kills < n and proc.poll() is None:
            proc.send_signal(9)
            proc.wait()
            done_kills += 1
            db = sqlite3.connect(out / "petri.sqlite")
            integrity_failures += db.execute("PRAGMA integrity_check").fetchone()[0] != "ok"
            running = [h for (h,) in db.execute("SELECT hash FROM cells WHERE status='running'")]
            for h in running:  # ledger epochs past the checkpoint are trained again on resume
                last = db.execute("SELECT MAX(epoch) FROM epochs WHERE cell_hash=?", (h,)).fetchone()[0] or 0
                ckpt = cellstore.latest_checkpoint(out, h)
                again = last - (ckpt.epoch if ckpt else 0)
                recomputed += again
                worst = max(worst, again)
                from_within += bool(ckpt and ckpt.inner)
            db.close()
            continue
        proc.wait()
        if proc.returncode == 0:
            break
    same = rows(out) == rows(tmp / "ref")
    print(f"{done_kills} kill -9 at random moments{' of long epochs' if within else ''}: {integrity_failures} "
          f"integrity-check failures, {recomputed} finished epochs trained again (at most {worst} per cell), "
          + (f"{from_within} cells resumed from a checkpoint within an epoch, " if within else "")
          + f"final numbers {'identical to' if same else 'DIFFERENT from'} the uninterrupted run", flush=True)


def checkpoint_cost(ds, name: str, model, K: int, train_size: int, batch: int) -> None:
    recipe = Recipe(model=model, epochs=2, batch_size=batch, train_size=train_size, test_size=500, device="cpu")
    folder = Path(tempfile.mkdtemp(prefix="petri-ckpt-"))
    timings: dict[str, list[float]] = {"without": [], "with": []}
    written = []

    def save(epoch, results):
        t = time.perf_counter()
        size = sum(cellstore.save_checkpoint(folder, f"m{k}", r.state) for k, r in enumerate(results) if r.state)
        written.append((time.perf_counter() - t, size))

    for _ in range(2):  # paired: the machine's drift hits both alike
        for mode in ("without", "with"):
            t = time.perf_counter()
            train_pack(ds, recipe, [Member(s) for s in range(K)], on_epoch=save if mode == "with" else None,
                       keep_state=mode == "with")
            timings[mode].append((time.perf_counter() - t) / recipe.epochs)
    epoch_s = min(timings["without"])
    extra = min(timings["with"]) - epoch_s
    written = [(w, b) for w, b in written if b]  # the last epoch leaves no running cell to save
    write_s = min(w for w, _ in written)
    print(f"{name}, K={K}, {train_size:,} images per epoch: epoch {epoch_s:.2f} s; with checkpoints +{extra:.3f} s "
          f"({100 * extra / epoch_s:+.1f} %), of which writing {write_s:.3f} s; {written[0][1] / 1e6:.1f} MB per epoch "
          f"({written[0][1] / K / 1e6:.2f} MB per cell); on a full 60,000-image epoch "
          f"{100 * extra / (epoch_s * 60000 / train_size):.1f} %", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--within", type=int, default=10, help="kills of a study with long epochs")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs", flush=True)
    kills(args.kills, args.seed)
    if args.within:
        kills(args.within, args.seed, within=True)
    ds = petri.data.load("mnist")
    checkpoint_cost(ds, "mlp [64]", MLP(hidden=[64]), 32, 60000, 100)
    checkpoint_cost(ds, "mnist_cnn", MnistCNN(), 8, 2560, 128)


if __name__ == "__main__":
    main()
