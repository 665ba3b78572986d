"""A work order's receipt trail, verified offline from its receipt document (`WorkOrderReceiptDocument`).

The document carries the worker's record, a tree head and each event of the order with its inclusion proof.
It is believed only as far as it checks out against what the requester trusts: the record's keys and
attestation (`WorkerInfo.verified`), the head's signature by the attested verification key, and for every
event its inclusion in that head, its order, its signature and its place in the trail. No node is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from .. import crypto
from ..attestation import Verdict
from ..ledger.verify import (
    LedgerError,
    Signer,
    check_event,
    hashes_from_hex,
    verify_event_inclusion,
    verify_tree_head,
)
from ..protocol import canonical
from ..protocol.receipts import (
    RECEIPT_FORMAT,
    Event,
    EventProof,
    ReceiptCreateParams,
    ReceiptDocument,
    ReceiptEvent,
    ReceiptStatus,
    ReceiptUpdateParams,
    TreeHead,
    decode_event,
)
from .worker import Trust, WorkerInfo

_VOUCHED = {
    "worker": "signed by the worker",
    "requester": "signed by the requester",
    "node": "unsigned: the node's word",
    "named": "signed by the key the node's receipt names as the order's (the node's word that it is the requester's)",
    "unchecked": "by the requester, signature not checked (the order's verifying key was not given)",
}


@dataclass(frozen=True)
class Statement:
    """One event of the trail, and who vouches for it."""

    leaf_index: int
    kind: Literal["create", "update"]
    update_index: int  # 1-based for an update, 0 for a create
    by: str  # what the event says: "node", "requester" or "worker"
    signed_by: Signer


@dataclass(frozen=True)
class VerifiedReceipt:
    """What a receipt document proves, once every check passed."""

    work_order_id: str
    worker_id: str
    verdict: Verdict | None  # the worker's attestation, as the requester's Trust judged it
    receipt: ReceiptCreateParams  # the receipt in force: the requester's if it made one, else the node's
    updates: tuple[ReceiptUpdateParams, ...]
    status: int  # the last update's type, or the receipt's create status
    statements: tuple[Statement, ...]
    head: TreeHead

    @property
    def status_name(self) -> str:
        return status_name(self.status)

    def describe(self) -> str:
        head = self.head
        when = datetime.fromtimestamp(head.timestamp / 1000, UTC).isoformat(timespec="seconds")
        attested = f", attested ({self.verdict.kind})" if self.verdict else ""
        lines = [
            f"work order {self.work_order_id}: {self.status_name}",
            f"  worker {self.worker_id}{attested}",
            f"  in its ledger's tree of {head.treeSize} leaves, root {head.rootHash[:16]}…, signed {when}",
        ]
        for s in self.statements:
            what = "receipt created" if s.kind == "create" else f"update {s.update_index}"
            if s.kind == "update":
                what += f" {status_name(self.updates[s.update_index - 1].updateType)}"
            lines.append(f"  leaf {s.leaf_index}: {what} by the {s.by}, {_VOUCHED[s.signed_by]}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "workOrderId": self.work_order_id,
            "workerId": self.worker_id,
            "status": self.status,
            "statusName": self.status_name,
            "attestation": self.verdict.to_json() if self.verdict else None,
            "treeHead": msgspec.to_builtins(self.head),
            "receipt": msgspec.to_builtins(self.receipt),
            "updates": msgspec.to_builtins(self.updates),
            "statements": [
                {
                    "leafIndex": s.leaf_index,
                    "kind": s.kind,
                    "updateIndex": s.update_index,
                    "by": s.by,
                    "signedBy": s.signed_by,
                }
                for s in self.statements
            ],
        }


def status_name(status: int) -> str:
    try:
        return ReceiptStatus(status).name
    except ValueError:
        return f"status {status} (reserved)" if status < 255 else f"application status {status}"


def verify_receipt_document(
    doc: ReceiptDocument, trust: Trust, *, at: datetime | None = None, order_verifying_key: str | None = None
) -> VerifiedReceipt:
    """Check the whole document; `UntrustedWorker` (the record) or `LedgerError` (the rest) name what failed.

    `at`: when to judge the attestation (default now; pass the head's time to check an old receipt).
    `order_verifying_key`: the key the order was signed with, to check a requester's updates to a node receipt.
    """
    if doc.format != RECEIPT_FORMAT:
        raise LedgerError(f"not a receipt document of format {RECEIPT_FORMAT} (it says {doc.format!r})")
    order, worker_id = canonical(doc.workOrderId), canonical(doc.treeHead.workerId)
    worker = WorkerInfo.verified(worker_id, doc.workerRecord, trust, at)
    verify_tree_head(doc.treeHead, worker.verifying_keys)
    if not doc.events:
        raise LedgerError(f"the document holds no event of work order {order[:16]}…")
    trail = _Trail(order, worker, order_verifying_key)
    previous = -1
    for proof in doc.events:
        if proof.leafIndex <= previous:
            raise LedgerError(f"events are not in ledger order: leaf {proof.leafIndex} follows leaf {previous}")
        previous = proof.leafIndex
        trail.add(proof.leafIndex, _included_event(proof, doc.treeHead))
    if trail.receipt is None:  # unreachable: an update before any create is refused by `add`
        raise LedgerError(f"the document holds no receipt of work order {order[:16]}…")
    return VerifiedReceipt(
        work_order_id=order,
        worker_id=worker_id,
        verdict=worker.verdict,
        receipt=trail.receipt,
        updates=tuple(trail.updates),
        status=trail.updates[-1].updateType if trail.updates else trail.receipt.receiptCreateStatus,
        statements=tuple(trail.statements),
        head=doc.treeHead,
    )


def _included_event(proof: EventProof, head: TreeHead) -> Event:
    where = f"leaf {proof.leafIndex}"
    try:
        data = crypto.b64decode(proof.leaf)
    except crypto.CryptoError:
        raise LedgerError(f"{where}: the leaf data is not base64") from None
    verify_event_inclusion(data, proof.leafIndex, hashes_from_hex(proof.path, where), head)
    try:
        return decode_event(data)
    except ValueError as exc:  # msgspec's errors, and bytes that are not UTF-8
        raise LedgerError(f"{where}: the leaf is not a receipt event ({exc})") from None


class _Trail:
    """The receipt's events in ledger order: one create (or a node's then the requester's), updates 1..n."""

    def __init__(self, order: str, worker: WorkerInfo, order_verifying_key: str | None) -> None:
        self.order, self.worker = order, worker
        self.requester_key = order_verifying_key
        self.named_key = ""  # the order's key as a node-made receipt names it
        self.receipt: ReceiptCreateParams | None = None
        self.requester_created = False
        self.updates: list[ReceiptUpdateParams] = []
        self.statements: list[Statement] = []

    def add(self, leaf: int, event: Event) -> None:
        named = not self.requester_key and bool(self.named_key)
        key = self.requester_key or self.named_key or None
        try:
            signer = check_event(event, self.order, self.worker.worker_id, self.worker.verifying_keys, key)
        except LedgerError as exc:
            raise LedgerError(f"leaf {leaf}: {exc}") from None
        if signer == "requester" and named:
            signer = "named"
        if isinstance(event, ReceiptEvent):
            self._create(leaf, event, signer)
            return
        if self.receipt is None:
            raise LedgerError(f"leaf {leaf}: update {event.index} comes before the receipt was created")
        expected = len(self.updates) + 1
        if event.index != expected:
            raise LedgerError(f"update {expected} is missing: leaf {leaf} holds update {event.index}")
        if event.by == "requester" and canonical(event.update.updaterId) != canonical(self.receipt.requesterId):
            raise LedgerError(f"leaf {leaf}: update {event.index} claims the requester but names another updater")
        self.updates.append(event.update)
        self.statements.append(Statement(leaf, "update", event.index, event.by, signer))

    def _create(self, leaf: int, event: ReceiptEvent, signer: Signer) -> None:
        if self.receipt is not None and (event.by != "requester" or self.requester_created):
            raise LedgerError(f"leaf {leaf}: a second receipt for the order (by the {event.by})")
        self.receipt = event.receipt
        if event.by == "node":
            self.named_key = event.receipt.receiptVerificationKey
        if event.by == "requester":
            self.requester_created = True
            self.requester_key = event.receipt.receiptVerificationKey
        self.statements.append(Statement(leaf, "create", 0, event.by, signer))
