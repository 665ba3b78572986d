"""Receipts in the SQLite store: each create and update is stored with its ledger leaf in one transition, leaf
indexes are dense from 0 even when a transition fails, lookups filter and page, signed heads round-trip."""

from __future__ import annotations

import asyncio
import sqlite3

import msgspec
import pytest

from adytum.errors import AdytumError
from adytum.ledger import merkle
from adytum.protocol.receipts import (
    ReceiptCreateParams,
    ReceiptEvent,
    ReceiptUpdateEvent,
    ReceiptUpdateParams,
    decode_event,
    encode_event,
)
from adytum.store import (
    Duplicate,
    GroupCommit,
    NewOrder,
    NewReceipt,
    NewReceiptUpdate,
    SqliteStore,
    Store,
    StoredHead,
    UnknownOrder,
)

WORKER = "aa" * 32
REQUESTER = "bb" * 32


def wo(i: int) -> str:
    return f"{i:064x}"


def create_params(i: int, *, requester: str = REQUESTER, status: int = 0, signature: str = "") -> ReceiptCreateParams:
    return ReceiptCreateParams(wo(i), WORKER, WORKER, requester, status, "aGFzaA==", f"{i:032x}", signature)


def node_receipt(i: int, *, requester: str = REQUESTER) -> NewReceipt:
    params = msgspec.json.encode(create_params(i, requester=requester)).decode()
    return NewReceipt(wo(i), WORKER, WORKER, requester, 0, "node", params)


def requester_receipt(i: int, status: int = 0) -> NewReceipt:
    params = msgspec.json.encode(create_params(i, status=status, signature="c2ln")).decode()
    return NewReceipt(wo(i), WORKER, WORKER, REQUESTER, status, "requester", params)


def order(i: int, *, requester: str = REQUESTER, receipt: bool = True, nonce: str | None = None) -> NewOrder:
    receipt_row = node_receipt(i, requester=requester) if receipt else None
    return NewOrder(wo(i), WORKER, requester, nonce or f"{i:032x}", b'{"p":1}', receipt_row)


def update_params(i: int, update_type: int, *, updater: str = WORKER) -> ReceiptUpdateParams:
    return ReceiptUpdateParams(wo(i), updater, update_type, "ZGF0YQ==", "c2ln")


def update(i: int, update_type: int, by: str = "worker", *, updater: str = WORKER) -> NewReceiptUpdate:
    params = msgspec.json.encode(update_params(i, update_type, updater=updater)).decode()
    return NewReceiptUpdate(wo(i), updater, update_type, by, params)  # type: ignore[arg-type]


@pytest.fixture
def store(any_store):
    """Each test here runs on SQLite and on PostgreSQL."""
    return any_store


def accept(store: Store, *orders: NewOrder) -> None:
    with store.transaction():
        for o in orders:
            store.insert_order(o)


def test_node_receipt_and_its_leaf_go_in_with_the_order(store):
    accept(store, order(1))
    by, status, params = store.receipt(wo(1))
    assert (by, status) == ("node", 0)
    assert msgspec.json.decode(params, type=ReceiptCreateParams) == create_params(1)
    (leaf,) = store.ledger_leaves_of(wo(1))
    assert (leaf.index, leaf.work_order_id) == (0, wo(1))
    assert leaf.data == encode_event(ReceiptEvent(wo(1), create_params(1), "node"))
    assert leaf.hash == merkle.leaf_hash(leaf.data)
    assert store.ledger_size() == 1
    assert store.receipt_updates(wo(1)) == []


def test_an_order_without_a_receipt_stores_none(store):
    accept(store, order(1, receipt=False))
    assert store.receipt(wo(1)) is None
    assert store.ledger_size() == 0
    with store.transaction():
        assert store.insert_response(wo(1), 0, b"{}", receipt_update=update(1, 1))  # receipts were off for it
    assert store.receipt_updates(wo(1)) == [] and store.ledger_size() == 0
    with pytest.raises(UnknownOrder), store.transaction():
        store.add_receipt_update(update(1, 2, "requester", updater=REQUESTER))


def test_requester_create_replaces_the_node_receipt_once(store):
    accept(store, order(1))
    with store.transaction():
        store.create_receipt(requester_receipt(1))
    by, status, params = store.receipt(wo(1))
    assert (by, status) == ("requester", 0)
    assert msgspec.json.decode(params, type=ReceiptCreateParams).requesterSignature == "c2ln"
    leaves = store.ledger_leaves_of(wo(1))
    assert [leaf.index for leaf in leaves] == [0, 1]  # the node's create stays in the ledger
    event = decode_event(leaves[1].data)
    assert isinstance(event, ReceiptEvent) and event.by == "requester" and event.receipt.requesterSignature == "c2ln"
    with pytest.raises(Duplicate) as dup, store.transaction():
        store.create_receipt(requester_receipt(1))
    assert dup.value.field == "receipt"
    with pytest.raises(UnknownOrder) as unknown, store.transaction():
        store.create_receipt(requester_receipt(2))
    assert unknown.value.work_order_id == wo(2)
    assert store.ledger_size() == 2 and store.receipt(wo(2)) is None


def test_a_late_requester_create_keeps_the_trail_status(store):
    accept(store, order(1))
    with store.transaction():
        store.insert_response(wo(1), 0, b"{}", receipt_update=update(1, 1))
        store.create_receipt(requester_receipt(1, status=0))
    assert store.receipt(wo(1))[:2] == ("requester", 1)  # completed stays completed


def test_updates_are_numbered_from_one(store):
    accept(store, order(1))
    with store.transaction():
        assert store.add_receipt_update(update(1, 2, "requester", updater=REQUESTER)) == 1
        assert store.add_receipt_update(update(1, 255, "requester", updater=REQUESTER)) == 2
        assert store.add_receipt_update(update(1, 4, "worker")) == 3
    rows = store.receipt_updates(wo(1))
    assert [(idx, by, updater, kind) for idx, by, updater, kind, _ in rows] == [
        (1, "requester", REQUESTER, 2),
        (2, "requester", REQUESTER, 255),
        (3, "worker", WORKER, 4),
    ]
    assert msgspec.json.decode(rows[1][4], type=ReceiptUpdateParams) == update_params(1, 255, updater=REQUESTER)
    assert store.receipt(wo(1))[1] == 4  # the last status update; 255 is application data
    leaves = store.ledger_leaves_of(wo(1))
    assert [leaf.index for leaf in leaves] == [0, 1, 2, 3]
    second = ReceiptUpdateEvent(wo(1), 2, update_params(1, 255, updater=REQUESTER), "requester")
    assert leaves[2].data == encode_event(second)


def test_insert_response_stores_the_worker_update(store):
    accept(store, order(1), order(2))
    with store.transaction():
        assert store.insert_response(wo(1), 0, b"{}", receipt_update=update(1, 1))
    assert store.receipt(wo(1))[1] == 1
    [(idx, by, updater, kind, _)] = store.receipt_updates(wo(1))
    assert (idx, by, updater, kind) == (1, "worker", WORKER, 1)
    assert [leaf.index for leaf in store.ledger_leaves_of(wo(1))] == [0, 2]  # order 2's create is leaf 1
    with store.transaction():  # answered once: the second answer stores no update either
        assert not store.insert_response(wo(1), 0, b"again", receipt_update=update(1, 3))
    assert len(store.receipt_updates(wo(1))) == 1 and store.ledger_size() == 3
    with store.transaction():
        assert store.insert_response(wo(2), 5, b"failed", receipt_update=update(2, 3, "node"))
    assert store.receipt(wo(2))[1] == 3
    assert store.receipt_updates(wo(2))[0][1] == "node"


def test_lookup_filters_and_pages(store):
    other = "cc" * 32
    accept(store, *(order(i, requester=REQUESTER if i % 2 else other) for i in range(1, 8)))
    with store.transaction():
        for i in (1, 2, 3):
            store.insert_response(wo(i), 0, b"{}", receipt_update=update(i, 1))
    assert store.receipts({}) == (7, [wo(i) for i in range(1, 8)])
    assert store.receipts({"status": 1}) == (3, [wo(1), wo(2), wo(3)])
    assert store.receipts({"status": 0}) == (4, [wo(4), wo(5), wo(6), wo(7)])
    assert store.receipts({"requester_id": REQUESTER}) == (4, [wo(1), wo(3), wo(5), wo(7)])
    assert store.receipts({"requester_id": other, "status": 1}) == (1, [wo(2)])
    assert store.receipts({"worker_id": WORKER, "worker_service_id": WORKER}, limit=2) == (7, [wo(1), wo(2)])
    assert store.receipts({}, after=wo(2), limit=2) == (7, [wo(3), wo(4)])
    assert store.receipts({}, after=wo(7)) == (7, [])
    assert store.receipts({"worker_id": "dd" * 32}) == (0, [])
    with pytest.raises(ValueError):
        store.receipts({"receipt": "x"})


def test_ledger_hashes_and_heads(store):
    accept(store, *(order(i) for i in range(5)))
    with store.transaction():
        store.add_receipt_update(update(0, 1))
    hashes = store.ledger_hashes(0, store.ledger_size())
    assert len(hashes) == 6
    assert hashes == [merkle.leaf_hash(row[0]) for row in store.db.execute("SELECT data FROM ledger ORDER BY idx")]
    assert store.ledger_hashes(2, 4) == hashes[2:4]
    assert store.ledger_hashes(6, 10) == []
    assert [leaf.index for leaf in store.ledger_leaves_of(wo(0))] == [0, 5]
    assert store.ledger_leaves_of(wo(9)) == []

    assert store.latest_head() is None and store.head_covering(1) is None
    heads = [
        StoredHead(n, merkle.root(hashes[:n]), 1000 + n, f"sig{n}", merkle.frontier(hashes[:n])) for n in (0, 3, 6)
    ]
    with store.transaction():
        assert all(store.insert_head(h) for h in heads)
        assert not store.insert_head(StoredHead(3, b"\0" * 32, 1, "other", []))  # the first head of a size stands
    assert store.head(3) == heads[1]
    assert store.head(4) is None
    assert store.latest_head() == heads[2]
    assert merkle.frontier_root(6, store.latest_head().frontier) == merkle.root(hashes)
    assert store.head_covering(0) == heads[0]
    assert store.head_covering(1) == heads[1]
    assert store.head_covering(4) == heads[2]
    assert store.head_covering(7) is None


def fails_after_its_leaf(store: Store) -> None:
    store.add_receipt_update(update(3, 2))
    raise RuntimeError("after the leaf")


def test_failed_transitions_leave_no_leaf_and_no_gap(store):
    async def main():
        gc = GroupCommit(store)
        gc.start()
        futures = [
            gc.submit(Store.insert_order, order(1)),
            gc.submit(Store.insert_order, order(1)),  # duplicate order: its receipt and leaf must not stay
            gc.submit(Store.insert_order, order(2, nonce=f"{1:032x}")),  # duplicate nonce
            gc.submit(Store.insert_order, order(3)),
            gc.submit(Store.create_receipt, requester_receipt(1)),
            gc.submit(Store.create_receipt, requester_receipt(1)),  # second requester create
            gc.submit(Store.create_receipt, requester_receipt(9)),  # unknown order
            gc.submit(Store.add_receipt_update, update(9, 1)),  # no receipt
            gc.submit(fails_after_its_leaf),  # its leaf is rolled back with it: the next one takes its number
            gc.submit(Store.add_receipt_update, update(3, 1)),
        ]
        results = await asyncio.gather(*futures, return_exceptions=True)
        await gc.stop()
        return results

    results = asyncio.run(main())
    assert [type(r).__name__ for r in results] == [
        "NoneType",
        "Duplicate",
        "Duplicate",
        "NoneType",
        "NoneType",
        "Duplicate",
        "UnknownOrder",
        "UnknownOrder",
        "RuntimeError",
        "int",
    ]
    assert results[-1] == 1
    indexes = [row[0] for row in store.db.execute("SELECT idx FROM ledger ORDER BY idx")]
    assert indexes == [0, 1, 2, 3]  # create 1, create 3, requester create 1, update of 3
    assert [leaf.index for leaf in store.ledger_leaves_of(wo(1))] == [0, 2]
    assert [row[0] for row in store.receipt_updates(wo(3))] == [1]  # the rolled-back update took no index either
    assert store.receipts({}) == (2, [wo(1), wo(3)])
    assert store.receipt(wo(2)) is None


def test_a_bad_event_stores_nothing(store):
    no_receipt = NewReceipt(wo(1), WORKER, WORKER, REQUESTER, 0, "node", "{}")  # not a ReceiptCreateParams
    broken = NewOrder(wo(1), WORKER, REQUESTER, "n", b"{}", no_receipt)
    with pytest.raises(msgspec.ValidationError), store.transaction():
        store.insert_order(broken)
    assert store.state(wo(1)) is None and store.ledger_size() == 0


OLD_RECEIPTS = (  # the table as earlier versions created it, and never wrote
    "CREATE TABLE receipts (work_order_id TEXT PRIMARY KEY, status INTEGER NOT NULL, receipt TEXT NOT NULL, "
    "created_at REAL NOT NULL)"
)


def test_the_unwritten_old_receipts_table_is_replaced(tmp_path):
    path = tmp_path / "db.sqlite3"
    old = sqlite3.connect(path)
    old.execute(OLD_RECEIPTS)
    old.commit()
    old.close()
    s = SqliteStore(path)
    s.migrate()
    accept(s, order(1))
    assert s.receipt(wo(1))[0] == "node"
    s.migrate()  # the new table stays, rows and all
    assert s.receipt(wo(1))[0] == "node"
    s.close()


def test_an_old_receipts_table_with_rows_is_refused(tmp_path):
    path = tmp_path / "db.sqlite3"
    old = sqlite3.connect(path)
    old.execute(OLD_RECEIPTS)
    old.execute("INSERT INTO receipts VALUES ('01', 0, '{}', 1.0)")
    old.commit()
    old.close()
    s = SqliteStore(path)
    with pytest.raises(AdytumError, match="receipts table has rows"):
        s.migrate()
    assert s.db.execute("SELECT COUNT(*) FROM receipts").fetchone() == (1,)  # nothing dropped
    s.close()
