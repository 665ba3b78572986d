"""The store's schema and its state transitions run unchanged on a real PostgreSQL server.

Skips with a reason when PostgreSQL is unreachable; fails instead when CI=true.
"""

import os
import uuid

import pytest

from adytum.store.schema import schema
from conftest import IN_CI

DSN = os.environ.get("ADYTUM_TEST_POSTGRES", "host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=5")


@pytest.fixture
def pg():
    psycopg = pytest.importorskip("psycopg")
    try:
        conn = psycopg.connect(DSN, autocommit=True)
    except psycopg.OperationalError as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI but unreachable at {DSN!r}: {exc}")
        pytest.skip(f"PostgreSQL unreachable at {DSN!r} (set ADYTUM_TEST_POSTGRES): {exc}")
    name = f"adytum_test_{uuid.uuid4().hex[:12]}"
    conn.execute(f"CREATE SCHEMA {name}")
    conn.execute(f"SET search_path TO {name}")
    try:
        yield conn
    finally:
        conn.execute(f"DROP SCHEMA {name} CASCADE")
        conn.close()


def test_schema_and_transitions_on_postgres(pg):
    for stmt in schema("postgres"):
        pg.execute(stmt)
    for stmt in schema("postgres"):  # idempotent, like SQLite's
        pg.execute(stmt)
    with pg.transaction():
        pg.execute(
            "INSERT INTO work_orders (work_order_id, worker_id, requester_id, requester_nonce, params, "
            "submitted_at) VALUES (%s, %s, %s, %s, %s, %s)",
            ("w1", "k", "r", "n1", b"{}", 1.0),
        )
        pg.execute("INSERT INTO schedule (work_order_id, worker_id, state) VALUES (%s, %s, 'scheduled')", ("w1", "k"))
    import psycopg

    with pytest.raises(psycopg.errors.UniqueViolation), pg.transaction():
        pg.execute(
            "INSERT INTO work_orders (work_order_id, worker_id, requester_id, requester_nonce, params, "
            "submitted_at) VALUES (%s, %s, %s, %s, %s, %s)",
            ("w2", "k", "r", "n1", b"{}", 1.0),
        )
    with pg.transaction():  # the multi-host claim: one worker takes a row, others skip it
        row = pg.execute(
            "SELECT work_order_id FROM schedule WHERE worker_id = %s AND state = 'scheduled' "
            "ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED",
            ("k",),
        ).fetchone()
        pg.execute("UPDATE schedule SET state = 'processing', claimed_at = %s WHERE work_order_id = %s", (2.0, row[0]))
    with pg.transaction():
        assert pg.execute("DELETE FROM schedule WHERE work_order_id = %s", ("w1",)).rowcount == 1
        pg.execute(
            "INSERT INTO responses (work_order_id, code, body, completed_at) VALUES (%s, %s, %s, %s)",
            ("w1", 0, b"{}", 3.0),
        )
    assert pg.execute("SELECT code FROM responses WHERE work_order_id = 'w1'").fetchone() == (0,)
    with pytest.raises(psycopg.errors.CheckViolation):
        pg.execute("INSERT INTO schedule (work_order_id, worker_id, state) VALUES ('w1', 'k', 'lost')")
    pg.execute(
        "INSERT INTO workers (worker_id, worker_type, organization_id, application_type_id, status, record, "
        "updated_at) VALUES ('k', 1, 'o', 'a', 1, '{}', 1) ON CONFLICT (worker_id) DO UPDATE SET "
        "status = excluded.status"
    )
