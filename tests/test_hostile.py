"""Hostile input and hostile places (#17): every failure is one line naming the file or field and what
is allowed (exit 2 for bad input, 1 for the environment), no traceback, no hang, bounded memory, and
nothing already stored is lost (the ledger byte-for-byte unchanged, or every committed epoch intact)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from petri.cli import main
from petri.errors import PetriError, SpecError
from petri.study.spec import parse_study

STUDY = """
name = "hostile"
data = "mnist"
seeds = 2
baseline = "plain"

[recipe]
model = { name = "mlp", hidden = [16] }
optimizer = { name = "adam", lr = 1e-3 }
batch_size = 100
epochs = 2
train_size = 1000
test_size = 300

[variants.plain]

[variants.inverted]
treatments = ["invert"]
"""


def cli(capsys, *args) -> tuple[int, str, str]:
    """The real entry point, in this process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line(code: int, err: str, expect_code: int, *needles: str) -> None:
    assert code == expect_code, (code, err)
    assert err.startswith("petri: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and len(err) < 2000, err
    for n in needles:
        assert n in err, (n, err)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished study directory (its ledger copied, never touched, by the tests below)."""
    from petri.study.runner import run_study

    out = tmp_path_factory.mktemp("finished")
    run_study(parse_study(STUDY), out)
    return out


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("report"))
    return dst


# --- study files -----------------------------------------------------------------------------

@pytest.mark.parametrize("content,needle", [
    (b"name = \"x\"\n\xff\xfe garbage", "not UTF-8 text (byte 11)"),
    (bytes(range(256)) * 4, "not UTF-8 text"),
    (b"name = \"a\x00b\"\n", "holds a NUL byte"),
    (b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deeply"),
    (b"x = " + b"{a = " * 3000 + b"1" + b"}" * 3000 + b"\n", "nested too deeply"),
])
def test_files_that_are_not_a_study(tmp_path, capsys, content, needle):
    f = tmp_path / "s.toml"
    f.write_bytes(content)
    code, _, err = cli(capsys, "run", f, "--dry-run")
    one_line(code, err, 2, needle)


def test_a_huge_value_is_not_echoed_back(tmp_path, capsys):
    f = tmp_path / "s.toml"
    f.write_text(STUDY.replace("batch_size = 100", f'batch_size = "{"9" * 10_000_000}"'))
    t = time.perf_counter()
    code, _, err = cli(capsys, "run", f, "--dry-run")
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
    ("[variants.plain]", '[variants.plain]\nrecipe = { batch_size = { range = [1, 100000000] } }',
     "the study has over 100,000 cells"),
    ("[variants.plain]", '[variants.plain]\nrecipe = { optimizer = { name = "adam", lr = { range = [0.0, 1.0, 1e-9] } } }',
     "the study has over 100,000 cells"),
    ('name = "hostile"', 'name = "a/../../b"', "name: 'a/../../b' is not allowed"),
    ('name = "hostile"', 'name = "a\\u0000b"', "name: 'a\\x00b' is not allowed"),
    ("epochs = 2", 'epochs = 2\ndevice = "cuda"', 'device: "cuda", but this machine has no CUDA device'),
    ("[variants.inverted]", '[variants.inverted]\nrecipe = "lr = 0.1"', "variants.inverted.recipe: must be a table"),
    ("[recipe]", "recipe = 3\n[variants.dummy]", "recipe: missing or not a table"),
])
def test_bad_values_are_refused_at_parse_time(tmp_path, capsys, old, new, needle):
    f = tmp_path / "s.toml"
    f.write_text(STUDY.replace(old, new, 1))
    t = time.perf_counter()
    code, _, err = cli(capsys, "run", f, "--dry-run", "--out", tmp_path / "out")
    one_line(code, err, 2, needle, "s.toml")
    assert time.perf_counter() - t < 20 and not (tmp_path / "out").exists()


def _limited(seconds: int, gib: int):
    def limit():
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds))
        resource.setrlimit(resource.RLIMIT_DATA, (gib << 30, gib << 30))
    return limit


@pytest.mark.parametrize("old,new", [
    ("seeds = 2", "seeds = 1000000000"),
    ("[variants.plain]", '[variants.plain]\nrecipe = { epochs = { range = [1, 10000000] }, batch_size = { range = [1, 10000000] } }'),
])
def test_sizes_neither_hang_nor_eat_memory(tmp_path, old, new, shared_data):
    """In a real process with a CPU-time and a memory limit: refused in seconds, in bounded memory."""
    f = tmp_path / "s.toml"
    f.write_text(STUDY.replace(old, new, 1))
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


BASE = json.loads(json.dumps({
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
    study = json.loads(json.dumps(BASE))
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


# --- CLI arguments ---------------------------------------------------------------------------

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
def test_bad_command_lines_are_one_line(tmp_path, capsys, finished, args, needle):
    f = tmp_path / "s.toml"
    f.write_text(STUDY)
    (tmp_path / "a-file").write_text("x")
    subs = {"f": f, "out": finished, "file": tmp_path / "a-file", "missing": tmp_path / "nope.toml", "tmp": tmp_path}
    code, _, err = cli(capsys, *[a.format(**subs) for a in args])
    assert code == 2 and err.startswith("petri: error: ") and err.count("\n") == 1 and needle in err, err


# --- damaged ledgers and unfriendly places ---------------------------------------------------

def _garble(db: Path) -> None:
    blob = bytearray(db.read_bytes())
    page = 4096
    for p in range(1, len(blob) // page):  # every page's b-tree header garbled: SQLite must notice
        blob[p * page:p * page + 12] = b"\xff" * 12
    db.write_bytes(bytes(blob))


@pytest.mark.parametrize("command", [["show"], ["export", "--to", "{tmp}/x"], ["report", "--to", "{tmp}/r"], ["run"]])
def test_a_damaged_ledger_is_one_line_and_never_overwritten(tmp_path, capsys, finished, command):
    out = _copy(finished, tmp_path / "d")
    with sqlite3.connect(out / "petri.sqlite") as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    _garble(out / "petri.sqlite")
    before = (out / "petri.sqlite").read_bytes()
    f = tmp_path / "s.toml"
    f.write_text(STUDY)
    args = [a.format(tmp=tmp_path) for a in command]
    args = ["run", f, "--out", out] if command == ["run"] else [args[0], out, *args[1:]]
    code, _, err = cli(capsys, *args)
    assert code in (1, 2) and err.startswith("petri: error: ") and err.count("\n") == 1, err
    assert ("damaged" in err or "not a petri ledger" in err) and "Traceback" not in err
    assert (out / "petri.sqlite").read_bytes() == before


def test_a_foreign_database_is_refused_and_left_alone(tmp_path, capsys):
    out = tmp_path / "foreign"
    out.mkdir()
    with sqlite3.connect(out / "petri.sqlite") as db:
        db.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
        db.execute("INSERT INTO customers VALUES (1, 'Ada')")
    before = (out / "petri.sqlite").read_bytes()
    f = tmp_path / "s.toml"
    f.write_text(STUDY)
    for args in (["run", f, "--out", out], ["show", out], ["export", out, "--to", tmp_path / "e"]):
        code, _, err = cli(capsys, *args)
        one_line(code, err, 2, "not a petri ledger")
    with sqlite3.connect(tmp_path / "other.sqlite") as db:  # petri's tables, another application's id
        db.execute("PRAGMA application_id = 1234")
        db.executescript("CREATE TABLE meta (k); CREATE TABLE runs (k); CREATE TABLE cells (k); CREATE TABLE epochs (k);")
    (tmp_path / "other").mkdir()
    (tmp_path / "other.sqlite").rename(tmp_path / "other" / "petri.sqlite")
    code, _, err = cli(capsys, "run", f, "--out", tmp_path / "other")
    one_line(code, err, 2, "its application id is 0x4d2")
    assert (out / "petri.sqlite").read_bytes() == before


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


def test_a_finished_study_is_readable_from_a_read_only_place(tmp_path, capsys, finished):
    ro = _copy(finished, tmp_path / "ro")
    before = (ro / "petri.sqlite").read_bytes()
    with mounted(ro, "ro"):
        code, out, err = cli(capsys, "show", ro)
        assert code == 0 and "hostile: 4 cells — 4 done" in out, err
        code, out, err = cli(capsys, "report", ro, "--to", tmp_path / "report")
        assert code == 0 and (tmp_path / "report" / "index.html").is_file(), err
        code, out, err = cli(capsys, "export", ro, "--to", tmp_path / "export")
        assert code == 0 and (tmp_path / "export" / "cells.csv").is_file(), err
        code, _, err = cli(capsys, "report", ro)  # into the read-only place itself
        one_line(code, err, 1, "cannot write the report (Read-only file system); write it elsewhere with --to")
        f = tmp_path / "s.toml"
        f.write_text(STUDY.replace("seeds = 2", "seeds = 3"))
        code, _, err = cli(capsys, "run", f, "--out", ro)
        one_line(code, err, 1, "Read-only file system")
        code, _, err = cli(capsys, "run", f, "--out", ro / "sub" / "dir")  # a parent that cannot be created
        one_line(code, err, 1, "cannot create the study directory (Read-only file system)")
    assert (ro / "petri.sqlite").read_bytes() == before


def test_a_full_disk_stops_the_run_cleanly_and_keeps_every_committed_epoch(tmp_path, capsys):
    f = tmp_path / "s.toml"  # checkpoints of 24 mnist_cnn members (~14 MB each) cannot fit in 24 MB
    f.write_text(STUDY.replace('model = { name = "mlp", hidden = [16] }', 'model = "mnist_cnn"')
                 .replace("seeds = 2", "seeds = 12").replace("epochs = 2", "epochs = 3")
                 .replace("train_size = 1000", "train_size = 200").replace("batch_size = 100", "batch_size = 50"))
    with mounted(tmp_path / "tiny", "tmpfs", "24m") as tiny:
        code, _, err = cli(capsys, "run", f, "--out", tiny / "out", "--max-members", "6", "--no-report")
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


def test_report_into_a_file_and_export_to_an_unwritable_place(tmp_path, capsys, finished):
    out = _copy(finished, tmp_path / "d")
    (out / "report").write_text("I am a file")
    code, _, err = cli(capsys, "report", out)
    one_line(code, err, 1, "report: is a file; the report is a folder")
    (tmp_path / "blocker").write_text("x")
    code, _, err = cli(capsys, "export", out, "--to", tmp_path / "blocker" / "sub")
    one_line(code, err, 1, "cannot write the export")
    code, _, err = cli(capsys, "export", out, "--to", tmp_path / "blocker")
    one_line(code, err, 1, "is a file; export writes into a folder")


def test_a_report_is_whole_or_absent_and_rebuilt_when_missing(tmp_path, capsys, finished):
    out = _copy(finished, tmp_path / "d")
    f = tmp_path / "s.toml"
    f.write_text(STUDY)
    assert not (out / "report").exists()  # as a run killed before its report leaves it
    code, stdout, err = cli(capsys, "run", f, "--out", out)
    assert code == 0 and "nothing to train" in err and (out / "report" / "index.html").is_file()
    assert not list(tmp_path.rglob(".report.*"))  # the temporary folder was renamed into place


# --- data folders ----------------------------------------------------------------------------

def test_data_folders_that_are_missing_or_damaged(tmp_path, capsys, shared_data, monkeypatch):
    f = tmp_path / "s.toml"
    f.write_text(STUDY)
    monkeypatch.setenv("PETRI_DATA", str(tmp_path / "no-such-folder"))
    monkeypatch.setenv("PETRI_MIRROR", "http://127.0.0.1:9")  # no network
    code, _, err = cli(capsys, "run", f, "--out", tmp_path / "o")
    one_line(code, err, 1, "could not download")
    assert not (tmp_path / "no-such-folder").exists()  # never created
    import shutil

    data = tmp_path / "data"
    shutil.copytree(shared_data / "mnist", data / "mnist")
    (data / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("PETRI_DATA", str(data))
    code, _, err = cli(capsys, "data", "verify", "mnist")
    one_line(code, err, 1, "mnist: missing t10k-labels-idx1-ubyte.gz")
    os.chmod(data / "mnist" / "t10k-images-idx3-ubyte.gz", 0)
    code, _, err = cli(capsys, "run", f, "--out", tmp_path / "o2", "--no-report")
    assert code != 0 and err.count("\n") == 1 and "Traceback" not in err, err


def test_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    import petri.api

    def broken(*a, **k):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(petri.api, "dry_run", broken)
    f = tmp_path / "s.toml"
    f.write_text(STUDY)
    code, _, err = cli(capsys, "run", f, "--dry-run")
    assert code == 1 and "petri: internal error: ZeroDivisionError: a bug" in err and err.count("\n") == 1
    monkeypatch.setenv("PETRI_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["run", str(f), "--dry-run"])


def _unprivileged(*args, **env):
    """petri as root without the capability to read others' files (as any user meets a mode-000 file)."""
    return subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-m",
                           "petri.cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **env})


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv to drop read rights")
def test_an_unreadable_data_file_is_a_place_error(tmp_path, shared_data):
    data = tmp_path / "ds"
    shutil.copytree(shared_data / "mnist", data / "mnist")
    locked = data / "mnist" / "train-images-idx3-ubyte.gz"
    locked.chmod(0)
    env = dict(PETRI_DATA=str(data), PETRI_CACHE=str(tmp_path / "cache"), XDG_CACHE_HOME=str(tmp_path / "xdg"))
    study = tmp_path / "s.toml"
    study.write_text('name = "u"\ndata = "mnist"\n[recipe]\nmodel = "mlp"\nepochs = 1\ntrain_size = 500\n'
                     '[variants.a]\n[variants.b]\ntreatments = ["invert"]\n')
    for args in (["data", "verify", "mnist"], ["run", study, "--out", tmp_path / "out"]):
        r = _unprivileged(*args, **env)
        assert r.returncode == 1, r.stderr
        assert r.stderr.strip().splitlines()[-1] == (f"petri: error: {locked}: cannot read this data file (Permission "
                                                     f"denied); give petri read access to it (e.g. chmod a+r {locked})")
    import numpy as np

    import petri

    npz = tmp_path / "mine.npz"
    x = np.zeros((20, 1, 8, 8), np.uint8)
    petri.save_dataset(npz, x, np.arange(20) % 2, x[:10], np.arange(10) % 2)
    npz.chmod(0)
    r = _unprivileged("data", "verify", npz, PETRI_CACHE=str(tmp_path / "cache2"))
    assert r.returncode == 1 and f"{npz}: cannot read this data file (Permission denied)" in r.stderr
