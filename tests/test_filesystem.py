"""Unfriendly places: a study read from a read-only file system, a run on a full disk, a report or an
export where a file is in the way; every failure one line (exit 1), and nothing stored is lost: the
ledger byte for byte, or every committed epoch; a report is whole or absent."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
from pathlib import Path

from conftest import SMALL_STUDY, copy_study, one_line


@contextlib.contextmanager
def mounted(path: Path, *how: str):
    """A real read-only or tiny file system at ``path`` (needs root, as CI has)."""
    path.mkdir(parents=True, exist_ok=True)
    if how[0] == "ro":
        cmds = [["mount", "--bind", str(path), str(path)], ["mount", "-o", "remount,bind,ro", str(path)]]
    else:
        cmds = [["mount", "-t", "tmpfs", "-o", f"size={how[1]}", "tmpfs", str(path)]]
    for c in cmds:
        r = subprocess.run(c, capture_output=True, text=True)
        assert r.returncode == 0, f"this test needs root to mount a file system: {r.stderr.strip()}"
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_a_finished_study_is_readable_from_a_read_only_place(tmp_path, cli, small_study_run):
    ro = copy_study(small_study_run, tmp_path / "ro")
    before = (ro / "petri.sqlite").read_bytes()
    with mounted(ro, "ro"):
        code, out, err = cli("show", ro)
        assert code == 0 and "small: 4 cells — 4 done" in out, err
        code, out, err = cli("report", ro, "--to", tmp_path / "report")
        assert code == 0 and (tmp_path / "report" / "index.html").is_file(), err
        code, out, err = cli("export", ro, "--to", tmp_path / "export")
        assert code == 0 and (tmp_path / "export" / "cells.csv").is_file(), err
        code, _, err = cli("report", ro)  # into the read-only place itself
        one_line(code, err, 1, "cannot write the report (Read-only file system); write it elsewhere with --to")
        f = tmp_path / "s.toml"
        f.write_text(SMALL_STUDY.replace("seeds = 2", "seeds = 3"))
        code, _, err = cli("run", f, "--out", ro)
        one_line(code, err, 1, "Read-only file system")
        code, _, err = cli("run", f, "--out", ro / "sub" / "dir")  # a parent that cannot be created
        one_line(code, err, 1, "cannot create the study directory (Read-only file system)")
    assert (ro / "petri.sqlite").read_bytes() == before


def test_a_full_disk_stops_the_run_cleanly_and_keeps_every_committed_epoch(tmp_path, cli):
    f = tmp_path / "s.toml"  # checkpoints of 24 mnist_cnn members (~14 MB each) cannot fit in 24 MB
    f.write_text(SMALL_STUDY.replace('model = { name = "mlp", hidden = [16] }', 'model = "mnist_cnn"')
                 .replace("seeds = 2", "seeds = 12").replace("epochs = 2", "epochs = 3")
                 .replace("train_size = 1000", "train_size = 200").replace("batch_size = 100", "batch_size = 50"))
    with mounted(tmp_path / "tiny", "tmpfs", "24m") as tiny:
        code, _, err = cli("run", f, "--out", tiny / "out", "--max-members", "6", "--no-report")
        assert code == 1, err
        last = err.strip().splitlines()[-1]  # after the run's own progress lines: the one error line
        assert last.startswith("petri: error: ") and last.endswith("and run again"), err
        assert ("no space left" in last or "disk is full" in last) and err.count("petri: error") == 1
        assert "Traceback" not in err
        db = sqlite3.connect(tiny / "out" / "petri.sqlite")
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        committed = db.execute("SELECT COUNT(*) FROM epochs").fetchone()[0]
        db.close()
        assert committed >= 1  # what was committed before the disk filled is there
        assert not list((tiny / "out").rglob("*.tmp"))  # no half-written file left behind


def test_report_into_a_file_and_export_to_an_unwritable_place(tmp_path, cli, small_study_run):
    out = copy_study(small_study_run, tmp_path / "d")
    (out / "report").write_text("I am a file")
    code, _, err = cli("report", out)
    one_line(code, err, 1, "report: is a file; the report is a folder")
    (tmp_path / "blocker").write_text("x")
    code, _, err = cli("export", out, "--to", tmp_path / "blocker" / "sub")
    one_line(code, err, 1, "cannot write the export")
    code, _, err = cli("export", out, "--to", tmp_path / "blocker")
    one_line(code, err, 1, "is a file; export writes into a folder")


def test_a_report_is_whole_or_absent_and_rebuilt_when_missing(tmp_path, cli, small_study_run):
    out = copy_study(small_study_run, tmp_path / "d")
    f = tmp_path / "s.toml"
    f.write_text(SMALL_STUDY)
    assert not (out / "report").exists()  # as a run killed before its report leaves it
    code, stdout, err = cli("run", f, "--out", out)
    assert code == 0 and "nothing to train" in err and (out / "report" / "index.html").is_file()
    assert not list(tmp_path.rglob(".report.*"))  # the temporary folder was renamed into place
