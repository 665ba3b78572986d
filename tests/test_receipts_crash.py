"""SIGKILL the node under load, restart it: every acknowledged order has exactly one receipt trail, each event
exactly one ledger leaf, and every tree head signed before the crash is consistent with the tree after it."""

from __future__ import annotations

import sqlite3
import time

from adytum import crypto
from adytum.client import Client, Trust
from adytum.ledger import merkle
from adytum.protocol import EeaError, Status
from adytum.protocol.receipts import ReceiptUpdateEvent, decode_event, tree_head_digest
from test_crash import free_port, start_node, stop_node, submit_until_killed, wait_for_result, wait_ready


def heads(db: sqlite3.Connection) -> list[tuple[int, bytes, int, str]]:
    return [
        (int(s), bytes(r), int(t), str(sig))
        for s, r, t, sig in db.execute(
            "SELECT tree_size, root, timestamp_ms, signature FROM ledger_heads ORDER BY tree_size"
        )
    ]


def wait_for_head(client: Client, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.call("LedgerHead", {})
            return
        except EeaError as exc:
            assert exc.code == Status.PENDING and time.monotonic() < deadline, exc
            time.sleep(0.05)


def test_sigkill_keeps_one_receipt_trail_per_order_and_the_ledger_append_only(tmp_path):
    port = free_port()
    uri = f"http://127.0.0.1:{port}/"
    log = open(tmp_path / "node.log", "ab")
    node = start_node(tmp_path, port, log)
    try:
        wait_ready(uri, node)
        trust = Trust.from_files([tmp_path / "devroot" / "root.pem"])
        with Client(uri, trust=trust) as client:
            worker = client.worker()
            # a head is waited for halfway, so that heads signed before the crash exist to check
            acknowledged, _ = submit_until_killed(
                client, worker, 300, b"20000", node, kill_at=200, before=wait_for_head
            )
        node.wait(10)
        db = sqlite3.connect(tmp_path / "adytum.sqlite3")
        before = heads(db)
        assert before, "no tree head was signed before the kill: the test would prove nothing"
        leaves_before = db.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
        assert leaves_before > before[-1][0], "no leaf was waiting for a head at the kill"

        node = start_node(tmp_path, port, log)
        wait_ready(uri, node)
        with Client(uri, trust=trust) as client:
            for order in acknowledged:
                wait_for_result(client, order)
            final = client.call("WorkOrderReceiptDocument", {"workOrderId": acknowledged[-1].work_order_id})
        assert final["treeHead"]["treeSize"] > 0

        orders = [r[0] for r in db.execute("SELECT work_order_id FROM work_orders")]
        assert {o.work_order_id.lower() for o in acknowledged} <= set(orders)
        for wo in orders:  # one receipt, one worker update, one leaf per event
            assert db.execute("SELECT COUNT(*) FROM receipts WHERE work_order_id = ?", (wo,)).fetchone()[0] == 1
            assert db.execute("SELECT COUNT(*) FROM receipt_updates WHERE work_order_id = ?", (wo,)).fetchone()[0] == 1
            assert db.execute("SELECT COUNT(*) FROM ledger WHERE work_order_id = ?", (wo,)).fetchone()[0] == 2
        leaves = [bytes(h) for (h,) in db.execute("SELECT hash FROM ledger ORDER BY idx")]
        indexes = [i for (i,) in db.execute("SELECT idx FROM ledger ORDER BY idx")]
        assert indexes == list(range(len(leaves)))  # dense: no leaf lost or doubled by the crash
        assert all(
            leaf == merkle.leaf_hash(bytes(d))
            for leaf, (d,) in zip(leaves, db.execute("SELECT data FROM ledger ORDER BY idx"), strict=True)
        )
        updates = [decode_event(bytes(d)) for (d,) in db.execute("SELECT data FROM ledger ORDER BY idx")]
        assert sum(isinstance(e, ReceiptUpdateEvent) and e.by == "worker" for e in updates) == len(orders)

        for size, root, timestamp, signature in before:  # heads signed before the crash still hold
            assert merkle.root(leaves[:size]) == root
            crypto.verify_digest(
                worker.verifying_key,
                tree_head_digest(worker.worker_id, size, root, timestamp),
                crypto.b64decode(signature),
            )
        after = heads(db)
        assert len(leaves) > leaves_before  # the restarted node went on appending to the same tree
        assert after[-1][0] >= before[-1][0] and [h for h in after if h[0] <= before[-1][0]] == before
    finally:
        stop_node(node)
        log.close()
