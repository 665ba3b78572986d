"""The shared store: PostgreSQL (psycopg 3), for several nodes serving one worker from one database.

The semantics are `Store`'s, unchanged; this module adds what a server brings: a connection that comes back
after the server restarts or drops it, the schema lock and the ledger's numbering lock (advisory locks, so
nodes migrating or appending at once take turns), and NOTIFY, which `Notifications` turns into wake-ups.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .base import Recheck, Store
from .records import StoreError, StoreUnavailable

log = logging.getLogger("adytum.store")

#: Advisory lock keys ("adyt" and a number): one for migrations, one for the ledger's numbering.
_SCHEMA_LOCK, _LEDGER_LOCK = 0x61647974_01, 0x61647974_02
#: Seconds to wait for the server to accept a connection, and for one statement.
CONNECT_TIMEOUT, STATEMENT_TIMEOUT = 5, 30
#: Tables whose rows orders delete or replace (the schedule, answers, pruned requests, receipts' status, state
#: versions, heartbeats): what `reclaim` vacuums.
CHURNED_TABLES = ("schedule", "work_orders", "responses", "receipts", "state", "nodes", "settings")
#: A NOTIFY payload's size before the next one starts (the server takes up to 8000 bytes).
NOTIFY_BYTES = 7000


def redact(url: str) -> str:
    """The connection string without its password, for logs and messages."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "a PostgreSQL server (the connection string does not parse)"
    params.pop("password", None)
    host, port, db = params.get("host", "localhost"), params.get("port", "5432"), params.get("dbname", "")
    return f"postgresql://{host}:{port}/{db}"


def connect(url: str) -> psycopg.Connection[Any]:
    """A connection in autocommit mode (transactions are explicit, as in SQLite) that notices a dead peer."""
    return psycopg.connect(
        make_conninfo(
            url,
            connect_timeout=CONNECT_TIMEOUT,
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
            options=f"-c statement_timeout={STATEMENT_TIMEOUT * 1000}",
            application_name="adytum",
        ),
        autocommit=True,
    )


class _Connection:
    """`?` placeholders over a psycopg connection that reconnects, between transactions, once it is lost.

    A transaction runs in pipeline mode: statements go to the server without waiting for each answer, and
    only reading a result (a row, a row count) waits for the server to catch up. Most statements of a
    transition are writes nobody reads back, so a group commit of many costs few round trips."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn = connect(url)
        self.pipeline: psycopg.Pipeline | None = None
        self.unsynced = False
        self._sql: dict[str, str] = {}

    @property
    def in_transaction(self) -> bool:
        return self.pipeline is not None

    def execute(self, sql: str, args: Any = ()) -> Any:
        """In a transaction, a fault is raised as it is (`GroupCommit` judges it); a read outside one that
        cannot reach the server raises StoreUnavailable, which the API answers with BUSY."""
        text = self._sql.get(sql)
        if text is None:
            text = self._sql[sql] = sql.replace("?", "%s")
        if self.pipeline is not None:
            self.unsynced = True
            return _Result(self, self.conn.execute(text, args))
        try:
            self.ensure()
            return self.conn.execute(text, args)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise StoreUnavailable(exc) from None

    def sync(self) -> None:
        if self.unsynced and self.pipeline is not None:
            self.unsynced = False
            self.pipeline.sync()

    def ensure(self) -> None:
        if self.conn.closed or self.conn.broken:
            self.conn.close()
            self.conn = connect(self.url)
            log.info("reconnected to %s", redact(self.url))


class _Result:
    """A pipelined statement's cursor: reading it first waits for the server's answers so far."""

    def __init__(self, connection: _Connection, cursor: psycopg.Cursor[Any]) -> None:
        self._connection, self._cursor = connection, cursor

    @property
    def rowcount(self) -> int:
        self._connection.sync()
        return self._cursor.rowcount

    def fetchone(self) -> Any:
        self._connection.sync()
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        self._connection.sync()
        return self._cursor.fetchall()

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class PostgresStore(Store):
    dialect = "postgres"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    defers_reads = True
    shared = True

    def __init__(self, url: str) -> None:
        """Connect; StoreError (one line, no password) if the server cannot be reached or refuses us."""
        self.url = url
        try:
            self.pg = _Connection(url)
        except psycopg.Error as exc:
            raise StoreError(f"{redact(url)} cannot be reached ({_first_line(exc)})") from None
        self.db = self.pg
        self._notes: dict[str, set[str]] = {}

    def describe(self) -> str:
        return redact(self.url)

    def migrate(self) -> list[int]:
        try:
            return super().migrate()
        except psycopg.Error as exc:
            raise StoreError(
                f"{redact(self.url)}: the schema cannot be brought up to date ({_first_line(exc)})"
            ) from None

    def close(self) -> None:
        self.pg.conn.close()

    def reclaim(self) -> None:
        """VACUUM the tables that every order deletes from or rewrites. Autovacuum does the same where it is on
        (the default), but it may be off or lag behind a steady stream of orders, and a table whose dead rows are
        never vacuumed grows for ever. On its own connection: VACUUM cannot run inside a transaction."""
        with connect(self.url) as conn:
            conn.execute(f"VACUUM (ANALYZE) {', '.join(CHURNED_TABLES)}")

    def is_fault(self, exc: BaseException) -> bool:
        """A lost or refused connection, a server shutting down, a timeout, a serialization failure: all pass."""
        return isinstance(exc, (OSError, psycopg.OperationalError, psycopg.InterfaceError))

    @contextmanager
    def _transaction(self, durable: bool) -> Iterator[None]:
        """`durable=False`: the commit returns before the server has flushed it (a crash of the server may
        lose it; its later durable commits flush it too)."""
        self.pg.ensure()  # a fault here is raised as it is: GroupCommit judges it
        conn = self.pg.conn
        with conn.pipeline() as pipeline:
            conn.execute("BEGIN")
            if not durable:
                conn.execute("SET LOCAL synchronous_commit TO OFF")
            self.pg.pipeline = pipeline
            self._notes.clear()
            try:
                yield
                self._send_notes()
                conn.execute("COMMIT")
                pipeline.sync()  # the commit's answer: durable, or the fault it met
            except BaseException as exc:
                if not conn.broken:
                    for statement in ("", "ROLLBACK"):  # leave an aborted pipeline first, then roll back
                        try:
                            if statement:
                                conn.execute(statement)
                            pipeline.sync()
                        except psycopg.Error:
                            pass
                if self._deferred is not None and self._statement_refused(exc, conn):
                    raise Recheck() from exc  # a deferred read would have caught it: run it again, reading
                raise
            finally:
                self.pg.pipeline = None
                self.pg.unsynced = False

    def _statement_refused(self, exc: BaseException, conn: psycopg.Connection[Any]) -> bool:
        """A statement's own error (a key, a constraint), or the pipeline aborted by one: not a fault."""
        if not isinstance(exc, psycopg.Error) or conn.broken:
            return False
        return isinstance(exc, psycopg.errors.PipelineAborted) or not self.is_fault(exc)

    @contextmanager
    def _savepoint(self, name: str) -> Iterator[None]:
        self.pg.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            if not self.pg.conn.broken:
                self.pg.execute(f"ROLLBACK TO SAVEPOINT {name}")
                self.pg.execute(f"RELEASE SAVEPOINT {name}")
            raise
        self.pg.execute(f"RELEASE SAVEPOINT {name}")

    def _has_table(self, name: str) -> bool:
        row = self.pg.execute("SELECT to_regclass(?)", (name,)).fetchone()
        return row is not None and row[0] is not None

    def _lock_schema(self) -> None:
        self.pg.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))

    def _lock_ledger(self) -> None:
        self.pg.execute("SELECT pg_advisory_xact_lock(?)", (_LEDGER_LOCK,))

    def _notify(self, channel: str, payload: str) -> None:
        """Gathered, and sent just before the commit: one NOTIFY a channel for the whole batch (payloads
        joined by commas). A rolled-back transition may leave its payload in: a listener only looks again."""
        self._notes.setdefault(channel, set()).add(payload)

    def _send_notes(self) -> None:
        for channel, payloads in self._notes.items():
            chunk: list[str] = []
            for payload in sorted(payloads):
                chunk.append(payload)
                if sum(len(p) + 1 for p in chunk) > NOTIFY_BYTES:
                    self.pg.execute("SELECT pg_notify(?, ?)", (channel, ",".join(chunk)))
                    chunk = []
            if chunk:
                self.pg.execute("SELECT pg_notify(?, ?)", (channel, ",".join(chunk)))
        self._notes.clear()


class Notifications:
    """LISTEN on the store's channels, on a thread of its own, calling `on(channel, payload)` for each NOTIFY.

    A lost connection is retried with backoff; each (re)connect calls `on_connect()`, since what was announced
    while nobody listened is gone: the node then looks at the store itself (claims, waiters, heads)."""

    def __init__(
        self,
        url: str,
        channels: tuple[str, ...],
        on: Callable[[str, str], None],
        on_connect: Callable[[], None],
    ) -> None:
        self.url, self.channels, self.on, self.on_connect = url, channels, on, on_connect
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="adytum-store-listen", daemon=True)
        self._conn: psycopg.Connection[Any] | None = None
        self.connected = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        delay = 0.1
        while not self._stop.is_set():
            try:
                with connect(self.url) as conn:
                    for channel in self.channels:
                        conn.execute(f"LISTEN {channel}")
                    self.connected.set()
                    self.on_connect()
                    delay = 0.1
                    while not self._stop.is_set():
                        for n in conn.notifies(timeout=1.0):
                            self.on(n.channel, n.payload)
            except psycopg.Error as exc:
                self.connected.clear()
                if self._stop.is_set():
                    return
                log.warning(
                    "listening on %s failed (%s); retrying in %.1f s", redact(self.url), _first_line(exc), delay
                )
                time.sleep(delay)
                delay = min(delay * 2, 5.0)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
