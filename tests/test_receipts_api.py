"""The EEA receipt methods and the ledger methods over real HTTP against a real node."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest

from adytum import crypto
from adytum.client import Client, build
from adytum.ledger import merkle
from adytum.listener.openrpc import METHODS
from adytum.protocol import Status, decode_result, response_hash, to_builtins
from adytum.protocol.receipts import (
    LAST_UPDATE,
    ReceiptCreateParams,
    ReceiptDocument,
    ReceiptEvent,
    ReceiptUpdateEvent,
    TreeHead,
    decode_event,
    receipt_create_digest,
    receipt_update_digest,
)
from support import running_node

RECEIPT_METHODS = [
    "WorkOrderReceiptCreate",
    "WorkOrderReceiptUpdate",
    "WorkOrderReceiptRetrieve",
    "WorkOrderReceiptUpdateRetrieve",
    "WorkOrderReceiptLookUp",
    "WorkOrderReceiptLookUpNext",
    "LedgerHead",
    "LedgerInclusionProof",
    "LedgerConsistencyProof",
    "WorkOrderReceiptDocument",
]


def post(url: str, body: bytes) -> dict[str, Any]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request("POST", "/", body, {"Content-Type": "application/json"})
    reply = json.loads(conn.getresponse().read())
    conn.close()
    return reply


def rpc(url: str, method: str, params: Any) -> dict[str, Any]:
    return post(url, json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode())


def error(url: str, method: str, params: Any, code: int) -> str:
    """The message of the error `method` must answer with `code`."""
    reply = rpc(url, method, params)
    assert "error" in reply, (method, params, reply)
    assert reply["error"]["code"] == code, reply["error"]
    return str(reply["error"]["message"])


@pytest.fixture(scope="module")
def client(node):
    with Client(node.url, trust=node.trust) as c:
        yield c


@pytest.fixture(scope="module")
def worker(client):
    return client.worker()


def submit(node, worker, *, signer=None, requester_id=None, wait: bool = True):
    order = build(
        worker,
        "hello",
        [b"x"],
        signer=signer,
        requester_id=requester_id,
        response_timeout_ms=10_000 if wait else 0,
    )
    reply = rpc(node.url, "WorkOrderSubmit", to_builtins(order.params))
    assert ("result" in reply) if wait else reply["error"]["code"] == Status.PENDING, reply
    return order, reply.get("result")


def ledger_size(node) -> int:
    return node.node.reader.ledger_size()


def sign(key: crypto.SigningKey, digest: bytes) -> str:
    return crypto.b64encode(key.sign_digest(digest))


def update_params(wo_id: str, updater: str, key: crypto.SigningKey, update_type: int = 2, data: str = "") -> dict:
    return {
        "workOrderId": wo_id,
        "updaterId": updater,
        "updateType": update_type,
        "updateData": data,
        "updateSignature": sign(key, receipt_update_digest(wo_id, update_type, data)),
    }


def a_head(node) -> dict[str, Any]:
    """The latest signed head, once one covers the whole ledger (the head signer signs within a second)."""
    for _ in range(100):
        reply = rpc(node.url, "LedgerHead", {})
        if "result" in reply and reply["result"]["treeSize"] >= ledger_size(node):
            return reply["result"]
        time.sleep(0.1)
    pytest.fail(f"no head covers the ledger of {ledger_size(node)} leaves: {reply}")


# -- every order has a receipt trail -------------------------------------------------------------------


def test_every_accepted_order_has_a_pending_node_receipt(node, worker):
    order, _ = submit(node, worker, wait=False)
    wo_id = order.work_order_id
    record = rpc(node.url, "WorkOrderReceiptRetrieve", {"workOrderId": "0x" + wo_id.upper()})["result"]
    receipt = msgspec.convert(record["receipt"], ReceiptCreateParams)
    assert receipt.workOrderId == wo_id and receipt.workerId == receipt.workerServiceId == worker.worker_id
    assert receipt.requesterId == order.params.requester_id
    assert receipt.requesterGeneratedNonce == order.params.requester_nonce
    assert receipt.workOrderRequestHash == crypto.b64encode(order.request_hash)
    assert receipt.receiptCreateStatus == 0 and receipt.requesterSignature == ""
    assert record["receiptCurrentStatus"] in (0, 1)  # the order may be done already
    first = node.node.reader.ledger_leaves_of(wo_id)[0]
    event = decode_event(first.data)
    assert isinstance(event, ReceiptEvent) and event.by == "node" and event.receipt == receipt
    assert first.hash == merkle.leaf_hash(first.data)


def test_the_worker_updates_the_receipt_completed_with_the_response_hash(node, worker):
    order, result = submit(node, worker)
    wo_id = order.work_order_id
    last = rpc(node.url, "WorkOrderReceiptUpdateRetrieve", {"workOrderId": wo_id, "updateIndex": LAST_UPDATE})
    update = last["result"]["update"]
    assert update["updaterId"] == worker.worker_id and update["updateType"] == 1
    assert update["updateData"] == crypto.b64encode(response_hash(decode_result(json.dumps(result))))
    assert update["updateSignature"]
    assert rpc(node.url, "WorkOrderReceiptRetrieve", {"workOrderId": wo_id})["result"]["receiptCurrentStatus"] == 1
    events = [decode_event(leaf.data) for leaf in node.node.reader.ledger_leaves_of(wo_id)]
    assert [type(e) for e in events] == [ReceiptEvent, ReceiptUpdateEvent] and events[1].by == "worker"


# -- a requester's own receipt ---------------------------------------------------------------------------


def create_params(order, key: crypto.SigningKey, **changes: Any) -> dict[str, Any]:
    p = ReceiptCreateParams(
        workOrderId=order.work_order_id,
        workerServiceId=order.params.worker_id,
        workerId=order.params.worker_id,
        requesterId=order.params.requester_id,
        receiptCreateStatus=0,
        workOrderRequestHash=crypto.b64encode(order.request_hash),
        requesterGeneratedNonce=crypto.random_bytes(16).hex(),
        receiptVerificationKey=key.public_pem(),
    )
    p = msgspec.structs.replace(p, **changes)
    p = msgspec.structs.replace(p, requesterSignature=sign(key, receipt_create_digest(p)))
    return msgspec.to_builtins(p)


def test_requester_create_checks_signature_hash_order_and_once(node, worker):
    order, _ = submit(node, worker)
    key, wo_id = crypto.SigningKey(), order.work_order_id
    before = ledger_size(node)

    forged = create_params(order, key)
    forged["requesterSignature"] = sign(crypto.SigningKey(), receipt_create_digest(ReceiptCreateParams(**forged)))
    assert "requesterSignature does not verify" in error(node.url, "WorkOrderReceiptCreate", forged, 4)
    wrong_hash = create_params(order, key, workOrderRequestHash=crypto.b64encode(b"\0" * 32))
    assert "workOrderRequestHash" in error(node.url, "WorkOrderReceiptCreate", wrong_hash, 2)
    unknown = create_params(order, key, workOrderId="ab" * 32)
    assert "not known here" in error(node.url, "WorkOrderReceiptCreate", unknown, 2)
    other_requester = create_params(order, key, requesterId="cd" * 32)
    error(node.url, "WorkOrderReceiptCreate", other_requester, 3)
    rsa_rules = {**create_params(order, key), "signatureRules": "SHA-256/RSA-OAEP-4096"}
    assert "signatureRules" in error(node.url, "WorkOrderReceiptCreate", rsa_rules, 2)
    assert ledger_size(node) == before and node.node.reader.receipt(wo_id)[0] == "node"  # nothing stored

    good = create_params(order, key)
    assert rpc(node.url, "WorkOrderReceiptCreate", good) == {"jsonrpc": "2.0", "id": 1, "result": None}
    record = rpc(node.url, "WorkOrderReceiptRetrieve", {"workOrderId": wo_id})["result"]
    assert record["receipt"] == good
    assert ledger_size(node) == before + 1
    event = decode_event(node.node.reader.ledger_leaves_of(wo_id)[-1].data)
    assert isinstance(event, ReceiptEvent) and event.by == "requester"

    again = create_params(order, key)
    assert "already has a receipt created by its requester" in error(node.url, "WorkOrderReceiptCreate", again, 2)
    assert ledger_size(node) == before + 1


# -- updates -------------------------------------------------------------------------------------------------


def test_updates_by_the_requester_and_refusals_of_strangers_and_forgers(node, worker):
    signer = crypto.SigningKey()
    order, _ = submit(node, worker, signer=signer)
    wo_id, requester = order.work_order_id, order.params.requester_id
    before = ledger_size(node)

    stranger = crypto.SigningKey()
    denied = error(node.url, "WorkOrderReceiptUpdate", update_params(wo_id, "ef" * 32, stranger), 3)
    assert "neither the worker nor the requester" in denied
    forged_worker = update_params(wo_id, worker.worker_id, stranger, update_type=1)
    assert "updateSignature does not verify" in error(node.url, "WorkOrderReceiptUpdate", forged_worker, 4)
    forged_requester = update_params(wo_id, requester, stranger)
    error(node.url, "WorkOrderReceiptUpdate", forged_requester, 4)
    reserved = update_params(wo_id, requester, signer, update_type=7)
    assert "reserved" in error(node.url, "WorkOrderReceiptUpdate", reserved, 2)
    other_key = {**update_params(wo_id, requester, signer), "receiptVerificationKey": stranger.public_pem()}
    error(node.url, "WorkOrderReceiptUpdate", other_key, 2)
    unknown = update_params("ab" * 32, requester, signer)
    assert "not known here" in error(node.url, "WorkOrderReceiptUpdate", unknown, 2)
    assert ledger_size(node) == before

    # a node receipt: the requester signs with the key the order was signed with
    assert rpc(node.url, "WorkOrderReceiptUpdate", update_params(wo_id, requester, signer))["result"] is None
    app = update_params(wo_id, requester, signer, update_type=300, data="application data")
    assert rpc(node.url, "WorkOrderReceiptUpdate", app)["result"] is None
    assert ledger_size(node) == before + 2
    assert rpc(node.url, "WorkOrderReceiptRetrieve", {"workOrderId": wo_id})["result"]["receiptCurrentStatus"] == 2

    # a requester-made receipt: its receiptVerificationKey, no longer the order's key
    key = crypto.SigningKey()
    assert rpc(node.url, "WorkOrderReceiptCreate", create_params(order, key))["result"] is None
    error(node.url, "WorkOrderReceiptUpdate", update_params(wo_id, requester, signer), 4)
    assert rpc(node.url, "WorkOrderReceiptUpdate", update_params(wo_id, requester, key, 4))["result"] is None
    assert rpc(node.url, "WorkOrderReceiptRetrieve", {"workOrderId": wo_id})["result"]["receiptCurrentStatus"] == 4


def test_an_unsigned_order_has_no_requester_key_for_updates(node, worker):
    order, _ = submit(node, worker)
    params = update_params(order.work_order_id, order.params.requester_id, crypto.SigningKey())
    assert "was not signed" in error(node.url, "WorkOrderReceiptUpdate", params, 3)


def test_update_retrieve_by_index_last_and_updater(node, worker):
    signer = crypto.SigningKey()
    order, _ = submit(node, worker, signer=signer)
    wo_id, requester = order.work_order_id, order.params.requester_id
    first = update_params(wo_id, requester, signer, data="first")
    second = update_params(wo_id, requester, signer, update_type=256, data="second")
    for params in (first, second):
        assert rpc(node.url, "WorkOrderReceiptUpdate", params)["result"] is None

    def retrieve(index: int, **extra: Any) -> dict[str, Any]:
        return rpc(node.url, "WorkOrderReceiptUpdateRetrieve", {"workOrderId": wo_id, "updateIndex": index, **extra})[
            "result"
        ]

    mine = {"updaterId": "0x" + requester.upper()}
    assert retrieve(1, **mine) == {"update": {**first, **_defaults()}, "updateCount": 2}
    assert retrieve(2, **mine)["update"]["updateData"] == "second"
    assert retrieve(LAST_UPDATE, **mine)["update"]["updateData"] == "second"
    everyone = retrieve(LAST_UPDATE)
    assert everyone["update"]["updateData"] == "second"
    assert everyone["updateCount"] == len(node.node.reader.receipt_updates(wo_id))
    message = error(node.url, "WorkOrderReceiptUpdateRetrieve", {"workOrderId": wo_id, "updateIndex": 3, **mine}, 2)
    assert "has 2 receipt update(s)" in message
    none_of = {"workOrderId": wo_id, "updateIndex": 1, "updaterId": "ef" * 32}
    assert "no receipt updates by" in error(node.url, "WorkOrderReceiptUpdateRetrieve", none_of, 2)
    error(node.url, "WorkOrderReceiptUpdateRetrieve", {"workOrderId": wo_id, "updateIndex": 0}, 2)


def _defaults() -> dict[str, str]:
    return {"signatureRules": "SHA-256/SECP256K1", "receiptVerificationKey": ""}


# -- lookups ------------------------------------------------------------------------------------------


def test_lookup_pages_of_100_and_the_status_filter(node, worker):
    signer, requester = crypto.SigningKey(), crypto.random_bytes(32).hex()
    orders = [submit(node, worker, signer=signer, requester_id=requester)[0] for _ in range(150)]
    ids = sorted(o.work_order_id for o in orders)
    rejected = sorted(ids[::50])
    for wo_id in rejected:
        assert rpc(node.url, "WorkOrderReceiptUpdate", update_params(wo_id, requester, signer, 4))["result"] is None

    page = rpc(node.url, "WorkOrderReceiptLookUp", {"requesterId": requester})["result"]
    assert page["totalCount"] == 150 and page["ids"] == ids[:100] and page["lookupTag"] == ids[99]
    rest = rpc(node.url, "WorkOrderReceiptLookUpNext", {"requesterId": requester, "lastLookUpTag": page["lookupTag"]})
    assert rest["result"] == {"totalCount": 150, "lookupTag": "", "ids": ids[100:]}

    by_status = rpc(node.url, "WorkOrderReceiptLookUp", {"requesterId": requester, "receiptStatus": 4})["result"]
    assert by_status == {"totalCount": 3, "lookupTag": "", "ids": rejected}
    processed = rpc(node.url, "WorkOrderReceiptLookUp", {"requesterId": requester, "receiptStatus": 2})["result"]
    assert processed == {"totalCount": 0, "lookupTag": "", "ids": []}
    of_worker = {"requesterId": requester, "workerId": "0x" + worker.worker_id, "workerServiceId": worker.worker_id}
    assert rpc(node.url, "WorkOrderReceiptLookUp", of_worker)["result"]["totalCount"] == 150
    assert rpc(node.url, "WorkOrderReceiptLookUp", {"workerId": "ab" * 32})["result"]["totalCount"] == 0


def test_malformed_and_oversized_lookups(node):
    before = ledger_size(node)
    for params, field in [
        ({"receiptStatus": 9}, "receiptStatus"),
        ({"receiptStatus": "1"}, "receiptStatus"),
        ({"workerId": "zz"}, "workerId"),
        ({"workerId": "a" * 300}, "workerId"),
        ({"requesterId": 5}, "requesterId"),
        ({"limit": 5}, "limit"),
    ]:
        assert field in error(node.url, "WorkOrderReceiptLookUp", params, 2)
    assert "lastLookUpTag" in error(node.url, "WorkOrderReceiptLookUpNext", {"lastLookUpTag": "a" * 300}, 2)
    for tag in ("", "not hex"):
        assert "needs the lookupTag" in error(node.url, "WorkOrderReceiptLookUpNext", {"lastLookUpTag": tag}, 2)
    assert ledger_size(node) == before
    assert "result" in rpc(node.url, "WorkerLookUp", {})  # serving on


# -- Avalon's receipt requests -----------------------------------------------------------------------------

#: Each file of tests/vectors/avalon/tests_workorder_receipt/: the code it must be answered with (None:
#: accepted), a text the answer must hold, and why. Avalon's ids ("r_id", "u1") are not hex: EEA ids are hex.
AVALON_EXPECTED: dict[str, tuple[int | None, str, str]] = {
    "workorderreceipt_01.json": (2, "$.requesterId", "requesterId 'r_id' is not hex"),
    "workorderreceipt_02.json": (2, "$.updaterId", "updaterId 'u1' is not hex"),
    "workorderreceipt_02a.json": (2, "$.updaterId", "updaterId 'u1' is not hex"),
    "workorderreceipt_02b.json": (2, "$.updaterId", "updaterId 'u2' is not hex"),
    "workorderreceipt_03.json": (2, "not known here", "work order 90 was never submitted here"),
    "workorderreceipt_04.json": (None, "", "a well-formed lookup: no receipt of worker service 50, an empty page"),
    "workorderreceipt_05.json": (2, "$.requesterId", "requesterId 'r_id' is not hex (and status, hash missing)"),
    "workorderreceipt_07.json": (2, "$.workerServiceId", "workerServiceId and lastLookUpTag are numbers"),
    "workorderreceipt_08.json": (2, "$.updaterId", "updaterId 'u1' is not hex"),
}


def test_every_avalon_receipt_vector_has_an_expected_outcome(avalon_vectors):
    files = sorted(p.name for p in (avalon_vectors / "tests_workorder_receipt").glob("*.json"))
    assert files == sorted(AVALON_EXPECTED)


@pytest.mark.parametrize("name", sorted(AVALON_EXPECTED))
def test_avalon_receipt_requests(node, avalon_vectors, name):
    code, text, why = AVALON_EXPECTED[name]
    before = ledger_size(node)
    reply = post(node.url, (Path(avalon_vectors) / "tests_workorder_receipt" / name).read_bytes())
    if code is None:
        assert reply["result"] == {"totalCount": 0, "lookupTag": "", "ids": []}, why
    else:
        assert reply["error"]["code"] == code and text in reply["error"]["message"], (why, reply)
    assert ledger_size(node) == before


# -- the ledger and the receipt document -----------------------------------------------------------------


def test_inclusion_and_consistency_proofs_check_out_and_sizes_beyond_are_refused(node, worker):
    submit(node, worker)
    head = msgspec.convert(a_head(node), TreeHead)
    size, root = head.treeSize, bytes.fromhex(head.rootHash)
    hashes = node.node.reader.ledger_hashes(0, size)
    for index in (0, size // 2, size - 1):
        proof = rpc(node.url, "LedgerInclusionProof", {"leafIndex": index})["result"]
        assert proof["treeSize"] == size and proof["leafIndex"] == index
        merkle.verify_inclusion(hashes[index], index, size, [bytes.fromhex(h) for h in proof["path"]], root)
    old = size // 2
    proof = rpc(node.url, "LedgerConsistencyProof", {"firstSize": old})["result"]
    assert proof["secondSize"] == size
    merkle.verify_consistency(old, merkle.root(hashes[:old]), size, root, [bytes.fromhex(h) for h in proof["path"]])
    smaller = rpc(node.url, "LedgerInclusionProof", {"leafIndex": 0, "treeSize": old})["result"]
    merkle.verify_inclusion(hashes[0], 0, old, [bytes.fromhex(h) for h in smaller["path"]], merkle.root(hashes[:old]))

    latest = rpc(node.url, "LedgerHead", {})["result"]["treeSize"]
    beyond = f"tree size {latest + 1} is beyond the latest signed head, of {latest} leaves"
    assert beyond in error(node.url, "LedgerInclusionProof", {"leafIndex": 0, "treeSize": latest + 1}, 2)
    assert beyond in error(node.url, "LedgerConsistencyProof", {"firstSize": 1, "secondSize": latest + 1}, 2)
    assert "is not in the tree of" in error(node.url, "LedgerInclusionProof", {"leafIndex": latest}, 2)
    assert "a tree only grows" in error(node.url, "LedgerConsistencyProof", {"firstSize": latest + 1}, 2)
    error(node.url, "LedgerInclusionProof", {"leafIndex": -1}, 2)
    error(node.url, "LedgerConsistencyProof", {"firstSize": "1"}, 2)
    assert "result" in rpc(node.url, "WorkerLookUp", {})


def test_the_receipt_document_holds_the_worker_record_and_proven_events(node, worker):
    signer = crypto.SigningKey()
    order, _ = submit(node, worker, signer=signer)
    wo_id = order.work_order_id
    rpc(node.url, "WorkOrderReceiptUpdate", update_params(wo_id, order.params.requester_id, signer))
    a_head(node)
    doc = msgspec.convert(rpc(node.url, "WorkOrderReceiptDocument", {"workOrderId": wo_id})["result"], ReceiptDocument)
    assert doc.format == "adytum-receipt/1" and doc.workOrderId == wo_id
    assert doc.workerRecord == rpc(node.url, "WorkerRetrieve", {"workerId": worker.worker_id})["result"]
    root = bytes.fromhex(doc.treeHead.rootHash)
    events = []
    for proof in doc.events:
        leaf = crypto.b64decode(proof.leaf)
        path = [bytes.fromhex(h) for h in proof.path]
        merkle.verify_inclusion(merkle.leaf_hash(leaf), proof.leafIndex, doc.treeHead.treeSize, path, root)
        events.append(decode_event(leaf))
    assert {e.workOrderId for e in events} == {wo_id}
    assert [p.leafIndex for p in doc.events] == sorted(p.leafIndex for p in doc.events)
    assert isinstance(events[0], ReceiptEvent) and events[0].by == "node"
    assert isinstance(events[-1], ReceiptUpdateEvent) and events[-1].by == "requester"


def test_unknown_orders_and_bad_params_for_each_receipt_method(node):
    unknown = "ab" * 32
    before = ledger_size(node)
    for method, params in [
        ("WorkOrderReceiptRetrieve", {"workOrderId": unknown}),
        ("WorkOrderReceiptUpdateRetrieve", {"workOrderId": unknown, "updateIndex": 1}),
        ("WorkOrderReceiptDocument", {"workOrderId": unknown}),
    ]:
        assert f"work order {unknown} is not known here" in error(node.url, method, params, 2)
    for method in RECEIPT_METHODS:
        assert "unknown field `bogus`" in error(node.url, method, {"bogus": 1}, 2)
        assert "invalid" in error(node.url, method, [1, 2], 2)
    assert ledger_size(node) == before
    assert "result" in rpc(node.url, "WorkerLookUp", {})


def test_openrpc_lists_every_receipt_and_ledger_method(node):
    doc = rpc(node.url, "rpc.discover", {})["result"]
    methods = {m["name"]: m for m in doc["methods"]}
    assert set(RECEIPT_METHODS) <= set(methods) and set(RECEIPT_METHODS) <= set(METHODS)
    assert methods["WorkOrderReceiptCreate"]["result"]["schema"] == {"type": "null"}
    assert methods["WorkOrderReceiptRetrieve"]["result"]["schema"] == {"$ref": "#/components/schemas/ReceiptRecord"}
    assert methods["WorkOrderReceiptDocument"]["result"]["schema"] == {"$ref": "#/components/schemas/ReceiptDocument"}
    assert {p["name"] for p in methods["WorkOrderReceiptLookUpNext"]["params"]} == {
        "workerServiceId",
        "workerId",
        "requesterId",
        "receiptStatus",
        "lastLookUpTag",
    }
    assert {"TreeHead", "ReceiptLookUpPage", "InclusionProof", "ConsistencyProof"} <= set(doc["components"]["schemas"])


def test_receipts_off_stores_none_and_the_methods_say_so(tmp_path):
    with running_node(tmp_path, receipts=False) as off, Client(off.url, trust=off.trust) as c:
        order, _ = submit(off, c.worker())
        assert off.node.reader.receipt(order.work_order_id) is None and ledger_size(off) == 0
        for method in RECEIPT_METHODS:
            assert "receipts are off on this node" in error(off.url, method, {}, 2)
