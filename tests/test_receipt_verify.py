"""Offline receipt verification: a complete receipt document built here without a node (a real simulated worker
record, events signed with the worker's key, an RFC 9162 tree, a head signed over `tree_head_digest`), then
every kind of tampering refused with its own message, by the pure checks, the SDK function and the CLI."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adytum import crypto
from adytum.attestation.simulated import SIMULATED_IAS
from adytum.attestation.verify import report_data_for
from adytum.client import Trust, UntrustedWorker, verify_receipt_document
from adytum.enclave.keys import WorkerKeys
from adytum.errors import AdytumError
from adytum.issuer.devroot import DevRoot, init_dev_root
from adytum.issuer.quoter import make_quote
from adytum.issuer.service import SimulatedAttestationService
from adytum.ledger import merkle
from adytum.ledger.verify import (
    LedgerError,
    check_event,
    verify_event_inclusion,
    verify_heads_consistent,
    verify_tree_head,
)
from adytum.protocol import WorkerDetails, WorkerRecord, WorkerTypeData
from adytum.protocol.receipts import (
    RECEIPT_FORMAT,
    Event,
    EventProof,
    ReceiptCreateParams,
    ReceiptDocument,
    ReceiptEvent,
    ReceiptUpdateEvent,
    ReceiptUpdateParams,
    TreeHead,
    encode_event,
    receipt_create_digest,
    receipt_update_digest,
    tree_head_digest,
)

WORKER = "5f" * 32
ORDER = "a1" * 32
OTHER_ORDER = "b2" * 32
REQUESTER = "c3" * 32
MR_ENCLAVE = hashlib.sha256(b"receipt test enclave").digest()
MR_SIGNER = hashlib.sha256(b"receipt test signer").digest()
#: Every SDK check judges the attestation at this one time: 5 minutes after the `parts` fixture made the
#: evidence (set there, not at import: a long suite may reach this module well after importing it).
AT = datetime.now(UTC) + timedelta(minutes=5)


@pytest.fixture(autouse=True, scope="module")
def _judge_from_when_the_module_runs():
    """AT counts from when these tests run, not from collection: the suite before them may take longer than
    the five minutes, and evidence made after AT is not yet valid at AT."""
    global AT
    AT = datetime.now(UTC) + timedelta(minutes=5)


@dataclass(frozen=True)
class Parts:
    root: DevRoot
    keys: WorkerKeys
    record: dict
    trust: Trust
    requester: crypto.SigningKey


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> Parts:
    global AT
    AT = datetime.now(UTC) + timedelta(minutes=5)
    root = init_dev_root(tmp_path_factory.mktemp("devroot"))
    keys = WorkerKeys.generate(WORKER)
    quote = make_quote(
        root.quoting_key,
        mr_enclave=MR_ENCLAVE,
        mr_signer=MR_SIGNER,
        isv_prod_id=1,
        isv_svn=1,
        debug=False,
        report_data=report_data_for(keys.verifying_key, keys.encryption_key, WORKER),
    )
    proof = SimulatedAttestationService(root).verify_quote(quote, "receipt-test").to_proof_data()
    record = WorkerRecord(
        details=WorkerDetails(
            worker_type_data=WorkerTypeData(
                verification_key=keys.verifying_key,
                encryption_key=keys.encryption_key,
                encryption_key_nonce=keys.encryption_key_nonce,
                encryption_key_signature=keys.encryption_key_signature,
                proof_data_type=SIMULATED_IAS,
                proof_data=proof,
                extended_measurements=[MR_ENCLAVE.hex(), MR_SIGNER.hex()],
            ),
            workloads=["hello"],
        )
    )
    trust = Trust.from_files([root.directory / "root.pem"])
    return Parts(root, keys, msgspec.to_builtins(record), trust, crypto.SigningKey())


# --- the events of one order's trail ------------------------------------------------------------------


def node_receipt(order: str = ORDER) -> ReceiptEvent:
    return ReceiptEvent(
        workOrderId=order,
        receipt=ReceiptCreateParams(
            workOrderId=order,
            workerServiceId=WORKER,
            workerId=WORKER,
            requesterId=REQUESTER,
            receiptCreateStatus=0,
            workOrderRequestHash=crypto.b64encode(hashlib.sha256(b"request " + order.encode()).digest()),
            requesterGeneratedNonce="nonce-1",
        ),
        by="node",
    )


def requester_receipt(parts: Parts, signer: crypto.SigningKey | None = None) -> ReceiptEvent:
    r = msgspec.structs.replace(node_receipt().receipt, receiptVerificationKey=parts.requester.public_pem())
    signature = (signer or parts.requester).sign_digest(receipt_create_digest(r))
    return ReceiptEvent(ORDER, msgspec.structs.replace(r, requesterSignature=crypto.b64encode(signature)), "requester")


def update(
    index: int, update_type: int, data: str, by: str, key: crypto.SigningKey, updater: str
) -> ReceiptUpdateEvent:
    signature = crypto.b64encode(key.sign_digest(receipt_update_digest(ORDER, update_type, data)))
    params = ReceiptUpdateParams(ORDER, updater, update_type, data, signature)
    return ReceiptUpdateEvent(ORDER, index, params, by)  # type: ignore[arg-type]


def trail(parts: Parts) -> list[Event]:
    """Node receipt, the requester's own, the worker's COMPLETED, two application updates by the requester."""
    response = crypto.b64encode(hashlib.sha256(b"response").digest())
    return [
        node_receipt(),
        requester_receipt(parts),
        update(1, 1, response, "worker", parts.keys.signing, WORKER),
        update(2, 255, "audited", "requester", parts.requester, REQUESTER),
        update(3, 256, "archived", "requester", parts.requester, REQUESTER),
    ]


# --- a ledger around the trail, a head, the document --------------------------------------------------------


@dataclass
class Ledger:
    leaves: list[bytes]  # leaf data
    mine: list[int]  # the indexes of the trail's leaves

    @property
    def hashes(self) -> list[bytes]:
        return [merkle.leaf_hash(d) for d in self.leaves]


def ledger_of(events: list[Event]) -> Ledger:
    """The trail interleaved with another order's events, as a shared ledger has them."""
    leaves, mine = [], []
    for event in events:
        leaves.append(encode_event(node_receipt(OTHER_ORDER)))
        mine.append(len(leaves))
        leaves.append(encode_event(event))
    leaves.append(encode_event(node_receipt(OTHER_ORDER)))
    return Ledger(leaves, mine)


def sign_head(key: crypto.SigningKey, hashes: list[bytes], timestamp: int = 1_900_000_000_000) -> TreeHead:
    root = merkle.root(hashes)
    signature = key.sign_digest(tree_head_digest(WORKER, len(hashes), root, timestamp))
    return TreeHead(WORKER, len(hashes), root.hex(), timestamp, crypto.b64encode(signature))


def document(
    parts: Parts,
    events: list[Event] | None = None,
    *,
    head_size: int | None = None,
    head_key: crypto.SigningKey | None = None,
    picked: list[int] | None = None,
) -> ReceiptDocument:
    ledger = ledger_of(trail(parts) if events is None else events)
    hashes = ledger.hashes
    size = len(hashes) if head_size is None else head_size
    head = sign_head(head_key or parts.keys.signing, hashes[:size])
    proofs = [
        EventProof(
            i,
            crypto.b64encode(ledger.leaves[i]),
            [h.hex() for h in merkle.inclusion_proof(i, hashes[: max(size, i + 1)])],
        )
        for i in (ledger.mine if picked is None else picked)
    ]
    return ReceiptDocument(RECEIPT_FORMAT, ORDER, parts.record, head, proofs)


def refused(parts: Parts, doc: ReceiptDocument, match: str) -> None:
    with pytest.raises(LedgerError, match=match):
        verify_receipt_document(doc, parts.trust, at=AT)


# --- the good document ------------------------------------------------------------------------------


def test_a_complete_document_verifies(parts):
    receipt = verify_receipt_document(document(parts), parts.trust, at=AT)
    assert receipt.work_order_id == ORDER and receipt.worker_id == WORKER
    assert receipt.verdict is not None and receipt.verdict.mr_enclave == MR_ENCLAVE
    assert receipt.receipt.receiptVerificationKey == parts.requester.public_pem()  # the requester's is in force
    assert [u.updateType for u in receipt.updates] == [1, 255, 256] and receipt.status == 256
    assert [(s.leaf_index, s.kind, s.by, s.signed_by) for s in receipt.statements] == [
        (1, "create", "node", "node"),
        (3, "create", "requester", "requester"),
        (5, "update", "worker", "worker"),
        (7, "update", "requester", "requester"),
        (9, "update", "requester", "requester"),
    ]
    text = receipt.describe()
    assert "application status 256" in text and "unsigned: the node's word" in text and "signed by the worker" in text
    assert json.loads(json.dumps(receipt.to_json()))["statements"][2]["signedBy"] == "worker"


def test_a_node_receipt_alone_is_the_nodes_word(parts):
    receipt = verify_receipt_document(document(parts, [node_receipt()]), parts.trust, at=AT)
    assert receipt.status == 0 and receipt.status_name == "PENDING" and receipt.statements[0].signed_by == "node"


def test_a_requester_update_to_a_node_receipt_needs_the_orders_key(parts):
    events = [node_receipt(), update(1, 255, "x", "requester", parts.requester, REQUESTER)]
    doc = document(parts, events)
    assert verify_receipt_document(doc, parts.trust, at=AT).statements[1].signed_by == "unchecked"
    key = parts.requester.public_pem()
    assert verify_receipt_document(doc, parts.trust, at=AT, order_verifying_key=key).statements[1].signed_by == (
        "requester"
    )
    with pytest.raises(LedgerError, match=r"update 1 \(by the requester\): the signature does not verify"):
        verify_receipt_document(doc, parts.trust, at=AT, order_verifying_key=crypto.SigningKey().public_pem())

    named = node_receipt()
    named = msgspec.structs.replace(named, receipt=msgspec.structs.replace(named.receipt, receiptVerificationKey=key))
    doc = document(parts, [named, events[1]])
    assert verify_receipt_document(doc, parts.trust, at=AT).statements[1].signed_by == "named"
    assert verify_receipt_document(doc, parts.trust, at=AT, order_verifying_key=key).statements[1].signed_by == (
        "requester"
    )
    other = msgspec.structs.replace(named.receipt, receiptVerificationKey=crypto.SigningKey().public_pem())
    doc = document(parts, [msgspec.structs.replace(named, receipt=other), events[1]])
    with pytest.raises(LedgerError, match=r"leaf 3: update 1 \(by the requester\): the signature does not verify"):
        verify_receipt_document(doc, parts.trust, at=AT)


# --- each tampering refused with its own message ------------------------------------------------------------


def test_a_head_not_signed_by_the_worker(parts):
    refused(parts, document(parts, head_key=crypto.SigningKey()), "tree head of 11 leaves is not signed by worker")


def test_a_leaf_of_another_order(parts):
    refused(parts, document(parts, picked=[1, 2, 3]), r"leaf 2: the event records work order b2b2")


def test_a_missing_update(parts):
    refused(parts, document(parts, picked=[1, 3, 5, 9]), "update 2 is missing: leaf 9 holds update 3")


def test_a_forged_requester_signature(parts):
    events = trail(parts)
    events[1] = requester_receipt(parts, signer=crypto.SigningKey())
    refused(parts, document(parts, events), "leaf 3: the requester's receipt: the signature does not verify")


def test_a_forged_worker_update(parts):
    events = trail(parts)
    events[2] = update(1, 1, "forged", "worker", crypto.SigningKey(), WORKER)
    refused(parts, document(parts, events), r"leaf 5: update 1 \(by the worker\): the signature does not verify")


def test_a_head_that_does_not_cover_an_event(parts):
    refused(parts, document(parts, head_size=6), "the tree head covers 6 leaves; the event at leaf 7 is not among them")


def test_an_event_out_of_ledger_order(parts):
    refused(parts, document(parts, picked=[3, 1]), "not in ledger order: leaf 1 follows leaf 3")


def test_a_second_node_receipt(parts):
    refused(parts, document(parts, [node_receipt(), node_receipt()]), "leaf 3: a second receipt for the order")


def test_a_worker_record_of_another_worker(parts):
    doc = document(parts)
    other = json.loads(json.dumps(doc.workerRecord))
    other["details"]["workerTypeData"]["verificationKey"] = crypto.SigningKey().public_pem()
    with pytest.raises(UntrustedWorker):
        verify_receipt_document(msgspec.structs.replace(doc, workerRecord=other), parts.trust, at=AT)
    with pytest.raises(UntrustedWorker, match="attestation refused"):
        verify_receipt_document(doc, Trust(), at=AT)  # no root trusted: simulated evidence is refused


# --- the pure checks on their own ------------------------------------------------------------------------


def test_pure_checks(parts):
    ledger = ledger_of(trail(parts))
    hashes = ledger.hashes
    key = parts.keys.verifying_key
    old, new = sign_head(parts.keys.signing, hashes[:4]), sign_head(parts.keys.signing, hashes)
    verify_tree_head(new, key)
    verify_event_inclusion(ledger.leaves[5], 5, merkle.inclusion_proof(5, hashes), new)
    with pytest.raises(LedgerError, match="leaf 4 is not in the signed tree"):
        verify_event_inclusion(ledger.leaves[5], 4, merkle.inclusion_proof(5, hashes), new)
    verify_heads_consistent(old, new, merkle.consistency_proof(4, hashes))
    with pytest.raises(LedgerError, match="does not extend the tree of 4"):
        verify_heads_consistent(old, new, merkle.consistency_proof(3, hashes))
    forked = sign_head(parts.keys.signing, [merkle.leaf_hash(b"fork")] * 11)
    with pytest.raises(LedgerError, match="does not extend"):
        verify_heads_consistent(old, forked, merkle.consistency_proof(4, hashes))
    with pytest.raises(LedgerError, match="larger than the new one"):
        verify_heads_consistent(new, old, [])
    with pytest.raises(LedgerError, match="different workers"):
        verify_heads_consistent(old, msgspec.structs.replace(new, workerId="00" * 32), [])
    with pytest.raises(LedgerError, match="not signed by worker"):
        verify_tree_head(msgspec.structs.replace(new, timestamp=new.timestamp + 1), key)
    events = trail(parts)
    assert [check_event(e, "0x" + ORDER.upper(), WORKER, key) for e in events] == [
        "node",
        "requester",
        "worker",
        "unchecked",
        "unchecked",
    ]
    with pytest.raises(LedgerError, match="names worker"):
        check_event(node_receipt(), ORDER, "00" * 32, key)
    unsigned = msgspec.structs.replace(events[2], update=msgspec.structs.replace(events[2].update, updateSignature=""))
    with pytest.raises(LedgerError, match="carries no signature"):
        check_event(unsigned, ORDER, WORKER, key)
    host = msgspec.structs.replace(unsigned, by="node")
    assert check_event(host, ORDER, WORKER, key) == "node"  # a failure the host decided: reported as unsigned


# --- every single-byte change either fails or means the same ---------------------------------------------


@pytest.fixture(scope="module")
def good(parts):
    doc = document(parts)
    return msgspec.json.encode(doc), verify_receipt_document(doc, parts.trust, at=AT)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.floats(0, 1, exclude_max=True), value=st.integers(0, 255))
def test_every_single_byte_change_fails_or_means_the_same(parts, good, position, value):
    data, verified = good
    i = int(position * len(data))
    if data[i] == value:
        return
    tampered = data[:i] + bytes([value]) + data[i + 1 :]
    try:
        doc = msgspec.json.decode(tampered, type=ReceiptDocument)
        result = verify_receipt_document(doc, parts.trust, at=AT)
    except (ValueError, AdytumError):  # msgspec's errors (ValueErrors), UTF-8 errors, refusals
        return
    assert result == verified, f"byte {i} changed to {value} and the receipt now says something else"


def test_whitespace_means_the_same(parts, good):
    data, verified = good
    spaced = json.dumps(json.loads(data), indent=3).encode()
    assert verify_receipt_document(msgspec.json.decode(spaced, type=ReceiptDocument), parts.trust, at=AT) == verified


# --- the CLI, with no node -------------------------------------------------------------------------------


def adytum(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "adytum", *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


def test_cli_receipt_verify_good_and_tampered(parts, good, tmp_path: Path):
    root = str(parts.root.directory / "root.pem")
    good_file = tmp_path / "receipt.json"
    good_file.write_bytes(good[0])
    out = adytum("receipt", "verify", str(good_file), "--trust-root", root)
    assert out.returncode == 0, out.stderr
    assert "verified" in out.stdout and ORDER in out.stdout and "signed by the worker" in out.stdout
    out = adytum("receipt", "verify", str(good_file), "--trust-root", root, "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["receipt"]["statusName"] == "application status 256"
    allowed = adytum("receipt", "verify", str(good_file), "--trust-root", root, "--allow-mrenclave", "00" * 32)
    assert allowed.returncode == 1 and "measurement" in allowed.stderr

    doc = json.loads(good[0])
    doc["treeHead"]["timestamp"] += 1
    bad_file = tmp_path / "tampered.json"
    bad_file.write_text(json.dumps(doc))
    out = adytum("receipt", "verify", str(bad_file), "--trust-root", root)
    assert out.returncode == 1 and "is not signed by worker" in out.stderr
    out = adytum("receipt", "verify", str(bad_file), "--trust-root", root, "--json")
    assert out.returncode == 1 and not json.loads(out.stdout)["ok"]
    bad_file.write_text("{not json")
    out = adytum("receipt", "verify", str(bad_file), "--trust-root", root)
    assert out.returncode == 1 and "not a receipt document" in out.stderr


def test_cli_ledger_verify_offline(parts, tmp_path: Path):
    hashes = ledger_of(trail(parts)).hashes
    old, new = sign_head(parts.keys.signing, hashes[:4]), sign_head(parts.keys.signing, hashes)
    files = {name: tmp_path / f"{name}.json" for name in ("old", "new", "proof", "forked", "key")}
    files["old"].write_bytes(msgspec.json.encode(old))
    files["new"].write_bytes(msgspec.json.encode(new))
    proof = {"firstSize": 4, "secondSize": 11, "path": [h.hex() for h in merkle.consistency_proof(4, hashes)]}
    files["proof"].write_text(json.dumps(proof))
    files["key"].write_text(parts.keys.verifying_key)
    offline = ("--proof", str(files["proof"]), "--verifying-key", str(files["key"]))

    out = adytum("ledger", "verify", str(files["old"]), str(files["new"]), *offline)
    assert out.returncode == 0 and "extends the tree of 4; head signatures checked" in out.stdout, out.stderr
    out = adytum("ledger", "verify", str(files["old"]), str(files["new"]), "--proof", str(files["proof"]), "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["signaturesChecked"] is False

    forked = sign_head(parts.keys.signing, [merkle.leaf_hash(b"rewritten")] * 11)
    files["forked"].write_bytes(msgspec.json.encode(forked))
    out = adytum("ledger", "verify", str(files["old"]), str(files["forked"]), *offline)
    assert out.returncode == 1 and "does not extend the tree of 4" in out.stderr
    out = adytum("ledger", "verify", str(files["new"]), str(files["old"]), *offline)
    assert out.returncode == 1 and "proves 4 -> 11 leaves, not 11 -> 4" in out.stderr
    files["key"].write_text(crypto.SigningKey().public_pem())
    out = adytum("ledger", "verify", str(files["old"]), str(files["new"]), *offline)
    assert out.returncode == 1 and "is not signed by worker" in out.stderr


# --- the SDK and the fetching commands, against a stand-in that answers the node's receipt methods -------


@pytest.fixture
def stand_in(parts):
    """A JSON-RPC endpoint answering WorkOrderReceiptDocument, LedgerHead, LedgerConsistencyProof and
    WorkerRetrieve with the parts built here (the real node's methods are tested with the node)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    doc = document(parts)
    hashes = ledger_of(trail(parts)).hashes
    old = sign_head(parts.keys.signing, hashes[:4], timestamp=1_800_000_000_000)
    answers = {
        "WorkOrderReceiptDocument": msgspec.to_builtins(doc),
        "LedgerHead": msgspec.to_builtins(doc.treeHead),
        "WorkerRetrieve": parts.record,
        "LedgerConsistencyProof": {
            "firstSize": 4,
            "secondSize": 11,
            "path": [h.hex() for h in merkle.consistency_proof(4, hashes)],
        },
    }

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            call = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if call["method"] in answers:
                reply = {"jsonrpc": "2.0", "id": call["id"], "result": answers[call["method"]]}
            else:
                reply = {"jsonrpc": "2.0", "id": call["id"], "error": {"code": 2, "message": "no such order"}}
            body = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", old
    server.shutdown()
    server.server_close()


def test_sdk_receipt_and_ledger(parts, stand_in):
    from adytum.client import Client

    uri, _ = stand_in
    with Client(uri, trust=parts.trust) as client:
        receipt = client.receipt(ORDER)
        assert receipt.status == 256 and receipt.worker_id == WORKER
        assert client.ledger_head() == receipt.head
        assert client.ledger_consistency(4, 11).secondSize == 11
    with Client(uri) as client, pytest.raises(UntrustedWorker):  # no root trusted: the receipt is not believed
        client.receipt(ORDER)


def test_cli_receipt_get_and_ledger_head(parts, stand_in, tmp_path: Path):
    uri, old = stand_in
    root = str(parts.root.directory / "root.pem")
    saved = tmp_path / "receipt.json"
    out = adytum("receipt", "get", ORDER, "--uri", uri, "--trust-root", root, "-o", str(saved))
    assert out.returncode == 0 and f"saved as received to {saved}" in out.stdout, out.stderr
    assert (
        adytum("receipt", "verify", str(saved), "--trust-root", root, "--at", "head").returncode == 1
    )  # a head of 2030: the report is years old by then
    assert adytum("receipt", "verify", str(saved), "--trust-root", root).returncode == 0
    out = adytum("receipt", "get", ORDER, "--uri", uri, "--trust-root", root, "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["document"]["format"] == RECEIPT_FORMAT
    out = adytum("receipt", "get", ORDER, "--uri", uri)
    assert out.returncode == 1 and "does not verify" in out.stderr and "--trust-root" in out.stderr

    head_file, old_file = tmp_path / "head.json", tmp_path / "old.json"
    out = adytum("ledger", "head", "--uri", uri, "-o", str(head_file))
    assert out.returncode == 0 and "11 leaves" in out.stdout and "signed by the worker's" in out.stdout, out.stderr
    old_file.write_bytes(msgspec.json.encode(old))
    out = adytum("ledger", "verify", str(old_file), str(head_file), "--uri", uri)
    assert out.returncode == 0 and "head signatures checked" in out.stdout, out.stderr
