"""The embedded store: SQLite in WAL mode, one file, durable commits.

`Store` is synchronous and owned by one thread. Each method is one state transition; the caller
(`GroupCommit`) wraps it in a transaction, so a transition is either wholly stored or not at all.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AdytumError
from ..protocol import WorkerStatus
from .schema import schema


class StateConflict(AdytumError):
    """A state item changed since the order read it: the order must run again on the new value."""


@dataclass(frozen=True)
class ItemWrite:
    item_id: str
    version: int  # stored only if the current version is version - 1 (for version 1: no item yet)
    value: bytes


@dataclass(frozen=True)
class Outcome:
    """A stored response: code 0 with the result JSON, or an EEA error code with its message."""

    code: int
    body: bytes


class Duplicate(AdytumError):
    """A work order with this id, or this requester nonce, was already accepted."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


@dataclass(frozen=True)
class NewOrder:
    work_order_id: str
    worker_id: str
    requester_id: str
    requester_nonce: str
    params: bytes


@dataclass(frozen=True)
class WorkerRow:
    worker_id: str
    worker_type: int
    organization_id: str
    application_type_id: str
    status: WorkerStatus
    record: str
    expires_at: float | None = None  # when its attestation goes stale; None: the record carries no expiry


class Store:
    def __init__(self, path: Path | str, *, durable: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self.db.execute("PRAGMA busy_timeout=10000")
        self.db.execute("PRAGMA foreign_keys=ON")

    def create_schema(self) -> None:
        with self.transaction():
            for stmt in schema("sqlite"):
                self.db.execute(stmt)

    def close(self) -> None:
        self.db.close()

    # -- transactions ------------------------------------------------------------------------------

    def transaction(self) -> _Transaction:
        return _Transaction(self.db)

    def savepoint(self, name: str) -> _Savepoint:
        return _Savepoint(self.db, name)

    # -- work-order transitions (each called inside a transaction) ---------------------------------

    def insert_order(self, o: NewOrder) -> None:
        """Accepted: the request and its schedule entry, together."""
        now = time.time()
        try:
            self.db.execute(
                "INSERT INTO work_orders (work_order_id, worker_id, requester_id, "
                "requester_nonce, params, submitted_at) VALUES (?, ?, ?, ?, ?, ?)",
                (o.work_order_id, o.worker_id, o.requester_id, o.requester_nonce, o.params, now),
            )
        except sqlite3.IntegrityError:
            known = self.db.execute("SELECT 1 FROM work_orders WHERE work_order_id = ?", (o.work_order_id,)).fetchone()
            raise Duplicate("workOrderId" if known else "requesterNonce") from None
        self.db.execute(
            "INSERT INTO schedule (work_order_id, worker_id, state) VALUES (?, ?, 'scheduled')",
            (o.work_order_id, o.worker_id),
        )

    def mark_processing(self, work_order_id: str) -> None:
        self.db.execute(
            "UPDATE schedule SET state = 'processing', claimed_at = ? WHERE work_order_id = ? AND state = 'scheduled'",
            (time.time(), work_order_id),
        )

    def insert_response(self, work_order_id: str, code: int, body: bytes, writes: tuple[ItemWrite, ...] = ()) -> bool:
        """Done: the response in, the schedule entry out, the order's state writes stored (each by
        compare-and-swap; StateConflict undoes all of it). False if it was answered already."""
        cur = self.db.execute("DELETE FROM schedule WHERE work_order_id = ?", (work_order_id,))
        if cur.rowcount == 0:
            return False
        now = time.time()
        for w in writes:
            if w.version == 1:
                cur = self.db.execute(
                    "INSERT INTO state (item_id, version, value, updated_at) VALUES (?, 1, ?, ?) "
                    "ON CONFLICT (item_id) DO NOTHING",
                    (w.item_id, w.value, now),
                )
            else:
                cur = self.db.execute(
                    "UPDATE state SET version = ?, value = ?, updated_at = ? WHERE item_id = ? AND version = ?",
                    (w.version, w.value, now, w.item_id, w.version - 1),
                )
            if cur.rowcount != 1:
                raise StateConflict(w.item_id)
        self.db.execute(
            "INSERT INTO responses (work_order_id, code, body, completed_at) VALUES (?, ?, ?, ?)",
            (work_order_id, code, body, now),
        )
        return True

    def requeue_processing(self) -> int:
        """After a crash: whatever was being processed is scheduled again."""
        return self.db.execute(
            "UPDATE schedule SET state = 'scheduled', claimed_at = NULL WHERE state = 'processing'"
        ).rowcount

    def put_worker(self, w: WorkerRow) -> None:
        """Insert or refresh a worker record; an existing worker keeps the status its operator set."""
        self.db.execute(
            "INSERT INTO workers (worker_id, worker_type, organization_id, application_type_id, "
            "status, record, updated_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (worker_id) DO UPDATE SET worker_type = excluded.worker_type, "
            "organization_id = excluded.organization_id, "
            "application_type_id = excluded.application_type_id, "
            "record = excluded.record, updated_at = excluded.updated_at, "
            "expires_at = excluded.expires_at",
            _worker_values(w),
        )

    def register_worker(self, w: WorkerRow) -> None:
        try:
            self.db.execute(
                "INSERT INTO workers (worker_id, worker_type, organization_id, application_type_id, "
                "status, record, updated_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                _worker_values(w),
            )
        except sqlite3.IntegrityError:
            raise Duplicate("workerId") from None

    def set_worker_status(self, worker_id: str, status: WorkerStatus) -> bool:
        return (
            self.db.execute(
                "UPDATE workers SET status = ?, updated_at = ? WHERE worker_id = ?", (status, time.time(), worker_id)
            ).rowcount
            == 1
        )

    def advance_operator_nonce(self, nonce: int) -> bool:
        """Accept an operator request's nonce only if it is above every nonce accepted before."""
        row = self.db.execute("SELECT value FROM settings WHERE name = 'operator_nonce'").fetchone()
        if row and int(row[0]) >= nonce:
            return False
        self.db.execute(
            "INSERT INTO settings (name, value) VALUES ('operator_nonce', ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (str(nonce),),
        )
        return True

    # -- reads ---------------------------------------------------------------------------------------

    def response(self, work_order_id: str) -> Outcome | None:
        row = self.db.execute("SELECT code, body FROM responses WHERE work_order_id = ?", (work_order_id,)).fetchone()
        return Outcome(row[0], bytes(row[1])) if row else None

    def state_item(self, item_id: str) -> tuple[int, bytes] | None:
        row = self.db.execute("SELECT version, value FROM state WHERE item_id = ?", (item_id,)).fetchone()
        return (int(row[0]), bytes(row[1])) if row else None

    def state(self, work_order_id: str) -> str | None:
        """'scheduled', 'processing', 'done', or None if the id is unknown."""
        row = self.db.execute("SELECT state FROM schedule WHERE work_order_id = ?", (work_order_id,)).fetchone()
        if row:
            return str(row[0])
        row = self.db.execute("SELECT 1 FROM responses WHERE work_order_id = ?", (work_order_id,)).fetchone()
        return "done" if row else None

    def scheduled(self, worker_id: str, after: int = 0) -> list[tuple[int, str, bytes]]:
        """(seq, work order id, params) of the worker's unanswered orders after schedule seq `after`, in seq
        order: a dispatcher reads from the last seq it took, so each order is taken once."""
        rows = self.db.execute(
            "SELECT s.seq, s.work_order_id, o.params FROM schedule s "
            "JOIN work_orders o ON o.work_order_id = s.work_order_id "
            "WHERE s.worker_id = ? AND s.seq > ? ORDER BY s.seq",
            (worker_id, after),
        ).fetchall()
        return [(int(r[0]), r[1], bytes(r[2])) for r in rows]

    def counts(self) -> dict[str, int]:
        out = {"scheduled": 0, "processing": 0}
        for state, n in self.db.execute("SELECT state, COUNT(*) FROM schedule GROUP BY state"):
            out[state] = n
        out["done"] = int(self.db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
        return out

    def worker(self, worker_id: str) -> WorkerRow | None:
        row = self.db.execute(
            "SELECT worker_id, worker_type, organization_id, application_type_id, status, "
            "record, expires_at FROM workers WHERE worker_id = ?",
            (worker_id,),
        ).fetchone()
        if row is None:
            return None
        worker_id, worker_type, organization_id, application_type_id, status, record, expires_at = row
        return WorkerRow(
            worker_id, worker_type, organization_id, application_type_id, WorkerStatus(status), record, expires_at
        )

    def workers(self, filters: dict[str, Any], *, after: str = "", limit: int = -1) -> tuple[int, list[str]]:
        """(how many match, the ids after `after` in id order, at most `limit`); stale workers never match."""
        where, args = ["(expires_at IS NULL OR expires_at > ?)"], [time.time()]
        for column, value in filters.items():
            where.append(f"{column} = ?")
            args.append(value)
        sql = " FROM workers WHERE " + " AND ".join(where)
        total = int(self.db.execute("SELECT COUNT(*)" + sql, args).fetchone()[0])
        ids = [
            r[0]
            for r in self.db.execute(
                "SELECT worker_id" + sql + " AND worker_id > ? ORDER BY worker_id LIMIT ?", [*args, after, limit]
            )
        ]
        return total, ids


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")


class _Savepoint:
    def __init__(self, db: sqlite3.Connection, name: str) -> None:
        self.db, self.name = db, name

    def __enter__(self) -> None:
        self.db.execute(f"SAVEPOINT {self.name}")

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            self.db.execute(f"ROLLBACK TO {self.name}")
        self.db.execute(f"RELEASE {self.name}")


def _worker_values(w: WorkerRow) -> tuple[object, ...]:
    """A worker row's columns in `workers` order, stamped now."""
    return (
        w.worker_id,
        w.worker_type,
        w.organization_id,
        w.application_type_id,
        w.status,
        w.record,
        time.time(),
        w.expires_at,
    )
