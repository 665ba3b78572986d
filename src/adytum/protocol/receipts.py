"""EEA v1.1 work-order receipts and adytum's receipt ledger, as typed structs, with the digests that are signed.

Receipt methods (EEA §7): a receipt is created for a work order (by the node when the order is accepted, or
by its requester), then updated (by the worker when the order completes or fails, or by the requester).
Every create and update is one leaf of the ledger, an RFC 9162 Merkle log; the worker's enclave signs its
tree heads with the worker's attested verification key (`tree_head_digest`).
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from ..crypto import sha256
from .hexid import HexId
from .limits import MAX_HEX_ID, MAX_KEY, MAX_NAME, MAX_SIGNATURE, MAX_TEXT

Text = Annotated[str, Meta(max_length=MAX_TEXT)]
Key = Annotated[str, Meta(max_length=MAX_KEY)]  # PEM
Signature = Annotated[str, Meta(max_length=MAX_SIGNATURE)]
Name = Annotated[str, Meta(max_length=MAX_NAME)]
#: updateIndex that means "the last update" (Avalon's and the contract's LASTUPDATE).
LAST_UPDATE = 0xFFFFFFFF
SIGNATURE_RULES = "SHA-256/SECP256K1"
RECEIPT_FORMAT = "adytum-receipt/1"


class ReceiptStatus(IntEnum):
    """EEA ReceiptCreateStatus / updateType (5..254 reserved; 255 and above application specific)."""

    PENDING = 0
    COMPLETED = 1
    PROCESSED = 2
    FAILED = 3
    REJECTED = 4


ReceiptCode = Annotated[int, Meta(ge=0, le=4)]


# --- the six EEA receipt methods --------------------------------------------------------------------


class ReceiptCreateParams(msgspec.Struct, forbid_unknown_fields=True):
    """WorkOrderReceiptCreate (also the stored receipt: a node-made one has no signature and no key)."""

    workOrderId: HexId
    workerServiceId: HexId
    workerId: HexId
    requesterId: HexId
    receiptCreateStatus: ReceiptCode
    workOrderRequestHash: Annotated[str, Meta(max_length=128)]  # base64 of the order's request hash
    requesterGeneratedNonce: Annotated[str, Meta(max_length=MAX_SIGNATURE)]
    requesterSignature: Signature = ""  # base64 DER, by receiptVerificationKey over `receipt_create_digest`
    signatureRules: Name = SIGNATURE_RULES
    receiptVerificationKey: Key = ""  # PEM secp256k1 public key


class ReceiptUpdateParams(msgspec.Struct, forbid_unknown_fields=True):
    """WorkOrderReceiptUpdate (also the stored update)."""

    workOrderId: HexId
    updaterId: HexId
    updateType: Annotated[int, Meta(ge=0, le=2**32 - 1)]
    updateData: Text
    updateSignature: Signature  # base64 DER over `receipt_update_digest`
    signatureRules: Name = SIGNATURE_RULES
    receiptVerificationKey: Key = ""


class ReceiptIdParams(msgspec.Struct, forbid_unknown_fields=True):
    workOrderId: HexId


class ReceiptUpdateRetrieveParams(msgspec.Struct, forbid_unknown_fields=True):
    workOrderId: HexId
    updateIndex: Annotated[int, Meta(ge=1, le=LAST_UPDATE)]  # 1-based; LAST_UPDATE: the last one
    updaterId: HexId | None = None  # count only this updater's updates


class ReceiptLookUpParams(msgspec.Struct, forbid_unknown_fields=True):
    workerServiceId: HexId | None = None
    workerId: HexId | None = None
    requesterId: HexId | None = None
    receiptStatus: ReceiptCode | None = None


class ReceiptLookUpNextParams(ReceiptLookUpParams, forbid_unknown_fields=True):
    lastLookUpTag: Annotated[str, Meta(max_length=MAX_HEX_ID)] = ""


class ReceiptRecord(msgspec.Struct):
    """WorkOrderReceiptRetrieve's result: the receipt as created, and its current status."""

    receipt: ReceiptCreateParams
    receiptCurrentStatus: int


class ReceiptUpdateRecord(msgspec.Struct):
    """WorkOrderReceiptUpdateRetrieve's result: the update asked for, and how many there are."""

    update: ReceiptUpdateParams
    updateCount: int


class ReceiptLookUpPage(msgspec.Struct):
    totalCount: int
    lookupTag: str  # pass as lastLookUpTag to WorkOrderReceiptLookUpNext; empty when no ids remain
    ids: list[str]


# --- the ledger ----------------------------------------------------------------------------------


class ReceiptEvent(msgspec.Struct, tag_field="kind", tag="create"):
    """A leaf of the ledger: the leaf data is this struct as JSON (`encode_event`), hashed per RFC 9162."""

    workOrderId: str
    receipt: ReceiptCreateParams
    by: Literal["node", "requester"]  # a node-made receipt records the accepted order; a requester's is signed


class ReceiptUpdateEvent(msgspec.Struct, tag_field="kind", tag="update"):
    workOrderId: str
    index: int  # 1-based, in the order of the updates of this receipt
    update: ReceiptUpdateParams
    by: Literal["worker", "requester", "node"]  # "node": a failure the host decided, unsigned


Event = ReceiptEvent | ReceiptUpdateEvent


class TreeHead(msgspec.Struct, forbid_unknown_fields=True):
    """A signed tree head: the ledger's size and root at a time, signed in the worker's enclave."""

    workerId: str
    treeSize: Annotated[int, Meta(ge=0)]
    rootHash: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
    timestamp: Annotated[int, Meta(ge=0)]  # milliseconds since the epoch, as the host told the enclave
    signature: Signature  # base64 DER by the worker's verification key over `tree_head_digest`


class LedgerProofParams(msgspec.Struct, forbid_unknown_fields=True):
    """LedgerInclusionProof: the audit path of a leaf in the tree of `treeSize` (default: the latest head)."""

    leafIndex: Annotated[int, Meta(ge=0)]
    treeSize: Annotated[int, Meta(ge=1)] | None = None


class LedgerConsistencyParams(msgspec.Struct, forbid_unknown_fields=True):
    firstSize: Annotated[int, Meta(ge=0)]
    secondSize: Annotated[int, Meta(ge=0)] | None = None  # default: the latest head


class InclusionProof(msgspec.Struct):
    leafIndex: int
    treeSize: int
    path: list[str]  # hex hashes


class ConsistencyProof(msgspec.Struct):
    firstSize: int
    secondSize: int
    path: list[str]


class EventProof(msgspec.Struct):
    leafIndex: int
    leaf: str  # base64 of the leaf data (an encoded Event)
    path: list[str]  # inclusion proof in the document's tree head


class ReceiptDocument(msgspec.Struct):
    """Everything needed to verify a work order's receipt trail offline (WorkOrderReceiptDocument)."""

    format: Literal["adytum-receipt/1"]
    workOrderId: str
    workerRecord: dict[str, Any]  # WorkerRetrieve's result: the worker's keys and attestation evidence
    treeHead: TreeHead
    events: list[EventProof]


_event_encoder = msgspec.json.Encoder()
_event_decoder: msgspec.json.Decoder[Event] = msgspec.json.Decoder(Event)


def encode_event(event: Event) -> bytes:
    return _event_encoder.encode(event)


def decode_event(data: bytes) -> Event:
    return _event_decoder.decode(data)


# --- what is signed ------------------------------------------------------------------------------


def receipt_create_digest(r: ReceiptCreateParams) -> bytes:
    """EEA / Avalon: SHA-256 of workOrderId, workerServiceId, workerId, requesterId, the status (decimal),
    workOrderRequestHash and requesterGeneratedNonce, concatenated as text."""
    return sha256(
        (
            r.workOrderId
            + r.workerServiceId
            + r.workerId
            + r.requesterId
            + str(r.receiptCreateStatus)
            + r.workOrderRequestHash
            + r.requesterGeneratedNonce
        ).encode()
    )


def receipt_update_digest(work_order_id: str, update_type: int, update_data: str) -> bytes:
    """EEA / Avalon: SHA-256 of workOrderId, updateType (decimal) and updateData, concatenated as text."""
    return sha256((work_order_id + str(update_type) + update_data).encode())


_HEAD = struct.Struct(">QQ")


def tree_head_digest(worker_id: str, tree_size: int, root: bytes, timestamp_ms: int) -> bytes:
    """What a tree head's signature signs: domain-separated from every other use of the worker's key."""
    return sha256(b"adytum-tree-head/1\0" + worker_id.encode() + b"\0" + _HEAD.pack(tree_size, timestamp_ms) + root)
