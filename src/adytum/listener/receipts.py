"""The EEA work-order receipt methods and adytum's ledger methods (head, proofs, the receipt document).

Every accepted order already has a node receipt (stored with it by WorkOrderSubmit, `node_receipt`); a
requester may create its own, signed (the Avalon flow). Updates come from the worker (its enclave, or over
the API signed by its published verification key) or from the order's requester (signed by the receipt's
`receiptVerificationKey`); anyone else is refused. Every create and update is a leaf of the ledger, whose
heads the worker's enclave signs: the proofs here are computed from the stored leaf hashes, so a client
checks them against a signed head and trusts nothing this process says.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

import msgspec

from .. import crypto
from ..ledger import merkle
from ..protocol import EeaError, NoParams, Status, WorkerRecord, WorkOrderParams, canonical, decode, request_hash
from ..protocol.receipts import (
    LAST_UPDATE,
    SIGNATURE_RULES,
    ConsistencyProof,
    EventProof,
    InclusionProof,
    LedgerConsistencyParams,
    LedgerProofParams,
    ReceiptCreateParams,
    ReceiptDocument,
    ReceiptIdParams,
    ReceiptLookUpNextParams,
    ReceiptLookUpPage,
    ReceiptLookUpParams,
    ReceiptRecord,
    ReceiptStatus,
    ReceiptUpdateParams,
    ReceiptUpdateRecord,
    ReceiptUpdateRetrieveParams,
    TreeHead,
    receipt_create_digest,
    receipt_update_digest,
)
from ..store import Duplicate, GroupCommit, NewReceipt, NewReceiptUpdate, Store, StoredHead, UnknownOrder
from .ports import KeyOps, Ledger

#: How long WorkOrderReceiptDocument waits for a signed head that covers the order's events.
COVER_TIMEOUT = 5.0


def node_receipt(p: WorkOrderParams, work_order_id: str, worker_id: str) -> NewReceipt:
    """The receipt stored with an accepted order: pending, made by the node, unsigned. It names the key the
    order was signed with (empty for an unsigned order): the requester's key for updates on its behalf."""
    params = ReceiptCreateParams(
        workOrderId=work_order_id,
        workerServiceId=worker_id,
        workerId=worker_id,
        requesterId=canonical(p.requester_id),
        receiptCreateStatus=ReceiptStatus.PENDING,
        workOrderRequestHash=crypto.b64encode(request_hash(p)),
        requesterGeneratedNonce=p.requester_nonce.lower(),
        receiptVerificationKey=p.verifying_key,
    )
    return NewReceipt(
        work_order_id, worker_id, worker_id, params.requesterId, ReceiptStatus.PENDING, "node", _json(params)
    )


@dataclass
class Receipts:
    reader: Store
    committer: GroupCommit
    keys: KeyOps
    ledger: Ledger | None  # the head signer; None: none here (receipts off), so documents never wait for a head
    enabled: bool = True
    page_size: int = 100
    cover_timeout: float = COVER_TIMEOUT

    def table(self) -> dict[str, Any]:
        return {
            "WorkOrderReceiptCreate": self.create,
            "WorkOrderReceiptUpdate": self.update,
            "WorkOrderReceiptRetrieve": self.retrieve,
            "WorkOrderReceiptUpdateRetrieve": self.update_retrieve,
            "WorkOrderReceiptLookUp": self.look_up,
            "WorkOrderReceiptLookUpNext": self.look_up_next,
            "LedgerHead": self.head,
            "LedgerInclusionProof": self.inclusion_proof,
            "LedgerConsistencyProof": self.consistency_proof,
            "WorkOrderReceiptDocument": self.document,
        }

    # -- the EEA receipt methods -------------------------------------------------------------------

    async def create(self, raw: bytes) -> Any:
        p = self._decode(raw, ReceiptCreateParams, "WorkOrderReceiptCreate")
        p = msgspec.structs.replace(
            p,
            workOrderId=canonical(p.workOrderId),
            workerServiceId=canonical(p.workerServiceId),
            workerId=canonical(p.workerId),
            requesterId=canonical(p.requesterId),
        )
        stored = self._receipt(p.workOrderId)
        if stored.workerId != p.workerId:
            _invalid(f"work order {p.workOrderId} was submitted to worker {stored.workerId}, not {p.workerId}")
        if stored.requesterId != p.requesterId:
            raise EeaError(
                Status.ACCESS_DENIED, f"work order {p.workOrderId} was submitted by requester {stored.requesterId}"
            )
        if p.workOrderRequestHash != stored.workOrderRequestHash:
            _invalid(f"workOrderRequestHash is not the hash of work order {p.workOrderId}'s request")
        _check_rules(p.signatureRules)
        try:
            crypto.check_verifying_key(p.receiptVerificationKey)
        except crypto.CryptoError:
            _invalid("receiptVerificationKey must be a PEM secp256k1 public key")
        _check_signature(p.receiptVerificationKey, receipt_create_digest(p), p.requesterSignature, "requesterSignature")
        receipt = NewReceipt(
            p.workOrderId, p.workerId, p.workerServiceId, p.requesterId, p.receiptCreateStatus, "requester", _json(p)
        )
        try:
            await self.committer.run(Store.create_receipt, receipt)
        except Duplicate:
            _invalid(f"work order {p.workOrderId} already has a receipt created by its requester")
        except UnknownOrder:
            _invalid(f"work order {p.workOrderId} is not known here")
        return None

    async def update(self, raw: bytes) -> Any:
        p = self._decode(raw, ReceiptUpdateParams, "WorkOrderReceiptUpdate")
        p = msgspec.structs.replace(p, workOrderId=canonical(p.workOrderId), updaterId=canonical(p.updaterId))
        if ReceiptStatus.REJECTED < p.updateType < 255:
            _invalid(f"updateType {p.updateType} is reserved (0..4 are the EEA types, 255 and above the application's)")
        _check_rules(p.signatureRules)
        receipt = self._receipt(p.workOrderId)
        by: Literal["worker", "requester"]
        if p.updaterId == receipt.workerId:
            by, key = "worker", self._worker_key(receipt.workerId)
        elif p.updaterId == receipt.requesterId:
            by, key = "requester", receipt.receiptVerificationKey
            if not key:
                raise EeaError(
                    Status.ACCESS_DENIED,
                    f"work order {p.workOrderId} was not signed, so no key may update its receipt for the requester",
                )
        else:
            raise EeaError(
                Status.ACCESS_DENIED,
                f"updaterId {p.updaterId} is neither the worker nor the requester of work order {p.workOrderId}",
            )
        if p.receiptVerificationKey and p.receiptVerificationKey != key:
            _invalid(f"receiptVerificationKey is not the {by}'s key this receipt is updated with")
        _check_signature(
            key, receipt_update_digest(p.workOrderId, p.updateType, p.updateData), p.updateSignature, "updateSignature"
        )
        update = NewReceiptUpdate(p.workOrderId, p.updaterId, p.updateType, by, _json(p))
        try:
            await self.committer.run(Store.add_receipt_update, update)
        except UnknownOrder:
            _invalid(f"work order {p.workOrderId} has no receipt here")
        return None

    async def retrieve(self, raw: bytes) -> Any:
        wo_id = canonical(self._decode(raw, ReceiptIdParams, "WorkOrderReceiptRetrieve").workOrderId)
        found = self.reader.receipt(wo_id)
        if found is None:
            self._no_receipt(wo_id)
        _, status, params = found
        return ReceiptRecord(msgspec.json.decode(params, type=ReceiptCreateParams), status)

    async def update_retrieve(self, raw: bytes) -> Any:
        p = self._decode(raw, ReceiptUpdateRetrieveParams, "WorkOrderReceiptUpdateRetrieve")
        wo_id = canonical(p.workOrderId)
        self._receipt(wo_id)
        updates = self.reader.receipt_updates(wo_id)
        if p.updaterId is not None:
            updater = canonical(p.updaterId)
            updates = [u for u in updates if u[2] == updater]
        of = f" by {canonical(p.updaterId)}" if p.updaterId is not None else ""
        if not updates:
            _invalid(f"work order {wo_id} has no receipt updates{of}")
        if p.updateIndex == LAST_UPDATE:
            chosen = updates[-1]
        elif p.updateIndex <= len(updates):
            chosen = updates[p.updateIndex - 1]
        else:
            _invalid(f"work order {wo_id} has {len(updates)} receipt update(s){of}, not {p.updateIndex}")
        return ReceiptUpdateRecord(msgspec.json.decode(chosen[4], type=ReceiptUpdateParams), len(updates))

    async def look_up(self, raw: bytes) -> Any:
        p = self._decode(raw, ReceiptLookUpParams, "WorkOrderReceiptLookUp")
        return self._page(p, "")

    async def look_up_next(self, raw: bytes) -> Any:
        p = self._decode(raw, ReceiptLookUpNextParams, "WorkOrderReceiptLookUpNext")
        tag = canonical(p.lastLookUpTag)
        if not tag or any(c not in "0123456789abcdef" for c in tag):
            _invalid("WorkOrderReceiptLookUpNext needs the lookupTag a WorkOrderReceiptLookUp (or LookUpNext) returned")
        return self._page(p, tag)

    def _page(self, p: ReceiptLookUpParams, after: str) -> ReceiptLookUpPage:
        """Ids in id order, a page at a time; the tag is the last id returned ("" when none remain)."""
        filters: dict[str, Any] = {
            column: canonical(value)
            for column, value in (
                ("worker_service_id", p.workerServiceId),
                ("worker_id", p.workerId),
                ("requester_id", p.requesterId),
            )
            if value is not None
        }
        if p.receiptStatus is not None:
            filters["status"] = p.receiptStatus
        total, ids = self.reader.receipts(filters, after=after, limit=self.page_size + 1)
        more = len(ids) > self.page_size
        ids = ids[: self.page_size]
        return ReceiptLookUpPage(total, ids[-1] if more else "", ids)

    # -- the ledger --------------------------------------------------------------------------------

    async def head(self, raw: bytes) -> Any:
        self._decode(raw, NoParams, "LedgerHead")
        return self._tree_head(self._latest())

    async def inclusion_proof(self, raw: bytes) -> Any:
        p = self._decode(raw, LedgerProofParams, "LedgerInclusionProof")
        size = self._size(p.treeSize)
        if p.leafIndex >= size:
            _invalid(f"leaf {p.leafIndex} is not in the tree of {size} leaves")
        path = await _off_loop(merkle.inclusion_proof, p.leafIndex, self.reader.ledger_hashes(0, size))
        return InclusionProof(p.leafIndex, size, [h.hex() for h in path])

    async def consistency_proof(self, raw: bytes) -> Any:
        p = self._decode(raw, LedgerConsistencyParams, "LedgerConsistencyProof")
        second = self._size(p.secondSize)
        if p.firstSize > second:
            _invalid(f"firstSize {p.firstSize} is beyond secondSize {second}: a tree only grows")
        path = await _off_loop(merkle.consistency_proof, p.firstSize, self.reader.ledger_hashes(0, second))
        return ConsistencyProof(p.firstSize, second, [h.hex() for h in path])

    async def document(self, raw: bytes) -> Any:
        wo_id = canonical(self._decode(raw, ReceiptIdParams, "WorkOrderReceiptDocument").workOrderId)
        receipt = self._receipt(wo_id)
        leaves = self.reader.ledger_leaves_of(wo_id)
        if not leaves:
            _invalid(f"work order {wo_id} has a receipt but no ledger leaves")
        size = leaves[-1].index + 1
        head = self.reader.head_covering(size)
        if head is None and self.ledger is not None:
            try:
                await asyncio.wait_for(self.ledger.cover(size), self.cover_timeout)
            except TimeoutError:
                pass
            head = self.reader.head_covering(size)
        if head is None:
            raise EeaError(
                Status.PENDING,
                f"no signed tree head covers the {size} leaves of work order {wo_id}'s events yet; retry shortly",
                {"workOrderId": wo_id, "treeSize": size},
            )
        hashes = self.reader.ledger_hashes(0, head.tree_size)
        events = [
            EventProof(
                leaf.index,
                crypto.b64encode(leaf.data),
                [h.hex() for h in await _off_loop(merkle.inclusion_proof, leaf.index, hashes)],
            )
            for leaf in leaves
        ]
        record = self._worker_record(receipt.workerId)
        return ReceiptDocument("adytum-receipt/1", wo_id, record, self._tree_head(head), events)

    # -- helpers ---------------------------------------------------------------------------------------

    def _decode(self, raw: bytes, kind: type[Any], method: str) -> Any:
        """The params, once receipts are known to be on (every method here answers code 2 when off)."""
        if not self.enabled:
            _invalid("receipts are off on this node")
        return decode(raw, kind, method, Status.INVALID_PARAMETER)

    def _receipt(self, wo_id: str) -> ReceiptCreateParams:
        found = self.reader.receipt(wo_id)
        if found is None:
            self._no_receipt(wo_id)
        return msgspec.json.decode(found[2], type=ReceiptCreateParams)

    def _no_receipt(self, wo_id: str) -> NoReturn:
        if self.reader.state(wo_id) is None:
            _invalid(f"work order {wo_id} is not known here")
        _invalid(f"work order {wo_id} has no receipt here (it was accepted while receipts were off)")

    def _latest(self) -> StoredHead:
        head = self.reader.latest_head()
        if head is None:
            raise EeaError(Status.PENDING, "no tree head has been signed yet; retry shortly")
        return head

    def _size(self, asked: int | None) -> int:
        """A tree size to prove in: the one asked for, which no signed head may be smaller than."""
        latest = self._latest().tree_size
        if asked is None:
            return latest
        if asked > latest:
            _invalid(f"tree size {asked} is beyond the latest signed head, of {latest} leaves")
        return asked

    def _tree_head(self, head: StoredHead) -> TreeHead:
        return TreeHead(self.keys.worker_id, head.tree_size, head.root.hex(), head.timestamp_ms, head.signature)

    def _worker_record(self, worker_id: str) -> dict[str, Any]:
        """The worker's record as WorkerRetrieve returns it."""
        row = self.reader.worker(worker_id)
        if row is None:
            raise EeaError(Status.FAILED, f"worker {worker_id} of this receipt is no longer registered here")
        record: dict[str, Any] = json.loads(row.record)
        record["status"] = row.status
        return record

    def _worker_key(self, worker_id: str) -> str:
        row = self.reader.worker(worker_id)
        try:
            if row is None:
                raise ValueError("not registered")
            return msgspec.json.decode(row.record, type=WorkerRecord).details.worker_type_data.verification_key
        except (ValueError, msgspec.ValidationError, msgspec.DecodeError):
            raise EeaError(Status.FAILED, f"worker {worker_id} has no published verification key here") from None


def _json(params: msgspec.Struct) -> str:
    return msgspec.json.encode(params).decode()


def _invalid(message: str) -> NoReturn:
    raise EeaError(Status.INVALID_PARAMETER, message)


def _check_rules(rules: str) -> None:
    if rules != SIGNATURE_RULES:
        _invalid(f"signatureRules {rules!r} is not supported (use {SIGNATURE_RULES})")


def _check_signature(key: str, digest: bytes, signature: str, field: str) -> None:
    try:
        crypto.verify_digest(key, digest, crypto.b64decode(signature))
    except crypto.CryptoError as exc:
        raise EeaError(Status.INVALID_SIGNATURE, f"{field} does not verify: {exc}") from None


async def _off_loop(proof: Callable[[int, list[bytes]], list[bytes]], size: int, hashes: list[bytes]) -> list[bytes]:
    """A proof is computed from every leaf hash up to its tree (O(n) hashing: about 0.1 s per 100,000 leaves
    here): in a worker thread, so that the event loop keeps serving meanwhile."""
    return await asyncio.to_thread(proof, size, hashes)
