"""Receipts, enclave and manager side, with real enclave processes: the worker's signed receipt updates, tree
heads signed from a previous head and its frontier (and what the enclave refuses), heads on a running node."""

import asyncio

import msgspec
import pytest

from adytum.channel import SignHead
from adytum.client import WorkerInfo, build
from adytum.config import ManagerConfig
from adytum.crypto import b64decode, b64encode, sha256, verify_digest
from adytum.ledger import merkle
from adytum.manager import EnclaveDied, HeadRefused
from adytum.manager.ledger import HeadSigner
from adytum.protocol import canonical, decode_result, encode, request_hash, response_hash
from adytum.protocol.receipts import (
    ReceiptCreateParams,
    ReceiptEvent,
    ReceiptUpdateEvent,
    decode_event,
    receipt_update_digest,
    tree_head_digest,
)
from adytum.store import GroupCommit, NewOrder, NewReceipt, SqliteStore, Store
from support import LocalPool, running_node

WORKER_ID = sha256(b"receipts-enclave-test").hex()


def sign(wpe, **fields):
    """A SignHead from the test's fields (the enclave process numbers it and names its own worker)."""
    return wpe.sign_head(SignHead(seq=0, worker_id="", **fields))


def info(ident, worker_id=WORKER_ID):
    return WorkerInfo(worker_id, ident.verifying_key, ident.encryption_key, ident.encryption_key_signature)


def leaves(n, salt=b""):
    return [merkle.leaf_hash(salt + bytes([i])) for i in range(n)]


def check_update(ident, work_order_id, update_type, data, signature):
    digest = receipt_update_digest(canonical(work_order_id), update_type, data)
    verify_digest(ident.verifying_key, digest, b64decode(signature))


def check_head(ident, head, all_leaves):
    assert head.tree_size == len(all_leaves)
    assert head.root == merkle.root(all_leaves)
    digest = tree_head_digest(WORKER_ID, head.tree_size, head.root, head.timestamp)
    verify_digest(ident.verifying_key, digest, b64decode(head.signature))


async def with_wpe(tmp_path, body):
    pool = LocalPool(tmp_path, WORKER_ID)
    await pool.kme.start()
    wpe = pool.wpe()
    try:
        return await body(wpe, await wpe.start())
    finally:
        await wpe.stop()
        await pool.kme.stop()


def test_the_worker_signs_its_receipt_update_for_a_result_and_for_a_failure_it_decided(tmp_path):
    async def body(wpe, ident):
        ok = build(info(ident), "hello", [b"receipt"])
        bad = build(info(ident), "no-such-workload", [b"x"])
        return ident, ok, await wpe.process(encode(ok.params)), bad, await wpe.process(encode(bad.params))

    ident, ok, done, bad, failed = asyncio.run(with_wpe(tmp_path, body))
    assert done.code == 0 and done.receipt_type == 1
    assert done.receipt_data == b64encode(response_hash(decode_result(done.result)))
    check_update(ident, ok.work_order_id, 1, done.receipt_data, done.receipt_signature)

    assert failed.code == 9 and failed.receipt_type == 3
    assert failed.receipt_data == b64encode(sha256(f"{failed.code}:{failed.message}".encode()))
    check_update(ident, bad.work_order_id, 3, failed.receipt_data, failed.receipt_signature)
    with pytest.raises(Exception, match="does not verify"):  # bound to its order and its type
        check_update(ident, ok.work_order_id, 3, failed.receipt_data, failed.receipt_signature)


def test_no_update_is_signed_for_an_order_the_enclave_cannot_read_or_has_seen(tmp_path):
    async def body(wpe, ident):
        order = build(info(ident), "hello", [b"once"])
        first = await wpe.process(encode(order.params))
        return first, await wpe.process(encode(order.params)), await wpe.process(b'{"not": "an order"}')

    first, replayed, unreadable = asyncio.run(with_wpe(tmp_path, body))
    assert first.code == 0 and first.receipt_signature
    assert replayed.code == 2 and "replayed" in replayed.message and not replayed.receipt_signature
    assert unreadable.code != 0 and not unreadable.receipt_signature


def test_tree_heads_from_the_empty_tree_then_extending_it(tmp_path):
    first, second = leaves(3), leaves(6, b"more")

    async def body(wpe, ident):
        head1 = await sign(
            wpe,
            previous_size=0,
            previous_root=merkle.EMPTY_ROOT,
            previous_timestamp=0,
            previous_signature="",
            frontier=[],
            leaves=first,
            timestamp=1000,
        )
        head2 = await sign(
            wpe,
            previous_size=head1.tree_size,
            previous_root=head1.root,
            previous_timestamp=head1.timestamp,
            previous_signature=head1.signature,
            frontier=merkle.frontier(first),
            leaves=second,
            timestamp=2000,
        )
        return ident, head1, head2

    ident, head1, head2 = asyncio.run(with_wpe(tmp_path, body))
    check_head(ident, head1, first)
    check_head(ident, head2, first + second)
    assert (head1.timestamp, head2.timestamp) == (1000, 2000)
    merkle.verify_consistency(3, head1.root, 9, head2.root, merkle.consistency_proof(3, first + second))


def test_the_enclave_refuses_heads_it_cannot_vouch_for(tmp_path):
    signed = leaves(7)

    async def body(wpe, ident):
        head = await sign(
            wpe,
            previous_size=0,
            previous_root=merkle.EMPTY_ROOT,
            previous_timestamp=0,
            previous_signature="",
            frontier=[],
            leaves=signed,
            timestamp=5000,
        )
        good = dict(
            previous_size=7,
            previous_root=head.root,
            previous_timestamp=5000,
            previous_signature=head.signature,
            frontier=merkle.frontier(signed),
            leaves=leaves(1, b"next"),
            timestamp=6000,
        )
        other = leaves(7, b"other")
        forged = b64encode(b64decode(head.signature)[:-1] + bytes([b64decode(head.signature)[-1] ^ 1]))
        cases = {
            "signature": {**good, "previous_signature": forged},
            "someone else's root": {**good, "previous_root": merkle.root(other), "frontier": merkle.frontier(other)},
            "frontier": {**good, "frontier": merkle.frontier(other)},
            "frontier shape": {**good, "frontier": merkle.frontier(signed)[:-1]},
            "older": {**good, "timestamp": 4999},
            "smaller": {
                **good,
                "previous_size": 0,
                "previous_root": merkle.EMPTY_ROOT,
                "previous_signature": "",
                "previous_timestamp": 0,
                "frontier": [],
                "leaves": leaves(2),
            },
        }
        refusals = {}
        for name, fields in cases.items():
            with pytest.raises(HeadRefused) as exc:
                await sign(wpe, **fields)
            refusals[name] = str(exc.value)
        return refusals, await sign(wpe, **good)  # and it still serves

    refusals, after = asyncio.run(with_wpe(tmp_path, body))
    assert "not signed by this worker" in refusals["signature"]
    assert "not signed by this worker" in refusals["someone else's root"]  # the signature covers the root
    assert "does not give the previous head's root" in refusals["frontier"]
    assert "does not fit the previous head" in refusals["frontier shape"]
    assert "older than the previous head's" in refusals["older"]
    assert "smaller than the tree of 7" in refusals["smaller"]
    assert after.tree_size == 8


async def _run_orders(rn, names):
    """Orders accepted as the listener accepts them (with the node's receipt), then run by the real dispatcher."""
    node = rn.node
    ident = node.manager.enclaves[0].identity
    worker = info(ident, node.manager.worker_id)
    orders = [build(worker, name, [b"ledger"]) for name in names]
    outcomes = []
    for order in orders:
        p = order.params
        wo_id = canonical(p.work_order_id)
        create = ReceiptCreateParams(
            workOrderId=wo_id,
            workerServiceId=worker.worker_id,
            workerId=worker.worker_id,
            requesterId=canonical(p.requester_id),
            receiptCreateStatus=0,
            workOrderRequestHash=b64encode(request_hash(p)),
            requesterGeneratedNonce=p.requester_nonce,
        )
        receipt = NewReceipt(
            wo_id,
            worker.worker_id,
            worker.worker_id,
            create.requesterId,
            0,
            "node",
            msgspec.json.encode(create).decode(),
        )
        new = NewOrder(wo_id, worker.worker_id, create.requesterId, p.requester_nonce.lower(), encode(p), receipt)
        await node.committer.run(Store.insert_order, new)
        node.manager.dispatch.wake()
        outcomes.append(await node.manager.dispatch.wait(wo_id, 60))
    return ident, orders, outcomes


def test_heads_on_a_running_node_cover_every_leaf_and_carry_the_workers_updates(tmp_path):
    with running_node(tmp_path, ledger_interval=0.2, ledger_batch=3) as rn:
        ident, orders, outcomes = rn.call(_run_orders, rn, ["hello", "hello", "no-such-workload", "hello"])
        reader = rn.node.reader
        size = reader.ledger_size()
        rn.call(rn.node.manager.ledger.cover, size)
        head = reader.latest_head()
        heads_signed = rn.node.manager.ledger.signed
        hashes = reader.ledger_hashes(0, size)
        updates = [reader.ledger_leaves_of(canonical(o.work_order_id)) for o in orders]
    assert [o.code for o in outcomes] == [0, 0, 9, 0]
    assert size == 2 * len(orders) and head.tree_size == size and heads_signed >= 1
    assert head.root == merkle.root(hashes) == merkle.frontier_root(size, head.frontier)
    verify_digest(
        ident.verifying_key,
        tree_head_digest(rn.node.manager.worker_id, head.tree_size, head.root, head.timestamp_ms),
        b64decode(head.signature),
    )
    for order, outcome, trail in zip(orders, outcomes, updates, strict=True):
        create, update = (decode_event(leaf.data) for leaf in trail)
        assert isinstance(create, ReceiptEvent) and isinstance(update, ReceiptUpdateEvent)
        assert update.by == "worker" and update.update.updaterId == rn.node.manager.worker_id
        assert update.update.updateType == (1 if outcome.code == 0 else 3)
        u = update.update
        check_update(ident, order.work_order_id, u.updateType, u.updateData, u.updateSignature)


CRASH = """
import os
from adytum.workloads.base import Workload

class Crash(Workload):
    name = "crash"
    description = "Takes its enclave down."

    def execute(self, ctx, inputs):
        os._exit(3)
"""


def test_a_failure_the_host_decides_is_stored_unsigned_as_the_nodes_word(tmp_path):
    (tmp_path / "workloads").mkdir()
    (tmp_path / "workloads" / "crash.py").write_text(CRASH)
    (tmp_path / "workloads.toml").write_text('crash = "crash:Crash"\n')
    with running_node(tmp_path, max_attempts=1) as rn:
        _, orders, outcomes = rn.call(_run_orders, rn, ["crash"])
        trail = rn.node.reader.ledger_leaves_of(canonical(orders[0].work_order_id))
    assert outcomes[0].code == 1 and b"enclave stopped" in outcomes[0].body
    update = decode_event(trail[-1].data)
    assert isinstance(update, ReceiptUpdateEvent) and update.by == "node"
    assert update.update.updateType == 3 and update.update.updateSignature == ""
    assert update.update.updateData == b64encode(sha256(b"1:" + outcomes[0].body))


def test_with_receipts_off_no_update_is_stored_and_no_head_is_signed(tmp_path):
    with running_node(tmp_path, receipts=False, ledger_interval=0.1) as rn:
        _, orders, outcomes = rn.call(_run_orders, rn, ["hello"])
        assert rn.node.manager.ledger is None and rn.node.manager.dispatch.ledger is None
        reader = rn.node.reader
        wo_id = canonical(orders[0].work_order_id)
        trail = reader.receipt_updates(wo_id)
        head = reader.latest_head()
    assert outcomes[0].code == 0
    assert trail == [] and head is None


class DiesOnTheWay:
    """An enclave that looks serving but dies when asked for a head."""

    serving, inflight, asked = True, 0, 0

    async def sign_head(self, request):
        self.asked += 1
        raise EnclaveDied("dying enclave exited")


def _node_receipt(store, n, start=0):
    """`n` orders accepted with the node's receipt: one leaf each."""
    for i in range(start, start + n):
        wo_id = f"{i:064x}"
        create = ReceiptCreateParams(
            workOrderId=wo_id,
            workerServiceId=WORKER_ID,
            workerId=WORKER_ID,
            requesterId="aa" * 32,
            receiptCreateStatus=0,
            workOrderRequestHash=b64encode(bytes(32)),
            requesterGeneratedNonce=f"{i:x}",
        )
        body = msgspec.json.encode(create).decode()
        receipt = NewReceipt(wo_id, WORKER_ID, WORKER_ID, "aa" * 32, 0, "node", body)
        store.insert_order(NewOrder(wo_id, WORKER_ID, "aa" * 32, f"{i:x}", b"{}", receipt))


def test_the_head_signer_batches_by_count_covers_on_demand_and_passes_over_a_dying_enclave(tmp_path):
    async def body(wpe, ident):
        path = tmp_path / "store.sqlite"
        writer = SqliteStore(path)
        writer.migrate()
        reader = SqliteStore(path)
        committer = GroupCommit(writer)
        committer.start()
        dying = DiesOnTheWay()
        config = ManagerConfig(tmp_path, ledger_interval=3600, ledger_batch=4)
        signer = HeadSigner(config, reader, committer, [dying, wpe])
        try:
            await committer.run(_node_receipt, 5)
            await signer.start()
            await signer.cover(5)  # on demand
            first = reader.latest_head()
            await committer.run(_node_receipt, 3, 5)
            signer.added(3)  # below the batch: waits for the interval
            await asyncio.sleep(0.3)
            unsigned = reader.latest_head().tree_size
            await committer.run(_node_receipt, 1, 8)
            signer.added(1)  # a batch of 4 is waiting: signed now
            for _ in range(100):
                if reader.latest_head().tree_size == 9:
                    break
                await asyncio.sleep(0.05)
            return ident, first, unsigned, reader.latest_head(), reader.ledger_hashes(0, 9), dying.asked
        finally:
            await signer.stop()
            await committer.stop()
            reader.close()
            writer.close()

    ident, first, unsigned, last, hashes, asked = asyncio.run(with_wpe(tmp_path / "pool", body))
    assert first.tree_size == 5 and first.root == merkle.root(hashes[:5]) and asked >= 1
    assert unsigned == 5
    assert last.tree_size == 9 and last.root == merkle.root(hashes) and last.timestamp_ms >= first.timestamp_ms
    assert last.frontier == merkle.frontier(hashes)
    digest = tree_head_digest(WORKER_ID, 9, last.root, last.timestamp_ms)
    verify_digest(ident.verifying_key, digest, b64decode(last.signature))
