"""The store's behaviour, the same on both backends: every test taking `any_store` runs on SQLite and on a real
PostgreSQL server. Transitions are atomic, duplicates refused, group commits isolate failures, claims are
exclusive, leases pass on, late answers are dropped, retention prunes."""

import asyncio
import threading

import pytest

from adytum.store import Duplicate, GroupCommit, NewOrder, Outcome, SqliteStore, Store, StoreUnavailable, open_store
from adytum.store.schema import LATEST

WORKER = "aa" * 32


def order(i: int, nonce: str | None = None) -> NewOrder:
    return NewOrder(f"{i:064x}", WORKER, "bb" * 32, nonce or f"{i:032x}", b'{"p":1}')


def other_connection(store: Store, tmp_path) -> Store:
    """A second connection to the same data, as a second node (or a restarted process) has."""
    target = store.url if hasattr(store, "url") else store.path
    return open_store(target)


def test_lifecycle(any_store):
    store = any_store
    with store.transaction():
        store.insert_order(order(1))
    assert store.state(order(1).work_order_id) == "scheduled"
    assert store.backlog(WORKER) == 1
    with store.transaction():
        assert store.claim(WORKER, "node-a", 10) == ([order(1).work_order_id], 0)  # ids only
    assert store.order_params(order(1).work_order_id) == b'{"p":1}'
    assert store.order_params("no-such-order") is None
    with store.transaction():
        assert store.claim(WORKER, "node-a", 10) == ([], 0)  # claimed once
    assert store.state(order(1).work_order_id) == "processing"
    with store.transaction():
        assert store.insert_response(order(1).work_order_id, 0, b"{}", owner="node-a")
    assert store.state(order(1).work_order_id) == "done"
    assert store.response(order(1).work_order_id) == Outcome(0, b"{}")
    with store.transaction():
        assert not store.insert_response(order(1).work_order_id, 0, b"again", owner="node-a")  # answered once
    assert store.response(order(1).work_order_id) == Outcome(0, b"{}")


def test_claims_are_oldest_first_and_bounded(any_store):
    store = any_store
    with store.transaction():
        for i in range(5):
            store.insert_order(order(i))
    with store.transaction():
        ids, left = store.claim(WORKER, "node-a", 2)
    assert ids == [order(0).work_order_id, order(1).work_order_id] and left == 3
    with store.transaction():
        assert store.claim("cc" * 32, "node-a", 10) == ([], 0)  # another worker's orders are not ours


def test_duplicates(any_store):
    store = any_store
    with store.transaction():
        store.insert_order(order(1))
    with pytest.raises(Duplicate) as dup, store.transaction():
        store.insert_order(order(1))
    assert dup.value.field == "workOrderId"
    with pytest.raises(Duplicate) as dup, store.transaction():
        store.insert_order(order(2, nonce=order(1).requester_nonce))
    assert dup.value.field == "requesterNonce"
    assert store.counts() == {"scheduled": 1, "processing": 0, "done": 0}


def test_a_restarted_node_takes_back_its_own_claims(any_store, tmp_path):
    store = any_store
    with store.transaction():
        for i in range(3):
            store.insert_order(order(i))
        store.claim(WORKER, "node-a", 2)
        store.claim(WORKER, "node-b", 1)
    store.close()  # "crash": a new process opens the same store
    s = other_connection(store, tmp_path)
    try:
        with s.transaction():
            assert s.release("node-a") == 2  # node-b's claim is node-b's
        assert s.counts() == {"scheduled": 2, "processing": 1, "done": 0}
    finally:
        s.close()


def test_a_dead_nodes_claims_pass_on_and_its_late_answer_is_dropped(any_store, monkeypatch):
    store = any_store
    clock = [1000.0]
    monkeypatch.setattr("adytum.store.base.time.time", lambda: clock[0])
    with store.transaction():
        store.insert_order(order(1))
        store.heartbeat("node-a", 15.0)
        store.heartbeat("node-b", 15.0)
        store.claim(WORKER, "node-a", 1)
    clock[0] = 1010.0
    with store.transaction():
        assert store.heartbeat("node-b", 15.0) == 0  # node-a's lease still runs
    clock[0] = 1020.0
    with store.transaction():
        assert store.heartbeat("node-b", 15.0) == 1  # it ran out: its claim passes on
    with store.transaction():
        assert store.claim(WORKER, "node-b", 5) == ([order(1).work_order_id], 0)
    with store.transaction():
        assert not store.insert_response(order(1).work_order_id, 0, b"late", owner="node-a")
        assert store.insert_response(order(1).work_order_id, 0, b"on time", owner="node-b")
    assert store.response(order(1).work_order_id) == Outcome(0, b"on time")


def test_an_order_stored_claimed_is_its_owners_alone_and_goes_back_if_it_crashes(any_store, tmp_path):
    """An order the listener stores already claimed (`NewOrder.owner`: an enclave had room) is never claimed
    by another node, is answered only by its owner, and is scheduled again when its owner restarts."""
    store = any_store
    direct = NewOrder(order(1).work_order_id, WORKER, "bb" * 32, "01", b'{"p":1}', owner="node-a")
    with store.transaction():
        store.insert_order(direct)
        store.insert_order(order(2))
    assert store.state(direct.work_order_id) == "processing"
    assert store.backlog(WORKER) == 1
    with store.transaction():
        assert store.claim(WORKER, "node-b", 10) == ([order(2).work_order_id], 0)
        assert store.claimed_by(WORKER, "node-a") == [direct.work_order_id]
    with store.transaction():
        assert not store.insert_response(direct.work_order_id, 0, b"not mine", owner="node-b")
    with store.transaction():
        assert store.release("node-a") == 1  # node-a starts again after a crash: the order runs again
    assert store.state(direct.work_order_id) == "scheduled"
    with store.transaction():
        assert store.claim(WORKER, "node-b", 10) == ([direct.work_order_id], 0)


def test_a_batch_of_claims_alone_commits_without_waiting_for_the_disk(tmp_path):
    """Claims and heartbeats are volatile (lost in a crash, they cost a re-run); any other transition in the
    batch makes the whole commit durable again, and the connection goes back to syncing every commit."""
    seen: list[bool] = []

    class Watched(SqliteStore):
        def _transaction(self, durable: bool):
            seen.append(durable)
            return super()._transaction(durable)

    store = Watched(tmp_path / "s.db")
    store.migrate()
    seen.clear()

    async def main() -> None:
        commit = GroupCommit(store)
        commit.start()
        await commit.run(Store.insert_order, order(1))
        await commit.run(Store.claim, WORKER, "node-a", 5)
        await commit.run(Store.heartbeat, "node-a", 15.0)
        await asyncio.gather(
            commit.submit(Store.claim, WORKER, "node-a", 5), commit.submit(Store.insert_order, order(2))
        )
        await commit.stop()

    asyncio.run(main())
    assert Store.claim.volatile and Store.heartbeat.volatile and not hasattr(Store.insert_order, "volatile")
    assert seen[:3] == [True, False, False] and seen[-1] is True  # the mixed batch (or its last part) syncs
    assert store.sqlite.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL again after a relaxed commit
    assert store.state(order(1).work_order_id) == "processing"
    store.close()


def test_a_relaxed_commit_that_cannot_begin_leaves_the_connection_syncing(tmp_path):
    import sqlite3

    store = SqliteStore(tmp_path / "s.db")
    store.migrate()
    store.sqlite.execute("PRAGMA busy_timeout=0")
    other = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock: BEGIN fails at once
    with pytest.raises(sqlite3.OperationalError), store.transaction(durable=False):
        pass
    other.execute("ROLLBACK")
    assert store.sqlite.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: later commits still sync
    other.close()
    store.close()


def test_only_a_durable_commit_says_the_store_writes_again(tmp_path):
    """While the store cannot write, a batch that only reads or claims (volatile) may still commit: that is no
    sign the disk has room again, so the fault stands (and is not logged again) until a durable write goes in."""
    import sqlite3

    store = SqliteStore(tmp_path / "s.db")
    store.migrate()

    def full_disk(_store: Store) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    async def main() -> list[str | None]:
        commit = GroupCommit(store)
        commit.start()
        seen = []
        with pytest.raises(StoreUnavailable):
            await commit.run(full_disk)
        seen.append(commit.fault)
        await commit.run(Store.claimed_by, WORKER, "node-a")  # reads: commits, proves nothing
        seen.append(commit.fault)
        await commit.run(Store.insert_order, order(1))  # a durable write: the store writes again
        seen.append(commit.fault)
        await commit.stop()
        return seen

    faults = asyncio.run(main())
    assert faults[0] and "full" in faults[0] and faults[1] == faults[0] and faults[2] is None
    store.close()


def test_two_connections_never_claim_one_order_twice(any_store, tmp_path):
    """Two nodes claiming at the same moment: every order is claimed by exactly one of them."""
    store = any_store
    with store.transaction():
        for i in range(200):
            store.insert_order(order(i))
    claimed: dict[str, list[str]] = {"a": [], "b": []}
    start = threading.Barrier(2)

    def node(name: str) -> None:
        s = other_connection(store, tmp_path)
        start.wait()
        try:
            while True:
                with s.transaction():
                    ids, _ = s.claim(WORKER, name, 7)
                if not ids:
                    return
                claimed[name].extend(ids)
        finally:
            s.close()

    threads = [threading.Thread(target=node, args=(n,)) for n in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = claimed["a"] + claimed["b"]
    assert sorted(everything) == sorted(order(i).work_order_id for i in range(200))  # each once, none lost


def test_group_commit_isolates_a_failing_transition(any_store):
    store = any_store

    async def main():
        gc = GroupCommit(store)
        gc.start()
        futures = [gc.submit(Store.insert_order, order(i)) for i in range(5)]
        futures.insert(2, gc.submit(Store.insert_order, order(0)))  # duplicate inside the same batch
        results = await asyncio.gather(*futures, return_exceptions=True)
        await gc.stop()
        return results, gc.commits

    results, commits = asyncio.run(main())
    assert isinstance(results[2], Duplicate)
    assert sum(1 for r in results if isinstance(r, Exception)) == 1
    assert store.counts()["scheduled"] == 5
    assert commits <= 6


def test_failed_bodies_are_forgotten_after_retention(any_store, monkeypatch):
    """A failed order's body goes once its retention is over; its row (id and nonce rules) stays, and
    successful or pending orders keep theirs."""
    store = any_store
    clock = [1000.0]
    monkeypatch.setattr("adytum.store.base.time.time", lambda: clock[0])
    with store.transaction():
        for i in range(5):
            store.insert_order(order(i))
    with store.transaction():
        store.insert_response(order(0).work_order_id, 0, b"ok")
        store.insert_response(order(1).work_order_id, 2, b"bad")
        store.insert_response(order(2).work_order_id, 4, b"bad signature")
    clock[0] = 2000.0
    with store.transaction():
        store.insert_response(order(3).work_order_id, 2, b"bad, later")  # order 4 stays pending
    with store.transaction():
        assert store.forget_failed_bodies(older_than=1500.0, batch=1) == 1  # a bounded batch per call
    with store.transaction():
        assert store.forget_failed_bodies(older_than=1500.0, batch=1) == 1
    with store.transaction():
        assert store.forget_failed_bodies(older_than=1500.0) == 0
    assert [store.order_params(order(i).work_order_id) for i in range(5)] == [
        b'{"p":1}',
        b"",
        b"",
        b'{"p":1}',  # failed, but within its retention
        b'{"p":1}',
    ]
    assert store.response(order(1).work_order_id) == Outcome(2, b"bad")
    with pytest.raises(Duplicate):
        with store.transaction():
            store.insert_order(order(1))
    with store.transaction():
        assert store.forget_failed_bodies(older_than=2500.0) == 1
    assert store.order_params(order(3).work_order_id) == b""


def test_answered_orders_are_pruned_after_retention(any_store, monkeypatch):
    """Answered before the cut: the result is gone. Pending or answered after it: untouched."""
    store = any_store
    clock = [1000.0]
    monkeypatch.setattr("adytum.store.base.time.time", lambda: clock[0])
    with store.transaction():
        for i in range(4):
            store.insert_order(order(i))
        store.insert_response(order(0).work_order_id, 0, b"old")
        store.insert_response(order(1).work_order_id, 2, b"old failure")
    clock[0] = 2000.0
    with store.transaction():
        store.insert_response(order(2).work_order_id, 0, b"new")  # order 3 stays pending
    with store.transaction():
        assert store.prune_answered(older_than=1500.0, batch=1) == 1
    with store.transaction():
        assert store.prune_answered(older_than=1500.0) == 1
    assert [store.state(order(i).work_order_id) for i in range(4)] == [None, None, "done", "scheduled"]
    assert store.response(order(0).work_order_id) is None
    assert store.response(order(2).work_order_id) == Outcome(0, b"new")
    assert store.counts() == {"scheduled": 1, "processing": 0, "done": 1}


def test_migrate_is_idempotent_and_versioned(any_store):
    assert any_store.schema_version() == LATEST
    assert any_store.migrate() == []


def test_nodes_starting_at_once_migrate_once(pg_url):
    """Four nodes start together on an empty database: one migrates, the others wait and find it done."""
    results: list[list[int]] = []
    start = threading.Barrier(4)

    def node() -> None:
        s = open_store(pg_url)
        start.wait()
        try:
            results.append(s.migrate())
        finally:
            s.close()

    threads = [threading.Thread(target=node) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results, key=len) == [[], [], [], list(range(1, LATEST + 1))]


def test_a_store_from_before_versions_is_migrated_in_place(tmp_path):
    """A SQLite file written by a release that kept no schema version (its tables, an order in flight) takes
    the migrations: version 1 is a no-op on it, version 2 adds claims, and the order is still there."""
    import sqlite3

    from adytum.store.schema import MIGRATIONS

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    for stmt in MIGRATIONS[0].statements("sqlite"):
        db.execute(stmt)
    db.execute("INSERT INTO work_orders VALUES (?, ?, 'r', 'n', x'7b7d', 1.0)", (order(1).work_order_id, WORKER))
    db.execute(
        "INSERT INTO schedule (work_order_id, worker_id, state) VALUES (?, ?, 'processing')",
        (order(1).work_order_id, WORKER),
    )
    db.commit()
    db.close()
    s = SqliteStore(path)
    assert s.schema_version() == 0
    assert s.migrate() == list(range(1, LATEST + 1))
    with s.transaction():
        assert s.release("node-a") == 1  # in flight under the old release: scheduled again
        assert s.claim(WORKER, "node-a", 5)[0] == [order(1).work_order_id]
    s.close()


def test_failed_bodies_are_found_by_the_partial_index(tmp_path):
    s = SqliteStore(tmp_path / "db.sqlite3")
    s.migrate()
    plan = " ".join(
        str(r[-1])
        for r in s.db.execute(
            "EXPLAIN QUERY PLAN SELECT work_order_id FROM responses WHERE code <> 0 AND completed_at >= 0 "
            "AND completed_at < 1 ORDER BY completed_at"
        )
    )
    assert "responses_failed" in plan  # not a scan of every response
    s.close()


def test_a_pruned_order_with_a_receipt_keeps_its_id_taken(any_store, monkeypatch):
    """With receipts, pruning keeps the emptied request row: the id and nonce stay taken (a replay is refused),
    the state says 'pruned', and the receipt stays."""
    import msgspec

    from adytum.protocol.receipts import ReceiptCreateParams
    from adytum.store import NewReceipt

    store = any_store
    clock = [1000.0]
    monkeypatch.setattr("adytum.store.base.time.time", lambda: clock[0])
    wo = order(1).work_order_id
    params = ReceiptCreateParams(wo, WORKER, WORKER, "bb" * 32, 0, "aGFzaA==", "01")
    receipt = NewReceipt(wo, WORKER, WORKER, "bb" * 32, 0, "node", msgspec.json.encode(params).decode())
    with store.transaction():
        store.insert_order(NewOrder(wo, WORKER, "bb" * 32, order(1).requester_nonce, b"{}", receipt))
        store.insert_response(wo, 0, b"done")
    clock[0] = 2000.0
    with store.transaction():
        assert store.prune_answered(older_than=1500.0) == 1
    assert store.state(wo) == "pruned" and store.response(wo) is None and store.order_params(wo) == b""
    assert store.receipt(wo) is not None and store.ledger_size() == 1
    with pytest.raises(Duplicate), store.transaction():
        store.insert_order(order(1))


def test_reclaim_runs_beside_the_stores_own_connection(any_store):
    """Retention's maintenance step (VACUUM on PostgreSQL, nothing on SQLite) runs between transactions."""
    with any_store.transaction():
        any_store.insert_order(order(1))
        any_store.insert_response(order(1).work_order_id, 0, b"{}")
        any_store.prune_answered(older_than=2**40)
    any_store.reclaim()
    assert any_store.counts() == {"scheduled": 0, "processing": 0, "done": 0}
