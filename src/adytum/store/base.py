"""The store's semantics, written once: every state transition and read, in SQL both backends run.

`Store` is synchronous and owned by one thread. Each method is one state transition or one read; the caller
(`GroupCommit`) wraps transitions in a transaction, so a transition is either wholly stored or not at all. A
backend (`sqlite.SqliteStore`, `postgres.PostgresStore`) supplies the connection, transactions, the schema lock
and what a fault looks like; the SQL here uses `?` placeholders and only what SQLite and PostgreSQL share.

Many nodes may share one store (PostgreSQL): an order is claimed by one node (`claim`, with `FOR UPDATE SKIP
LOCKED` there), that node's lease is its heartbeat in `nodes`, and only the claim's owner may answer it. A node
whose heartbeat lapses loses its claims to whoever calls `heartbeat` next.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

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
from . import outbox
from .records import (
    Duplicate,
    ItemWrite,
    LedgerLeaf,
    NewOrder,
    NewReceipt,
    NewReceiptUpdate,
    Outcome,
    StateConflict,
    StoredHead,
    UnknownOrder,
    WorkerRow,
)
from .schema import MIGRATIONS

T = TypeVar("T")

#: What `receipts()` may filter on: the caller names columns, never SQL.
RECEIPT_FILTERS = frozenset({"worker_id", "worker_service_id", "requester_id", "status"})
#: Channels a store announces on (PostgreSQL's NOTIFY): orders scheduled for workers (payload: the worker ids,
#: comma-separated; empty: any worker), orders answered (payload: their ids), tree heads stored (their sizes).
SCHEDULED, ANSWERED, HEADS = "adytum_scheduled", "adytum_answered", "adytum_heads"
_NO_LIMIT = 2**62


class Recheck(AdytumError):
    """An expectation a batch deferred did not hold: run the batch again, each transition checked as it goes."""


def volatile(transition: T) -> T:
    """Mark a transition that need not be durable when it returns: lost in a crash, it costs a re-run and
    nothing else (a claim: the order is scheduled again; a heartbeat: the lease is renewed at the next), or it
    writes nothing. A commit of only such transitions skips the wait for the disk
    (`Store.transaction(durable=False)`), and does not count as proof that the store writes again."""
    transition.volatile = True  # type: ignore[attr-defined]
    return transition


class Store:
    """The shared semantics; a backend sets `db` and the hooks below.

    A transition reads little back: whether an insert took, a row count, an index. On a server each read is
    a round trip, so a batch may run with its reads deferred (`transaction(deferred=True)`): each `_expect`
    assumes the usual answer and goes on, and all are checked once, before the commit. If one does not hold,
    the transaction raises `Recheck` and is rolled back, and `GroupCommit` runs the batch again undeferred,
    where every transition sees its real answers. Either way the stored outcome is the same."""

    #: The connection: `execute(sql, args)` with `?` placeholders, returning a DB-API cursor.
    db: Any
    #: Which `schema.DIALECTS` entry renders the migrations.
    dialect = ""
    #: Appended to the claim's SELECT: PostgreSQL skips rows another node is claiming.
    skip_locked = ""
    #: Whether deferring reads pays (a server); SQLite reads in-process and never defers.
    defers_reads = False
    #: Whether other nodes may serve the same worker from it: then each node claims few orders ahead, so that
    #: a node with room finds work; a store of one node's own may hold more claimed, in memory.
    shared = False

    #: The next ledger index, known while this transaction holds the ledger's numbering (None: ask the table).
    _next_leaf: int | None = None
    #: The checks a deferring transaction runs before its commit (None: not deferring).
    _deferred: list[Callable[[], bool]] | None = None

    # -- transactions ---------------------------------------------------------------------------------

    @contextmanager
    def transaction(self, *, deferred: bool = False, durable: bool = True) -> Iterator[None]:
        """`durable=False`: the commit need not reach the disk before it returns (only `volatile`
        transitions in it); a later durable commit makes it durable too."""
        self._next_leaf = None
        self._deferred = [] if deferred and self.defers_reads else None
        try:
            with self._transaction(durable):
                yield
                if self._deferred and not all(holds() for holds in self._deferred):
                    raise Recheck()
        finally:
            self._next_leaf = None
            self._deferred = None

    def _expect(self, holds: Callable[[], bool]) -> bool:
        """What `holds()` says: now, or (deferring) True now and checked before the commit."""
        if self._deferred is None:
            return holds()
        self._deferred.append(holds)
        return True

    @contextmanager
    def savepoint(self, name: str) -> Iterator[None]:
        try:
            with self._savepoint(name):
                yield
        except BaseException:
            self._next_leaf = None  # a rolled-back leaf gives its number back
            raise

    # -- what a backend supplies ---------------------------------------------------------------------

    def _transaction(self, durable: bool) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _savepoint(self, name: str) -> AbstractContextManager[None]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def is_fault(self, exc: BaseException) -> bool:
        """The store failed (I/O, a lost connection), not the transition's own logic."""
        raise NotImplementedError

    def describe(self) -> str:
        """Where the data is, for messages (a path, or a URL without its password)."""
        raise NotImplementedError

    def reclaim(self) -> None:
        """Make the space of deleted and replaced rows usable again, outside any transaction (a maintenance
        step retention runs now and then). SQLite reuses freed pages by itself: nothing to do."""

    def _has_table(self, name: str) -> bool:
        raise NotImplementedError

    def _lock_schema(self) -> None:
        """Inside the migration's transaction: no other node migrates at the same time."""

    def _lock_ledger(self) -> None:
        """Inside a transaction that appends leaves: leaves are numbered densely, in commit order."""

    def _notify(self, channel: str, payload: str) -> None:
        """Tell the other nodes on this store (at commit); nothing to do when there are none."""

    # -- schema --------------------------------------------------------------------------------------

    def migrate(self) -> list[int]:
        """Bring the schema to the newest version; the versions applied (none: it was current). Safe when
        several nodes start at once: one migrates, the others wait for it and find nothing left to do."""
        applied: list[int] = []
        with self.transaction():
            self._lock_schema()
            self.db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = self.db.execute("SELECT MAX(version) FROM schema_version").fetchone()
            current = int(row[0]) if row and row[0] is not None else 0
            for m in MIGRATIONS:
                if m.version > current:
                    for stmt in m.statements(self.dialect):
                        self.db.execute(stmt)
                    self.db.execute("INSERT INTO schema_version (version) VALUES (?)", (m.version,))
                    applied.append(m.version)
        return applied

    def schema_version(self) -> int:
        """0: a store no release has written (or one from before versions were kept)."""
        if not self._has_table("schema_version"):
            return 0
        row = self.db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _insert_unique(self, sql: str, args: tuple[object, ...]) -> bool:
        """Run an INSERT; False if a unique key refused it. The refusal is no error (PostgreSQL would abort the
        whole transaction on one), so the transition can go on to say which key."""
        return self._expect(_one_row(self.db.execute(sql + " ON CONFLICT DO NOTHING", args)))

    # -- work-order transitions (each called inside a transaction) ---------------------------------

    def insert_order(self, o: NewOrder) -> None:
        """Accepted: the request and its schedule entry, together; the nodes serving its worker are told, unless
        the order is claimed at once (`o.owner`)."""
        now = time.time()
        if not self._insert_unique(
            "INSERT INTO work_orders (work_order_id, worker_id, requester_id, "
            "requester_nonce, params, submitted_at) VALUES (?, ?, ?, ?, ?, ?)",
            (o.work_order_id, o.worker_id, o.requester_id, o.requester_nonce, o.params, now),
        ):
            known = self.db.execute("SELECT 1 FROM work_orders WHERE work_order_id = ?", (o.work_order_id,)).fetchone()
            raise Duplicate("workOrderId" if known else "requesterNonce")
        if o.owner is None:
            self.db.execute(
                "INSERT INTO schedule (work_order_id, worker_id, state) VALUES (?, ?, 'scheduled')",
                (o.work_order_id, o.worker_id),
            )
            self._notify(SCHEDULED, o.worker_id)
        else:  # claimed as it is stored: no other node need hear of it
            self.db.execute(
                "INSERT INTO schedule (work_order_id, worker_id, state, owner, claimed_at) "
                "VALUES (?, ?, 'processing', ?, ?)",
                (o.work_order_id, o.worker_id, o.owner, now),
            )
        if o.receipt is not None:
            self._put_receipt(o.receipt, now)
        if o.notify_uri:
            outbox.add(self, o.work_order_id, o.notify_uri, now)

    # -- claims: which node runs which order -----------------------------------------------------------

    @volatile
    def claim(self, worker_id: str, node_id: str, limit: int) -> tuple[list[str], int]:
        """Up to `limit` of the worker's scheduled orders, oldest first, now processing under `node_id`, and
        how many are still scheduled after them (counted up to 100,000; 0 when fewer than `limit` were left, as
        far as this transaction saw). Ids only: an order's body stays in
        the store until it is sent (`order_params`)."""
        rows = self.db.execute(
            "SELECT work_order_id FROM schedule WHERE worker_id = ? AND state = 'scheduled' ORDER BY seq LIMIT ?"
            + self.skip_locked,
            (worker_id, limit),
        ).fetchall()
        ids = [str(r[0]) for r in rows]
        if ids:
            self.db.execute(
                "UPDATE schedule SET state = 'processing', owner = ?, claimed_at = ? "
                f"WHERE work_order_id IN ({', '.join('?' * len(ids))})",
                (node_id, time.time(), *ids),
            )
        return ids, self.backlog(worker_id) if len(ids) == limit else 0

    @volatile  # it only reads
    def claimed_by(self, worker_id: str, node_id: str) -> list[str]:
        """The worker's orders `node_id` holds claims on, oldest first: what it must run (after a claim whose
        commit it could not confirm, for one)."""
        rows = self.db.execute(
            "SELECT work_order_id FROM schedule WHERE worker_id = ? AND owner = ? AND state = 'processing' "
            "ORDER BY seq",
            (worker_id, node_id),
        ).fetchall()
        return [str(r[0]) for r in rows]

    @volatile
    def heartbeat(self, node_id: str, lease: float) -> int:
        """`node_id` is alive for `lease` more seconds. Nodes whose lease ran out lose their claims: those
        orders are scheduled again (and the nodes told). How many were taken back."""
        now = time.time()
        self.db.execute(
            "INSERT INTO nodes (node_id, alive_until, started_at) VALUES (?, ?, ?) "
            "ON CONFLICT (node_id) DO UPDATE SET alive_until = excluded.alive_until",
            (node_id, now + lease, now),
        )
        dead = [str(r[0]) for r in self.db.execute("SELECT node_id FROM nodes WHERE alive_until < ?", (now,))]
        taken = 0
        for node in dead:
            taken += self._unclaim(node)
            self.db.execute("DELETE FROM nodes WHERE node_id = ? AND alive_until < ?", (node, now))
        if taken:
            self._notify(SCHEDULED, "")
        return taken

    def release(self, node_id: str) -> int:
        """What `node_id` had claimed is scheduled again (its start after a crash, or its stop); how many.
        Rows from before claims had owners count as this node's."""
        n = self._unclaim(node_id)
        n += self.db.execute(
            "UPDATE schedule SET state = 'scheduled', claimed_at = NULL WHERE state = 'processing' AND owner IS NULL"
        ).rowcount
        if n:
            self._notify(SCHEDULED, "")
        return n

    def leave(self, node_id: str) -> int:
        """A clean stop: claims released and the node's row gone."""
        n = self.release(node_id)
        self.db.execute("DELETE FROM nodes WHERE node_id = ?", (node_id,))
        return n

    def _unclaim(self, node_id: str) -> int:
        return int(
            self.db.execute(
                "UPDATE schedule SET state = 'scheduled', owner = NULL, claimed_at = NULL "
                "WHERE owner = ? AND state = 'processing'",
                (node_id,),
            ).rowcount
        )

    def insert_response(
        self,
        work_order_id: str,
        code: int,
        body: bytes,
        writes: tuple[ItemWrite, ...] = (),
        receipt_update: NewReceiptUpdate | None = None,
        owner: str | None = None,
    ) -> bool:
        """Done: the response in, the schedule entry out, the order's state writes stored (each by
        compare-and-swap; StateConflict undoes all of it), and the receipt's update with its leaf. False if it
        was answered already, or (with `owner`) if that node's claim was taken back: a late answer is dropped,
        so each order is answered once. An order with no receipt (accepted with receipts off) gets no update."""
        if owner is None:
            cur = self.db.execute("DELETE FROM schedule WHERE work_order_id = ?", (work_order_id,))
        else:
            cur = self.db.execute(
                "DELETE FROM schedule WHERE work_order_id = ? AND owner = ? AND state = 'processing'",
                (work_order_id, owner),
            )
        if not self._expect(_one_row(cur)):
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
            if not self._expect(_one_row(cur)):
                raise StateConflict(w.item_id)
        self.db.execute(
            "INSERT INTO responses (work_order_id, code, body, completed_at) VALUES (?, ?, ?, ?)",
            (work_order_id, code, body, now),
        )
        if receipt_update is not None and self._expect(self._has_receipt_later(receipt_update.work_order_id)):
            self._append_update(receipt_update, now)
        self._notify(ANSWERED, work_order_id)
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
        stored = (
            self.db.execute(
                "INSERT INTO ledger_heads (tree_size, root, timestamp_ms, signature, frontier, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tree_size) DO NOTHING",
                (head.tree_size, head.root, head.timestamp_ms, head.signature, b"".join(head.frontier), time.time()),
            ).rowcount
            == 1
        )
        if stored:
            self._notify(HEADS, str(head.tree_size))
        return stored

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
        cur = self.db.execute(
            "SELECT COALESCE(MAX(idx), 0) FROM receipt_updates WHERE work_order_id = ?", (u.work_order_id,)
        )
        if self._deferred is None:
            index = int(cur.fetchone()[0]) + 1
        else:  # deferring: the usual case, an order's first update (its worker's answer), checked before commit
            index = 1
            self._expect(lambda: int(cur.fetchone()[0]) == 0)
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
        if self._next_leaf is None:
            self._lock_ledger()
            self._next_leaf = self.ledger_size()
        index = self._next_leaf
        self.db.execute(
            "INSERT INTO ledger (idx, work_order_id, data, hash, created_at) VALUES (?, ?, ?, ?, ?)",
            (index, work_order_id, data, leaf_hash(data), now),
        )
        self._next_leaf = index + 1
        return index

    def _has_receipt(self, work_order_id: str) -> bool:
        return self._has_receipt_later(work_order_id)()

    def _has_receipt_later(self, work_order_id: str) -> Callable[[], bool]:
        cur = self.db.execute("SELECT 1 FROM receipts WHERE work_order_id = ?", (work_order_id,))
        return lambda: cur.fetchone() is not None

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
        for r in rows:
            self.db.execute("UPDATE work_orders SET params = ? WHERE work_order_id = ?", (b"", r[0]))
        # inclusive next time: a tie at the batch boundary is looked at again, not skipped
        self.put_setting("failed_bodies_until", repr(float(rows[-1][1])))
        return len(rows)

    def prune_answered(self, older_than: float, batch: int = 1000) -> int:
        """Forget answered orders that completed before `older_than` (a time.time() value): their response
        and schedule history go; how many. An order with a receipt keeps its request row, emptied, so its id
        and nonce stay taken and its receipt and ledger leaves stay whole; one without is forgotten entirely
        (its id could then be submitted again). One run prunes at most `batch`; the next goes on."""
        rows = self.db.execute(
            "SELECT r.work_order_id, (SELECT 1 FROM receipts c WHERE c.work_order_id = r.work_order_id) "
            "FROM responses r WHERE r.completed_at < ? ORDER BY r.completed_at LIMIT ?",
            (older_than, batch),
        ).fetchall()
        for work_order_id, has_receipt in rows:
            self.db.execute("DELETE FROM responses WHERE work_order_id = ?", (work_order_id,))
            self.db.execute("DELETE FROM notifications WHERE work_order_id = ?", (work_order_id,))
            if has_receipt:
                self.db.execute("UPDATE work_orders SET params = ? WHERE work_order_id = ?", (b"", work_order_id))
            else:
                self.db.execute("DELETE FROM work_orders WHERE work_order_id = ?", (work_order_id,))
        return len(rows)

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
        if not self._insert_unique(
            "INSERT INTO workers (worker_id, worker_type, organization_id, application_type_id, "
            "status, record, updated_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            _worker_values(w),
        ):
            raise Duplicate("workerId")

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
        """'scheduled', 'processing', 'done', 'pruned' (answered, and its result forgotten after the retention
        period), or None if the id is unknown."""
        row = self.db.execute("SELECT state FROM schedule WHERE work_order_id = ?", (work_order_id,)).fetchone()
        if row:
            return str(row[0])
        if self.db.execute("SELECT 1 FROM responses WHERE work_order_id = ?", (work_order_id,)).fetchone():
            return "done"
        row = self.db.execute("SELECT 1 FROM work_orders WHERE work_order_id = ?", (work_order_id,)).fetchone()
        return "pruned" if row else None

    def backlog(self, worker_id: str) -> int:
        """The worker's orders scheduled and not yet claimed, counted up to 100,000."""
        (n,) = self.db.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM schedule WHERE worker_id = ? AND state = 'scheduled' LIMIT 100000) s",
            (worker_id,),
        ).fetchone()
        return int(n)

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
                "SELECT worker_id" + sql + " AND worker_id > ? ORDER BY worker_id LIMIT ?",
                [*args, after, _limit(limit)],
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
                [*args, after, _limit(limit)],
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


def _one_row(cur: Any) -> Callable[[], bool]:
    """The check that a statement touched exactly one row (read when the check runs: maybe before commit)."""
    return lambda: int(cur.rowcount) == 1


def _limit(limit: int) -> int:
    """A LIMIT both backends take: a negative one means none (PostgreSQL refuses negative limits)."""
    return _NO_LIMIT if limit < 0 else limit


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
