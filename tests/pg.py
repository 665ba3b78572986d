"""Test databases on a real PostgreSQL server: each test gets its own, made and dropped here.

The server is the one at $ADYTUM_TEST_POSTGRES (default 127.0.0.1:5432, user postgres, trust auth, as on the
project's machines and in CI). Unreachable: the test skips with the reason, or fails when CI=true.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from conftest import IN_CI

SERVER = os.environ.get("ADYTUM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _admin() -> psycopg.Connection:
    try:
        return psycopg.connect(SERVER, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL unreachable at {SERVER} (set ADYTUM_TEST_POSTGRES): {str(exc).strip()}"
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI: {reason}")
        pytest.skip(reason)


def url_of(dbname: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(SERVER)
    info["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**info)


@contextmanager
def database() -> Iterator[str]:
    """A new, empty database; its connection string. Dropped afterwards (its connections with it)."""
    name = f"adytum_t_{uuid.uuid4().hex[:12]}"
    with _admin() as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield url_of(name)
    finally:
        with _admin() as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def terminate_backends(url: str) -> int:
    """Every connection to the database of `url` killed by the server (pg_terminate_backend); how many."""
    dbname = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with _admin() as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,),
        ).fetchall()
    return len(rows)
