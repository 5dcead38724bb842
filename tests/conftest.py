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
