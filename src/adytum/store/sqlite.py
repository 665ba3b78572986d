"""The embedded store: SQLite in WAL mode, one file, durable commits.

`Store` is synchronous and owned by one thread. Each method is one state transition; the caller
(`GroupCommit`) wraps it in a transaction, so a transition is either wholly stored or not at all.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec

from ..errors import AdytumError
from ..ledger.merkle import HASH_LEN, leaf_hash
from ..protocol import WorkerStatus
from ..protocol.receipts import (
    Event,
    ReceiptCreateParams,
    ReceiptEvent,
    ReceiptStatus,
    ReceiptUpdateEvent,
    ReceiptUpdateParams,
    decode_event,
    encode_event,
)
from .schema import RECEIPT_COLUMNS, schema

#: What `receipts()` may filter on: the caller names columns, never SQL.
RECEIPT_FILTERS = frozenset({"worker_id", "worker_service_id", "requester_id", "status"})


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
    """A work order with this id, or this requester nonce, was already accepted (or, field "receipt", its
    requester already created its receipt)."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


class UnknownOrder(AdytumError):
    """No such work order here (for a receipt create), or no receipt for it (for an update)."""

    def __init__(self, work_order_id: str) -> None:
        super().__init__(work_order_id)
        self.work_order_id = work_order_id


@dataclass(frozen=True)
class NewReceipt:
    """A receipt's create record; `params` is its ReceiptCreateParams JSON (the store builds the leaf from it)."""

    work_order_id: str
    worker_id: str
    worker_service_id: str
    requester_id: str
    status: int
    by: Literal["node", "requester"]
    params: str


@dataclass(frozen=True)
class NewReceiptUpdate:
    """A receipt update; `params` is its ReceiptUpdateParams JSON (the store numbers it and builds its leaf)."""

    work_order_id: str
    updater_id: str
    update_type: int
    by: Literal["worker", "requester", "node"]
    params: str


@dataclass(frozen=True)
class StoredHead:
    """A signed tree head, with the frontier of its tree (what the enclave needs to extend it)."""

    tree_size: int
    root: bytes
    timestamp_ms: int
    signature: str
    frontier: list[bytes]


@dataclass(frozen=True)
class LedgerLeaf:
    index: int
    work_order_id: str
    data: bytes  # an encoded Event (`protocol.receipts.encode_event`)
    hash: bytes  # merkle.leaf_hash(data)


@dataclass(frozen=True)
class NewOrder:
    work_order_id: str
    worker_id: str
    requester_id: str
    requester_nonce: str
    params: bytes
    receipt: NewReceipt | None = None  # the node's receipt: stored, with its leaf, in the same transition


@dataclass(frozen=True)
class WorkerRow:
    worker_id: str
    worker_type: int
    organization_id: str
    application_type_id: str
    status: WorkerStatus
    record: str
    expires_at: float | None = None  # when its attestation goes stale; None: the record carries no expiry


class StoreError(AdytumError):
    """The database cannot serve: damaged, unreadable or not writable. The message is one line naming the file."""


class Store:
    def __init__(self, path: Path | str, *, durable: bool = True) -> None:
        """Open (or create, 0600 in a 0700 directory) the database; StoreError if it cannot be used."""
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # the node makes it 0700 first
        _create_private(self.path)
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self.db.execute("PRAGMA busy_timeout=10000")
            self.db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None
        for suffix in ("-wal", "-shm"):  # SQLite gives them the database's mode; older files may be wider
            _narrow(self.path.with_name(self.path.name + suffix))

    def create_schema(self) -> None:
        """Check the database (`PRAGMA quick_check`), then create what is missing; StoreError if it is damaged
        or cannot be written."""
        try:
            rows = [str(r[0]) for r in self.db.execute("PRAGMA quick_check(10)")]
            if rows != ["ok"]:
                problems = [line for row in rows for line in row.splitlines() if not line.startswith("***")]
                more = f"; {len(problems) - 1} more" if len(problems) > 1 else ""
                raise StoreError(
                    f"{self.path} fails its integrity check ({(problems or rows)[0]}{more}): "
                    "restore it from a backup or move it aside"
                )
            with self.transaction():
                self._drop_unwritten_receipts()
                for stmt in schema("sqlite"):
                    self.db.execute(stmt)
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None

    def _unusable(self, exc: sqlite3.Error) -> StoreError:
        if type(exc) is sqlite3.DatabaseError:  # "file is not a database", "database disk image is malformed"
            return StoreError(
                f"{self.path} is not a usable SQLite database ({exc}): restore it from a backup or move it aside"
            )
        return StoreError(f"{self.path} cannot be opened for reading and writing ({type(exc).__name__}: {exc})")

    def _drop_unwritten_receipts(self) -> None:
        """The `receipts` table of earlier versions was never written: replace it if empty, refuse if not."""
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(receipts)")}
        if not columns or RECEIPT_COLUMNS <= columns:
            return
        if self.db.execute("SELECT 1 FROM receipts LIMIT 1").fetchone():
            raise AdytumError(
                f"{self.path}: the receipts table has rows but not the columns {sorted(RECEIPT_COLUMNS - columns)} "
                "of this version; no version of adytum wrote it, so it was changed by hand: move it aside or "
                "empty it before starting the node"
            )
        self.db.execute("DROP TABLE receipts")

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
        if o.receipt is not None:
            self._put_receipt(o.receipt, now)

    def mark_processing(self, work_order_id: str) -> None:
        self.db.execute(
            "UPDATE schedule SET state = 'processing', claimed_at = ? WHERE work_order_id = ? AND state = 'scheduled'",
            (time.time(), work_order_id),
        )

    def insert_response(
        self,
        work_order_id: str,
        code: int,
        body: bytes,
        writes: tuple[ItemWrite, ...] = (),
        receipt_update: NewReceiptUpdate | None = None,
    ) -> bool:
        """Done: the response in, the schedule entry out, the order's state writes stored (each by
        compare-and-swap; StateConflict undoes all of it), and the receipt's update with its leaf. False if it
        was answered already. An order with no receipt (accepted with receipts off) gets no update."""
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
        if receipt_update is not None and self._has_receipt(receipt_update.work_order_id):
            self._append_update(receipt_update, now)
        return True

    # -- receipt transitions: each create and update is stored with its ledger leaf -------------------

    def create_receipt(self, r: NewReceipt) -> None:
        """A requester's create: replaces the node's create record (a new leaf; the old one stays in the
        ledger). Duplicate("receipt") if the requester created one already; UnknownOrder if no such order."""
        if not self.db.execute("SELECT 1 FROM work_orders WHERE work_order_id = ?", (r.work_order_id,)).fetchone():
            raise UnknownOrder(r.work_order_id)
        row = self.db.execute("SELECT by FROM receipts WHERE work_order_id = ?", (r.work_order_id,)).fetchone()
        if row is not None and row[0] == "requester":
            raise Duplicate("receipt")
        # the trail's status stays that of its last status update, if it has one
        self._put_receipt(r, time.time(), status=self._last_update_status(r.work_order_id))

    def add_receipt_update(self, u: NewReceiptUpdate) -> int:
        """An update over the API: its 1-based index. UnknownOrder if the order has no receipt."""
        if not self._has_receipt(u.work_order_id):
            raise UnknownOrder(u.work_order_id)
        return self._append_update(u, time.time())

    def insert_head(self, head: StoredHead) -> bool:
        """A signed tree head; False if one of that size is stored already (the first one stands)."""
        return (
            self.db.execute(
                "INSERT INTO ledger_heads (tree_size, root, timestamp_ms, signature, frontier, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tree_size) DO NOTHING",
                (head.tree_size, head.root, head.timestamp_ms, head.signature, b"".join(head.frontier), time.time()),
            ).rowcount
            == 1
        )

    def _put_receipt(self, r: NewReceipt, now: float, *, status: int | None = None) -> None:
        receipt = msgspec.json.decode(r.params, type=ReceiptCreateParams)
        leaf = self._append_leaf(r.work_order_id, ReceiptEvent(r.work_order_id, receipt, r.by), now)
        self.db.execute(
            "INSERT INTO receipts (work_order_id, worker_id, worker_service_id, requester_id, status, by, leaf, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (work_order_id) DO UPDATE SET "
            "worker_id = excluded.worker_id, worker_service_id = excluded.worker_service_id, "
            "requester_id = excluded.requester_id, status = excluded.status, by = excluded.by, "
            "leaf = excluded.leaf, created_at = excluded.created_at",
            (
                r.work_order_id,
                r.worker_id,
                r.worker_service_id,
                r.requester_id,
                r.status if status is None else status,
                r.by,
                leaf,
                now,
            ),
        )

    def _append_update(self, u: NewReceiptUpdate, now: float) -> int:
        """Numbered next (1-based) within its receipt; a status update (0..4) becomes the receipt's status."""
        update = msgspec.json.decode(u.params, type=ReceiptUpdateParams)
        (last,) = self.db.execute(
            "SELECT COALESCE(MAX(idx), 0) FROM receipt_updates WHERE work_order_id = ?", (u.work_order_id,)
        ).fetchone()
        index = int(last) + 1
        leaf = self._append_leaf(u.work_order_id, ReceiptUpdateEvent(u.work_order_id, index, update, u.by), now)
        self.db.execute(
            "INSERT INTO receipt_updates (work_order_id, idx, updater_id, update_type, by, leaf, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (u.work_order_id, index, u.updater_id, u.update_type, u.by, leaf, now),
        )
        if _is_status(u.update_type):
            self.db.execute("UPDATE receipts SET status = ? WHERE work_order_id = ?", (u.update_type, u.work_order_id))
        return index

    def _append_leaf(self, work_order_id: str, event: Event, now: float) -> int:
        """The next leaf, numbered densely from 0: one writer, and a rolled-back savepoint takes its number back."""
        data = encode_event(event)
        index = self.ledger_size()
        self.db.execute(
            "INSERT INTO ledger (idx, work_order_id, data, hash, created_at) VALUES (?, ?, ?, ?, ?)",
            (index, work_order_id, data, leaf_hash(data), now),
        )
        return index

    def _has_receipt(self, work_order_id: str) -> bool:
        row = self.db.execute("SELECT 1 FROM receipts WHERE work_order_id = ?", (work_order_id,)).fetchone()
        return row is not None

    def _last_update_status(self, work_order_id: str) -> int | None:
        for (update_type,) in self.db.execute(
            "SELECT update_type FROM receipt_updates WHERE work_order_id = ? ORDER BY idx DESC", (work_order_id,)
        ):
            if _is_status(update_type):
                return int(update_type)
        return None

    def forget_failed_bodies(self, older_than: float, batch: int = 500) -> int:
        """Drop the request body of orders that failed (response code != 0) and completed before `older_than`
        (a time.time() value); how many were forgotten. The row stays: the duplicate-id and nonce rules and the
        receipts need it. Junk from strangers (valid shape, nonsense crypto) fails this way, so it is not kept
        beyond a short retention. Cheap per run: the partial index `responses_failed` finds failed responses by
        completion time, the `failed_bodies_until` setting remembers how far earlier runs got, and one run
        forgets at most `batch` bodies (the next run goes on)."""
        since = float(self.setting("failed_bodies_until") or 0.0)
        rows = self.db.execute(
            "SELECT r.work_order_id, r.completed_at FROM responses r "
            "JOIN work_orders o ON o.work_order_id = r.work_order_id "
            "WHERE r.code <> 0 AND r.completed_at >= ? AND r.completed_at < ? AND length(o.params) > 0 "
            "ORDER BY r.completed_at LIMIT ?",
            (since, older_than, batch),
        ).fetchall()
        if not rows:
            return 0
        self.db.executemany("UPDATE work_orders SET params = x'' WHERE work_order_id = ?", [(r[0],) for r in rows])
        # inclusive next time: a tie at the batch boundary is looked at again, not skipped
        self.put_setting("failed_bodies_until", repr(float(rows[-1][1])))
        return len(rows)

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

    def put_setting(self, name: str, value: str) -> None:
        """A named value the node keeps across restarts (a chain cursor, a counter); replaces the old one."""
        self.db.execute(
            "INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    def advance_operator_nonce(self, nonce: int) -> bool:
        """Accept an operator request's nonce only if it is above every nonce accepted before."""
        last = self.setting("operator_nonce")
        if last is not None and int(last) >= nonce:
            return False
        self.put_setting("operator_nonce", str(nonce))
        return True

    # -- reads ---------------------------------------------------------------------------------------

    def response(self, work_order_id: str) -> Outcome | None:
        row = self.db.execute("SELECT code, body FROM responses WHERE work_order_id = ?", (work_order_id,)).fetchone()
        return Outcome(row[0], bytes(row[1])) if row else None

    def setting(self, name: str) -> str | None:
        row = self.db.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
        return str(row[0]) if row else None

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

    def scheduled(self, worker_id: str, after: int = 0) -> list[tuple[int, str]]:
        """(seq, work order id) of the worker's unanswered orders after schedule seq `after`, in seq order: a
        dispatcher reads from the last seq it took, so each order is taken once. Ids only: a pending order's
        body stays in the store until it is sent (`order_params`)."""
        rows = self.db.execute(
            "SELECT seq, work_order_id FROM schedule WHERE worker_id = ? AND seq > ? ORDER BY seq",
            (worker_id, after),
        ).fetchall()
        return [(int(r[0]), str(r[1])) for r in rows]

    def order_params(self, work_order_id: str) -> bytes | None:
        """The order's request body as accepted (empty once forgotten); None if no such order."""
        row = self.db.execute("SELECT params FROM work_orders WHERE work_order_id = ?", (work_order_id,)).fetchone()
        return bytes(row[0]) if row else None

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

    # -- receipt and ledger reads --------------------------------------------------------------------

    def receipt(self, work_order_id: str) -> tuple[str, int, str] | None:
        """(by, current status, ReceiptCreateParams JSON) of the order's receipt."""
        row = self.db.execute(
            "SELECT r.by, r.status, l.data FROM receipts r JOIN ledger l ON l.idx = r.leaf WHERE r.work_order_id = ?",
            (work_order_id,),
        ).fetchone()
        if row is None:
            return None
        event = decode_event(bytes(row[2]))
        assert isinstance(event, ReceiptEvent), "a receipt's leaf is a create event"
        return str(row[0]), int(row[1]), msgspec.json.encode(event.receipt).decode()

    def receipt_updates(self, work_order_id: str) -> list[tuple[int, str, str, int, str]]:
        """(index, by, updater id, update type, ReceiptUpdateParams JSON) of each update, in index order."""
        return [
            (int(r[0]), str(r[1]), str(r[2]), int(r[3]), _update_json(bytes(r[4])))
            for r in self.db.execute(
                "SELECT u.idx, u.by, u.updater_id, u.update_type, l.data FROM receipt_updates u "
                "JOIN ledger l ON l.idx = u.leaf WHERE u.work_order_id = ? ORDER BY u.idx",
                (work_order_id,),
            )
        ]

    def receipts(self, filters: dict[str, Any], *, after: str = "", limit: int = -1) -> tuple[int, list[str]]:
        """(how many receipts match, their work order ids after `after` in id order, at most `limit`);
        filters are column = value on worker_id, worker_service_id, requester_id and status."""
        unknown = set(filters) - RECEIPT_FILTERS
        if unknown:
            raise ValueError(f"receipts cannot be filtered on {sorted(unknown)}")
        where: list[str] = ["1 = 1"]
        args: list[Any] = []
        for column, value in filters.items():
            where.append(f"{column} = ?")
            args.append(value)
        sql = " FROM receipts WHERE " + " AND ".join(where)
        total = int(self.db.execute("SELECT COUNT(*)" + sql, args).fetchone()[0])
        ids = [
            r[0]
            for r in self.db.execute(
                "SELECT work_order_id" + sql + " AND work_order_id > ? ORDER BY work_order_id LIMIT ?",
                [*args, after, limit],
            )
        ]
        return total, ids

    def ledger_size(self) -> int:
        (last,) = self.db.execute("SELECT MAX(idx) FROM ledger").fetchone()
        return 0 if last is None else int(last) + 1

    def ledger_hashes(self, start: int, end: int) -> list[bytes]:
        """The leaf hashes of indexes start <= i < end, in index order."""
        return [
            bytes(r[0])
            for r in self.db.execute("SELECT hash FROM ledger WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end))
        ]

    def ledger_leaves_of(self, work_order_id: str) -> list[LedgerLeaf]:
        """Every leaf recording one of the order's receipt events, in index order."""
        return [
            LedgerLeaf(int(r[0]), str(r[1]), bytes(r[2]), bytes(r[3]))
            for r in self.db.execute(
                "SELECT idx, work_order_id, data, hash FROM ledger WHERE work_order_id = ? ORDER BY idx",
                (work_order_id,),
            )
        ]

    def latest_head(self) -> StoredHead | None:
        return self._head("ORDER BY tree_size DESC LIMIT 1", ())

    def head(self, tree_size: int) -> StoredHead | None:
        return self._head("WHERE tree_size = ?", (tree_size,))

    def head_covering(self, size: int) -> StoredHead | None:
        """The smallest stored head of at least `size` leaves."""
        return self._head("WHERE tree_size >= ? ORDER BY tree_size LIMIT 1", (size,))

    def _head(self, clause: str, args: tuple[object, ...]) -> StoredHead | None:
        row = self.db.execute(
            "SELECT tree_size, root, timestamp_ms, signature, frontier FROM ledger_heads " + clause, args
        ).fetchone()
        if row is None:
            return None
        frontier = bytes(row[4])  # its hashes, concatenated
        return StoredHead(
            int(row[0]),
            bytes(row[1]),
            int(row[2]),
            str(row[3]),
            [frontier[i : i + HASH_LEN] for i in range(0, len(frontier), HASH_LEN)],
        )


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        """A failed COMMIT (disk full, I/O error) is rolled back, so the next transaction can begin."""
        try:
            self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        except sqlite3.Error:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise


class _Savepoint:
    def __init__(self, db: sqlite3.Connection, name: str) -> None:
        self.db, self.name = db, name

    def __enter__(self) -> None:
        self.db.execute(f"SAVEPOINT {self.name}")

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            self.db.execute(f"ROLLBACK TO {self.name}")
        self.db.execute(f"RELEASE {self.name}")


def _create_private(path: Path) -> None:
    """A new database file is made 0600 before SQLite opens it (whatever the umask); an existing one is kept."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _narrow(path)
        return
    except OSError:
        return  # SQLite's own open will name the problem
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _narrow(path: Path) -> None:
    """Take group and other permissions off a file of the store (never adds any: a read-only file stays so)."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            os.chmod(path, mode & 0o700)
    except OSError:
        pass


def _is_status(update_type: int) -> bool:
    """Update types 0..4 are receipt statuses; 255 and above are application data that leave it be."""
    return update_type <= ReceiptStatus.REJECTED


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


def _update_json(leaf: bytes) -> str:
    """The ReceiptUpdateParams JSON of an update's ledger leaf (the leaf is the one record of it)."""
    event = decode_event(leaf)
    assert isinstance(event, ReceiptUpdateEvent), "an update's leaf is an update event"
    return msgspec.json.encode(event.update).decode()
