"""A real two-node Ray cluster on the loopback: epochs stream to the driver, and a study survives the
loss of the node its packs train on (they continue from their checkpoints on another node), with
numbers equal to a local run.

The cluster lives in a network namespace of its own holding only `lo`, so every address Ray uses,
node IPs included, is 127.0.0.1 (outside one, Ray swaps 127.0.0.1 for the machine's external
address). Token authentication is on, as Ray's documentation sets it up: RAY_AUTH_MODE=token and
one RAY_AUTH_TOKEN for the head, the workers and the driver. Needs root (`ip netns`), as CI has.
"""

from __future__ import annotations

import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from petri.study.runner import run_study
from petri.study.spec import parse_study

STUDY = """
name = "cluster"
data = "mnist"
seeds = 3
baseline = "plain"

[recipe]
model = { name = "mlp", hidden = [24] }
batch_size = 20
epochs = 12
train_size = 3000
test_size = 500

[variants.plain]

[variants.bn]
recipe = { model = { name = "mlp", hidden = [24], bn = true, dropout = 0.2 } }
"""
METRICS = "train_loss, train_acc, test_loss, test_acc"
BIN = Path(sys.executable).parent


def _rows(out: Path):
    db = sqlite3.connect(out / "petri.sqlite")
    try:
        return {(h, e): m for h, e, *m in db.execute(f"SELECT cell_hash, epoch, {METRICS} FROM epochs")}
    finally:
        db.close()


def _kill_node(marker: str) -> int:
    """SIGKILL every process of one Ray node: its raylet and workers inherit the marker in their
    environment from its `ray start`."""
    killed = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if f"PETRI_TEST_NODE={marker}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                os.kill(int(proc.name), signal.SIGKILL)
                killed += 1
        except (OSError, ProcessLookupError):
            pass
    return killed


@pytest.mark.slow
def test_two_node_cluster_streams_epochs_and_survives_a_lost_node(tmp_path, shared_data):
    ns = f"petri{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", ns], capture_output=True, text=True)
    assert made.returncode == 0, f"this test needs root to make a network namespace: {made.stderr.strip()}"
    inns = ["ip", "netns", "exec", ns]
    env = {**os.environ, "PETRI_DATA": str(shared_data.resolve()), "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(16), "RAY_USAGE_STATS_ENABLED": "0"}
    port = "6399"
    nodes = []
    try:
        subprocess.run([*inns, "ip", "link", "set", "lo", "up"], check=True)
        subprocess.run([*inns, str(BIN / "ray"), "start", "--head", "--port", port, "--num-cpus", "0",
                        "--include-dashboard=false"], check=True, env=env, capture_output=True, timeout=120)

        def worker(marker: str) -> subprocess.Popen:
            p = subprocess.Popen([*inns, str(BIN / "ray"), "start", "--address", f"127.0.0.1:{port}", "--num-cpus", "2",
                                  "--block"], env={**env, "PETRI_TEST_NODE": marker}, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            nodes.append(p)
            return p

        worker("A")
        study = tmp_path / "cluster.toml"
        study.write_text(STUDY)
        ref = tmp_path / "ref"
        run_study(parse_study(STUDY), ref)  # the same study, trained locally
        out = tmp_path / "out"
        driver = subprocess.Popen([*inns, sys.executable, "-m", "petri.cli", "run", str(study), "--executor", "ray",
                                   "--address", f"127.0.0.1:{port}", "--max-members", "2", "--out", str(out),
                                   "--no-report", "--checkpoint-minutes", "0.002"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 240
        while time.time() < deadline and driver.poll() is None:  # epochs reach the driver as they end
            time.sleep(0.2)
            try:
                if len(_rows(out)) >= 12:
                    break
            except sqlite3.Error:
                pass
        assert driver.poll() is None, driver.communicate()
        streamed = len(_rows(out))
        assert 12 <= streamed < len(_rows(ref)), streamed  # mid-run: some epochs in, packs still training
        assert _kill_node("A") >= 2  # the raylet and its workers
        worker("B")  # somewhere for the lost packs to go on
        _, err = driver.communicate(timeout=300)
        assert driver.returncode == 0, err
        assert "lost its worker" in err and "continue from" in err
        assert _rows(out) == _rows(ref)  # every epoch of every cell, to the bit (checkpoints within epochs too)
        db = sqlite3.connect(out / "petri.sqlite")
        assert {s for (s,) in db.execute("SELECT status FROM cells")} == {"done"}
        db.close()
    finally:
        subprocess.run([*inns, str(BIN / "ray"), "stop", "--force"], env=env, capture_output=True, timeout=60)
        for p in nodes:
            p.kill()
        subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
