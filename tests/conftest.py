"""Shared test fixtures: the project's own test vectors (tests/vectors), and the CI rule for external services."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "tests" / "vectors"
IN_CI = os.environ.get("CI", "").lower() == "true"


def _require(path: Path) -> Path:
    """The vectors ship with the project: a missing directory is a broken checkout, never a skip."""
    if not path.is_dir():
        pytest.fail(f"{path} is missing: the test vectors are part of the repository (tests/vectors)")
    return path


@pytest.fixture(scope="session")
def avalon_vectors() -> Path:
    return _require(VECTORS / "avalon")


@pytest.fixture(scope="session")
def sgx_vectors() -> Path:
    return _require(VECTORS / "sgx")


from support import RunningNode, running_node  # noqa: E402


@pytest.fixture(scope="module")
def node(tmp_path_factory) -> Iterator[RunningNode]:
    with running_node(tmp_path_factory.mktemp("node")) as n:
        yield n


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test (tests/pg.py)."""
    from pg import database

    with database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request, tmp_path):
    """A migrated, empty store of each backend: a test using it runs once on SQLite, once on PostgreSQL."""
    from adytum.store import open_store

    if request.param == "sqlite":
        s = open_store(tmp_path / "db.sqlite3")
        s.migrate()
        yield s
        s.close()
        return
    from pg import database

    with database() as url:
        s = open_store(url)
        s.migrate()
        yield s
        s.close()
