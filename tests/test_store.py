"""The SQLite store: transitions are atomic, duplicates refused, group commits isolate failures."""

import asyncio

import pytest

from adytum.store import Duplicate, GroupCommit, NewOrder, Outcome, Store


def order(i: int, nonce: str | None = None) -> NewOrder:
    return NewOrder(f"{i:064x}", "aa" * 32, "bb" * 32, nonce or f"{i:032x}", b'{"p":1}')


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "db.sqlite3")
    s.create_schema()
    yield s
    s.close()


def test_lifecycle(store):
    with store.transaction():
        store.insert_order(order(1))
    assert store.state(order(1).work_order_id) == "scheduled"
    assert store.scheduled("aa" * 32) == [(1, order(1).work_order_id)]  # ids only: the body stays in the store
    assert store.order_params(order(1).work_order_id) == b'{"p":1}'
    assert store.order_params("no-such-order") is None
    assert store.scheduled("aa" * 32, after=1) == []  # a dispatcher that took seq 1 sees nothing new
    with store.transaction():
        store.mark_processing(order(1).work_order_id)
    assert store.state(order(1).work_order_id) == "processing"
    with store.transaction():
        assert store.insert_response(order(1).work_order_id, 0, b"{}")
    assert store.state(order(1).work_order_id) == "done"
    assert store.response(order(1).work_order_id) == Outcome(0, b"{}")
    with store.transaction():
        assert not store.insert_response(order(1).work_order_id, 0, b"again")  # answered once only
    assert store.response(order(1).work_order_id) == Outcome(0, b"{}")


def test_duplicates(store):
    with store.transaction():
        store.insert_order(order(1))
    with pytest.raises(Duplicate) as dup, store.transaction():
        store.insert_order(order(1))
    assert dup.value.field == "workOrderId"
    with pytest.raises(Duplicate) as dup, store.transaction():
        store.insert_order(order(2, nonce=order(1).requester_nonce))
    assert dup.value.field == "requesterNonce"
    assert store.counts() == {"scheduled": 1, "processing": 0, "done": 0}


def test_requeue_after_crash(tmp_path):
    s = Store(tmp_path / "db.sqlite3")
    s.create_schema()
    with s.transaction():
        for i in range(3):
            s.insert_order(order(i))
        s.mark_processing(order(0).work_order_id)
        s.mark_processing(order(1).work_order_id)
    s.close()  # "crash": a new process opens the same file
    s = Store(tmp_path / "db.sqlite3")
    with s.transaction():
        assert s.requeue_processing() == 2
    assert [wo for _, wo in s.scheduled("aa" * 32)] == [order(i).work_order_id for i in range(3)]


def test_group_commit_isolates_a_failing_transition(store):
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


def test_failed_bodies_are_forgotten_after_retention(store, monkeypatch):
    """A failed order's body goes once its retention is over; its row (id and nonce rules) stays, and
    successful or pending orders keep theirs."""
    clock = [1000.0]
    monkeypatch.setattr("adytum.store.sqlite.time.time", lambda: clock[0])
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
    plan = " ".join(
        str(r[-1])
        for r in store.db.execute(
            "EXPLAIN QUERY PLAN SELECT work_order_id FROM responses WHERE code <> 0 AND completed_at >= 0 "
            "AND completed_at < 1 ORDER BY completed_at"
        )
    )
    assert "responses_failed" in plan  # found by the partial index, not a scan of every response
