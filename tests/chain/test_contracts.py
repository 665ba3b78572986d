"""The contracts on an in-process EVM (eth-tester, py-evm): registry paging, the result signature check,
events for every change, who may change what."""

from __future__ import annotations

import pytest
from eth_tester.exceptions import TransactionFailed
from web3.exceptions import ContractLogicError

from adytum import crypto
from adytum.chain import codec
from adytum.chain.deployment import check_code
from adytum.chain.errors import ChainError
from adytum.protocol import DataItem, WorkOrderResult, response_hash

from .conftest import ZERO, Chain, random_id


def register(
    chain: Chain,
    key: crypto.SigningKey,
    *,
    sender: int = 0,
    worker_type: int = 1,
    org: bytes = ZERO,
    apps: list[bytes] | None = None,
    evidence: str = "evidence",
) -> bytes:
    wid = random_id()
    fn = chain.contract("WorkerRegistry").functions.workerRegister(
        wid, worker_type, org, apps or [], '{"record": 1}', codec.signer_address(key.public_pem()), evidence
    )
    chain.send(fn, sender)
    return wid


def submit(chain: Chain, wid: bytes, *, sender: int = 1, request: str = "{}") -> tuple[bytes, bytes]:
    wo, rid = random_id(), random_id()
    chain.send(chain.contract("WorkOrderRegistry").functions.workOrderSubmit(wo, wid, rid, request), sender)
    return wo, rid


def signed_result(key: crypto.SigningKey, wo: bytes, wid: bytes, rid: bytes, items: int = 2) -> WorkOrderResult:
    result = WorkOrderResult(
        work_order_id=wo.hex(),
        workload_id=b"hello".hex(),
        worker_id=wid.hex(),
        requester_id=rid.hex(),
        worker_nonce=crypto.random_bytes(16).hex(),
        worker_signature="",
        out_data=[
            DataItem(index=i, data=crypto.b64encode(crypto.random_bytes(20 + i)), iv=crypto.random_bytes(12).hex())
            for i in reversed(range(items))  # out of order on purpose: the codec sorts by index
        ],
    )
    result.worker_signature = crypto.b64encode(key.sign_digest(response_hash(result)))
    return result


def reverts(fn, chain: Chain, sender: int = 0, match: str = "") -> None:
    with pytest.raises((ContractLogicError, TransactionFailed), match=match):  # eth-tester in process: the latter
        fn.transact({"from": chain.account(sender)})


# --- WorkerRegistry -----------------------------------------------------------------------------------------


def test_register_update_and_status_emit_events_and_only_the_owner_may_change(chain: Chain):
    registry = chain.contract("WorkerRegistry")
    key = crypto.SigningKey()
    wid = register(chain, key, sender=2, evidence="first evidence")
    signer, evidence_hash, owner, status = registry.functions.workerKeys(wid).call()
    assert (signer, owner, status) == (codec.signer_address(key.public_pem()), chain.account(2), 1)
    assert bytes(evidence_hash) == crypto.sha256(b"first evidence")
    block = registry.functions.workerEvidenceBlock(wid).call()
    [event] = registry.events.WorkerRegistered.get_logs(argument_filters={"workerId": wid}, from_block=block)
    assert event["args"]["evidence"] == "first evidence" and event["args"]["owner"] == chain.account(2)

    new_key = crypto.SigningKey()
    update = registry.functions.workerUpdate(wid, '{"record": 2}', codec.signer_address(new_key.public_pem()), "second")
    reverts(update, chain, sender=3, match="only the worker's owner")
    receipt = chain.send(update, 2)
    [updated] = registry.events.WorkerUpdated().process_receipt(receipt)
    assert updated["args"]["evidence"] == "second" and bytes(updated["args"]["evidenceHash"]) == crypto.sha256(
        b"second"
    )
    assert registry.functions.workerRetrieve(wid).call()[4] == '{"record": 2}'

    reverts(registry.functions.workerSetStatus(wid, 2), chain, sender=3, match="only the worker's owner")
    reverts(registry.functions.workerSetStatus(wid, 9), chain, sender=2, match="status must be 1 to 4")
    [changed] = registry.events.WorkerStatusChanged().process_receipt(
        chain.send(registry.functions.workerSetStatus(wid, 2), 2)
    )
    assert changed["args"]["status"] == 2
    assert registry.functions.workerRetrieve(wid).call()[0] == 2
    reverts(
        registry.functions.workerRegister(wid, 1, ZERO, [], "", chain.account(2), ""), chain, match="already registered"
    )


def test_lookup_pages_through_every_match_and_filters():
    from .conftest import in_process_chain

    chain = in_process_chain()  # a registry of its own: the counts are exact
    key = crypto.SigningKey()
    org, app = b"\x01" * 32, b"\x02" * 32
    wanted = [register(chain, key, worker_type=1, org=org, apps=[b"\x09" * 32, app]) for _ in range(37)]
    others = [register(chain, key, worker_type=2) for _ in range(5)]
    registry = chain.contract("WorkerRegistry")

    def pages(*filters):
        total, tag, ids = registry.functions.workerLookUp(*filters).call()
        seen, count = list(ids), 1
        while tag:
            total2, tag, ids = registry.functions.workerLookUpNext(*filters, tag).call()
            assert total2 == total
            seen += ids
            count += 1
        return total, seen, count

    total, seen, count = pages(1, org, app)
    assert total == 37 and seen == wanted and count == 3  # 16 + 16 + 5
    total, seen, _ = pages(0, ZERO, ZERO)
    assert total == 42 and seen == wanted + others
    assert pages(2, ZERO, ZERO)[:2] == (5, others)
    assert pages(1, ZERO, b"\x07" * 32)[:2] == (0, [])
    with pytest.raises((ContractLogicError, TransactionFailed), match="lookUpTag"):
        registry.functions.workerLookUpNext(0, ZERO, ZERO, "x1").call()


# --- WorkOrderRegistry ----------------------------------------------------------------------------------------


def test_submit_needs_an_active_registered_worker_and_a_fresh_id(chain: Chain):
    orders = chain.contract("WorkOrderRegistry")
    key = crypto.SigningKey()
    wid = register(chain, key)
    reverts(
        orders.functions.workOrderSubmit(random_id(), random_id(), random_id(), "{}"), chain, match="not registered"
    )
    wo, rid = random_id(), random_id()
    receipt = chain.send(orders.functions.workOrderSubmit(wo, wid, rid, '{"params": 1}'), 1)
    [event] = orders.events.workOrderSubmitted().process_receipt(receipt)
    assert event["args"]["workOrderRequest"] == '{"params": 1}' and event["args"]["senderAddress"] == chain.account(1)
    assert (bytes(event["args"]["workerId"]), bytes(event["args"]["requesterId"])) == (wid, rid)
    reverts(orders.functions.workOrderSubmit(wo, wid, rid, "{}"), chain, match="already used")
    chain.send(chain.contract("WorkerRegistry").functions.workerSetStatus(wid, 2))
    reverts(orders.functions.workOrderSubmit(random_id(), wid, rid, "{}"), chain, match="not active")
    status, worker, requester, _, submitted, completed = orders.functions.workOrderGet(wo).call()
    assert (status, bytes(worker), bytes(requester), submitted, completed) == (0, wid, rid, receipt["blockNumber"], 0)


def test_a_result_is_accepted_only_signed_by_the_worker_over_the_response_hash(chain: Chain):
    orders = chain.contract("WorkOrderRegistry")
    key = crypto.SigningKey()
    wid = register(chain, key)
    wo, rid = submit(chain, wid)
    result = signed_result(key, wo, wid, rid)
    digest = response_hash(result)
    good = codec.result_args(result, key.public_pem(), digest)

    def altered(position: int, value) -> tuple:
        args = list(good)
        args[position] = value
        return tuple(args)

    items = good[3]
    tampered_item = [(i, h, d + "A", k, iv) if i == 1 else (i, h, d, k, iv) for i, h, d, k, iv in items]
    for bad in (
        altered(2, "00" * 16),  # another worker nonce
        altered(1, b"fib".hex()),  # another workload
        altered(3, tampered_item),  # another output
        altered(3, items[:1]),  # an output dropped
    ):
        reverts(orders.functions.workOrderComplete(bad), chain, match="not signed by the worker")
    reverts(orders.functions.workOrderComplete(altered(3, list(reversed(items)))), chain, match="index order")
    # the same result signed by another key
    impostor = crypto.SigningKey()
    forged = signed_result(impostor, wo, wid, rid)
    forged_args = codec.result_args(forged, impostor.public_pem(), response_hash(forged))
    reverts(orders.functions.workOrderComplete(forged_args), chain, match="not signed by the worker")
    # the high-S twin of a valid signature
    v, r, s = good[4]
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    reverts(orders.functions.workOrderComplete(altered(4, (55 - v, r, n - s))), chain, match="s is not low")

    receipt = chain.send(orders.functions.workOrderComplete(good), sender=5)  # anyone may relay a signed result
    [event] = orders.events.workOrderCompleted().process_receipt(receipt)
    assert bytes(event["args"]["responseHash"]) == digest
    back = codec.result_from_event(event["args"], wid.hex())
    assert response_hash(back) == digest
    crypto.verify_digest(key.public_pem(), digest, crypto.b64decode(back.worker_signature))
    status, *_, completed = orders.functions.workOrderGet(wo).call()
    assert (status, completed) == (1, receipt["blockNumber"])
    reverts(orders.functions.workOrderComplete(good), chain, match="already answered")


def test_a_result_for_another_order_of_the_same_worker_is_refused(chain: Chain):
    orders = chain.contract("WorkOrderRegistry")
    key = crypto.SigningKey()
    wid = register(chain, key)
    wo1, rid1 = submit(chain, wid)
    wo2, _ = submit(chain, wid)
    result = signed_result(key, wo1, wid, rid1)
    args = list(codec.result_args(result, key.public_pem(), response_hash(result)))
    args[0] = wo2  # replayed onto the other order: the contract hashes wo2's ids
    reverts(orders.functions.workOrderComplete(tuple(args)), chain, match="not signed by the worker")


def test_batch_by_hash_and_failures(chain: Chain):
    orders = chain.contract("WorkOrderRegistry")
    key = crypto.SigningKey()
    wid = register(chain, key, sender=0)
    batch = []
    for _ in range(3):
        wo, rid = submit(chain, wid)
        r = signed_result(key, wo, wid, rid, items=1)
        batch.append(codec.result_args(r, key.public_pem(), response_hash(r)))
    receipt = chain.send(orders.functions.workOrderCompleteBatch(batch))
    assert len(orders.events.workOrderCompleted().process_receipt(receipt)) == 3

    wo, rid = submit(chain, wid)
    r = signed_result(key, wo, wid, rid)
    digest = response_hash(r)
    v, rr, s = codec.vrs(key.public_pem(), digest, crypto.b64decode(r.worker_signature))
    reverts(
        orders.functions.workOrderCompleteByHash(wo, crypto.sha256(b"other"), (v, rr, s)), chain, match="not signed"
    )
    chain.send(orders.functions.workOrderCompleteByHash(wo, digest, (v, rr, s)))
    assert bytes(orders.functions.workOrderGet(wo).call()[3]) == digest

    wo, _ = submit(chain, wid)
    reverts(orders.functions.workOrderFail(wo, 5, "nope"), chain, sender=4, match="only the worker's owner")
    reverts(orders.functions.workOrderFail(wo, 0, "nope"), chain, match="non-zero code")
    [event] = orders.events.workOrderCompleted().process_receipt(
        chain.send(orders.functions.workOrderFail(wo, 5, "bad input"))
    )
    assert (event["args"]["workOrderStatus"], event["args"]["errorCode"], event["args"]["errorMessage"]) == (
        2,
        5,
        "bad input",
    )
    reverts(orders.functions.workOrderFail(random_id(), 5, "x"), chain, match="unknown work order")


# --- receipts, anchors, the registry list ---------------------------------------------------------------------


def test_receipts_updates_lookup_and_ledger_anchors(chain: Chain):
    receipts = chain.contract("WorkOrderReceiptRegistry")
    key = crypto.SigningKey()
    wid = register(chain, key, sender=3)
    ids = []
    for _ in range(18):
        wo = random_id()
        ids.append(wo)
        chain.send(
            receipts.functions.workOrderReceiptCreate(
                wo, ZERO, wid, ZERO, 0, crypto.sha256(wo), "nonce", "sig", "SHA-256/SECP256K1"
            )
        )
    reverts(
        receipts.functions.workOrderReceiptCreate(ids[0], ZERO, wid, ZERO, 0, ZERO, "", "", ""), chain, match="exists"
    )
    updater = b"\x05" * 32
    receipt = chain.send(receipts.functions.workOrderReceiptUpdate(ids[0], updater, 1, "done", "usig", "rules"))
    assert receipts.events.workOrderReceiptUpdated().process_receipt(receipt)[0]["args"]["updateData"] == "done"
    chain.send(receipts.functions.workOrderReceiptUpdate(ids[0], b"\x06" * 32, 300, "note", "", ""))
    assert receipts.functions.workOrderReceiptRetrieve(ids[0]).call()[3] == 1  # a status update set it; 300 did not
    assert receipts.functions.workOrderReceiptUpdateRetrieve(ids[0], updater, 0).call()[1:] == [
        1,
        "done",
        "usig",
        "rules",
        1,
    ]
    got = receipts.functions.workOrderReceiptUpdateRetrieve(ids[0], ZERO, 1).call()
    assert (got[1], got[2], got[5]) == (300, "note", 2)
    total, tag, first = receipts.functions.workOrderReceiptLookUp(ZERO, wid, ZERO, 0).call()
    total2, tag2, rest = receipts.functions.workOrderReceiptLookUpNext(ZERO, wid, ZERO, 0, tag).call()
    assert (total, total2, tag2) == (18, 18, "") and list(first) + list(rest) == ids
    assert receipts.functions.workOrderReceiptLookUp(ZERO, wid, ZERO, 1).call()[0] == 1

    anchor = receipts.functions.ledgerAnchor(wid, 10, b"\x0a" * 32, "head signature", 1234)
    reverts(anchor, chain, sender=0, match="only the worker's owner")
    [event] = receipts.events.ledgerHeadAnchored().process_receipt(chain.send(anchor, 3))
    assert event["args"]["treeSize"] == 10
    reverts(receipts.functions.ledgerAnchor(wid, 10, b"\x0b" * 32, "", 0), chain, sender=3, match="already as large")
    assert receipts.functions.ledgerHead(wid).call()[:3] == [10, b"\x0a" * 32, "head signature"]


def test_the_registry_list(chain: Chain):
    lst = chain.contract("WorkerRegistryList")
    org, app = random_id(), b"\x03" * 32
    receipt = chain.send(
        lst.functions.registryAdd(org, "http://node", chain.deployment["WorkerRegistry"].address, [app]), 2
    )
    assert lst.events.RegistryAdded().process_receipt(receipt)[0]["args"]["uri"] == "http://node"
    reverts(lst.functions.registryUpdate(org, "x", chain.account(0), []), chain, sender=0, match="owner")
    chain.send(lst.functions.registryUpdate(org, "http://other", chain.account(0), [app]), 2)
    chain.send(lst.functions.registrySetStatus(org, 2), 2)
    assert lst.functions.registryRetrieve(org).call() == ["http://other", chain.account(0), [app], 2]
    total, _, ids = lst.functions.registryLookUp(app).call()
    assert org in ids and total >= 1


def test_an_address_with_other_code_is_refused(chain: Chain):
    registry = chain.deployment["WorkerRegistry"]
    code = bytes(chain.w3.eth.get_code(registry.address))
    check_code("WorkerRegistry", registry.address, code)
    with pytest.raises(ChainError, match="not WorkOrderRegistry as built"):
        check_code("WorkOrderRegistry", registry.address, code)
    with pytest.raises(ChainError, match="no contract there"):
        check_code("WorkOrderRegistry", chain.account(3), bytes(chain.w3.eth.get_code(chain.account(3))))


def test_a_contracts_file_must_name_every_contract():
    from adytum.chain import Deployment

    with pytest.raises(ChainError, match="expected a JSON list"):
        Deployment.from_json({"WorkerRegistry": "0x0"})
    with pytest.raises(ChainError, match="needs name, address and abi"):
        Deployment.from_json([{"name": "WorkerRegistry"}])
    with pytest.raises(ChainError, match="no address for WorkOrderRegistry"):
        Deployment.from_json(
            [
                {"name": n, "address": "0x0", "abi": []}
                for n in ("WorkerRegistry", "WorkerRegistryList", "WorkOrderReceiptRegistry")
            ]
        )
