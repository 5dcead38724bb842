"""Shared fixtures. Real data comes from PETRI_DATA (CI: ../shared/datasets)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    data = os.environ.get("PETRI_DATA")
    if not data or not (Path(data) / "mnist").is_dir():
        raise pytest.UsageError("set PETRI_DATA to a folder holding mnist/ and fashion-mnist/ (e.g. ../shared/datasets)")


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory):
    """Tests use their own array cache, never the user's."""
    os.environ["PETRI_CACHE"] = str(tmp_path_factory.mktemp("petri-cache"))
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))  # downloads: never the user's cache
    yield


@pytest.fixture(scope="session")
def mnist():
    import petri.data

    return petri.data.load("mnist")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return Path(os.environ["PETRI_DATA"])


# A small study: two variants × two seeds of a 16-unit MLP, two epochs on 1,000 MNIST training images
# (seconds to train). Tests that need a study of their own write variations of it.
SMALL_STUDY = """
name = "small"
data = "mnist"
seeds = 2
baseline = "original"

[recipe]
model = { name = "mlp", hidden = [16] }
optimizer = { name = "adam", lr = 1e-3 }
batch_size = 100
epochs = 2
train_size = 1000
test_size = 500

[variants.original]

[variants.inverted]
treatments = ["invert"]
"""


# A two-variant study with places to fill: SCHED (recipe lines) and VARIANT (variant b's lines).
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


@pytest.fixture
def small_study() -> str:
    """The small study's text (``SMALL_STUDY``)."""
    return SMALL_STUDY


def write_study(folder: Path, text: str = SMALL_STUDY, name: str = "study.toml") -> Path:
    """A study's text written to ``folder / name``."""
    path = folder / name
    path.write_text(text)
    return path


def ledger(out: Path):
    """A connection to a study folder's ledger."""
    import sqlite3

    return sqlite3.connect(out / "petri.sqlite")


@pytest.fixture
def small_study_file(tmp_path) -> Path:
    """The small study written to ``tmp_path / "study.toml"``."""
    return write_study(tmp_path)


@pytest.fixture(scope="session")
def small_study_run(tmp_path_factory) -> Path:
    """A folder holding the small study trained to its end (no report). Read it as it is; copy it
    (``copy_study``) to change it."""
    from petri.study.runner import run_study
    from petri.study.spec import parse_study

    out = tmp_path_factory.mktemp("small-run") / "out"
    run_study(parse_study(SMALL_STUDY), out)
    return out


def copy_study(src: Path, dst: Path) -> Path:
    """A study folder copied (its ledger checkpointed first: the copy holds every committed epoch)."""
    import shutil
    import sqlite3

    with sqlite3.connect(src / "petri.sqlite") as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copytree(src, dst)
    return dst


@pytest.fixture
def cli(capsys):
    """The real `petri` entry point, in this process: ``cli(*args) -> (exit code, stdout, stderr)``."""
    from petri.cli import main

    def call(*args) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err
    return call


def one_line(code: int, err: str, expect_code: int, *needles: str) -> None:
    """A failure said as petri says every failure: one line on stderr, no traceback, the exit code."""
    assert code == expect_code, (code, err)
    assert err.startswith("petri: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and len(err) < 2000, err
    for n in needles:
        assert n in err, (n, err)
