"""The OpenRPC description of the API, served at GET /openrpc.json and by `rpc.discover`.

Generated from the params and result structs in `adytum.protocol`, so it says what the methods decode.
Shared shapes (DataItem, the enums, the worker record's parts, the key and page results) are JSON Schemas
under `components.schemas`, referred to by `$ref` wherever they appear: msgspec emits nested structs and
enums as references anyway, and a reference keeps one copy of each shape however many methods use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import msgspec

from .. import __version__
from ..config import DEFAULT_PORT
from ..protocol import (
    EncryptionKey,
    GetResultParams,
    KeyGetParams,
    KeySetParams,
    LookUpNextParams,
    LookUpPage,
    LookUpParams,
    NoParams,
    PoolStatus,
    RegisterParams,
    RotateParams,
    RpcCode,
    SetStatusParams,
    UpdateParams,
    WorkerIdParams,
    WorkerRecord,
    WorkerStatus,
    WorkOrderParams,
    WorkOrderResult,
)
from ..protocol.limits import MAX_BATCH
from ..protocol.receipts import (
    ConsistencyProof,
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
    ReceiptUpdateParams,
    ReceiptUpdateRecord,
    ReceiptUpdateRetrieveParams,
    TreeHead,
)

SCHEMAS = "#/components/schemas/"
ERRORS = [
    {"code": 1, "message": "FAILED / UNKNOWN_ERROR"},
    {"code": 2, "message": "INVALID_PARAMETER_FORMAT_OR_VALUE"},
    {"code": 3, "message": "ACCESS_DENIED"},
    {"code": 4, "message": "INVALID_SIGNATURE"},
    {"code": 5, "message": "PENDING (data.workOrderId, data.state)"},
    {"code": 8, "message": "BUSY"},
    {"code": 9, "message": "INVALID_WORKLOAD"},
    {"code": 10, "message": "UNKNOWN_ERROR"},
]

#: Errors of the envelope, before any method runs (docs/api.md has the table): JSON-RPC 2.0's own codes.
ENVELOPE_ERRORS = {
    code.name.title().replace("_", ""): {"code": int(code), "message": message, "data": {"eeaCode": 2}}
    for code, message in (
        (RpcCode.PARSE_ERROR, "the body (or a batch) is not valid JSON"),
        (
            RpcCode.INVALID_REQUEST,
            f"not a JSON-RPC 2.0 request object; an empty batch, or one of over {MAX_BATCH} entries",
        ),
        (RpcCode.METHOD_NOT_FOUND, "the method is not served here"),
    )
}


@dataclass(frozen=True)
class Method:
    summary: str
    params: type[msgspec.Struct]  # by name: each field is one param
    result: Any  # a type msgspec can describe; None for methods that return null


_STATUSES = ", ".join(f"{s.value} {s.name.lower().replace('_', '-')}" for s in WorkerStatus)

METHODS: dict[str, Method] = {
    "WorkOrderSubmit": Method(
        "Submit an encrypted work order; with responseTimeoutMSecs > 0 wait for its result. adytum extension: "
        "requesterSequence asks for strict per-requester ordering (see its schema).",
        WorkOrderParams,
        WorkOrderResult,
    ),
    "WorkOrderGetResult": Method(
        "The result of a work order, or code 5 while it is scheduled or processing.", GetResultParams, WorkOrderResult
    ),
    "WorkerLookUp": Method(
        "Ids of the workers registered here with fresh attestation, optionally filtered, a page at a time.",
        LookUpParams,
        LookUpPage,
    ),
    "WorkerRetrieve": Method(
        "A worker's record: type, organization, details with its public keys, and status (a worker registered "
        "with WorkerRegister: the details as given).",
        WorkerIdParams,
        WorkerRecord,
    ),
    "WorkerLookUpNext": Method(
        "The next page of a WorkerLookUp: pass the lookupTag it returned (empty tag: no more).",
        LookUpNextParams,
        LookUpPage,
    ),
    "WorkerRegister": Method(
        "Operator only: register a worker served elsewhere (its record as given).", RegisterParams, None
    ),
    "WorkerUpdate": Method(
        "Operator only: replace fields of a worker's details (keys of a hosted worker excepted).", UpdateParams, None
    ),
    "WorkerSetStatus": Method(
        f"Operator only: {_STATUSES}; only active workers take work orders.", SetStatusParams, None
    ),
    "EncryptionKeyGet": Method(
        "The worker's encryption key and nonce, signed by the worker's attested signing key over "
        "SHA-256(workerId || encryptionKey || encryptionKeyNonce || tag).",
        KeyGetParams,
        EncryptionKey,
    ),
    "EncryptionKeySet": Method(
        "Publish a key the worker signed (same digest as EncryptionKeyGet); accepted only for the key its "
        "enclaves hold, which is then re-attested.",
        KeySetParams,
        None,
    ),
    "EncryptionKeyRotate": Method(
        "adytum extension, operator only: the enclaves make a new encryption key, re-attest and publish it; "
        "orders encrypted to the previous key still complete.",
        RotateParams,
        EncryptionKey,
    ),
    "PoolStatus": Method(
        "adytum extension: the worker's key-manager enclave and each work-order enclave, with measurement, "
        "state (running or down), restarts and orders served.",
        NoParams,
        PoolStatus,
    ),
    "WorkOrderReceiptCreate": Method(
        "A requester's own receipt for a work order accepted here (the node made a pending one already): "
        "workOrderRequestHash must be the order's, requesterSignature (base64 DER, SHA-256/SECP256K1) by "
        "receiptVerificationKey over SHA-256(workOrderId || workerServiceId || workerId || requesterId || "
        "receiptCreateStatus || workOrderRequestHash || requesterGeneratedNonce); once per order.",
        ReceiptCreateParams,
        None,
    ),
    "WorkOrderReceiptUpdate": Method(
        "Update a receipt, by its worker (signed by the worker's verification key) or its requester (signed by "
        "the receipt's receiptVerificationKey, for a node-made receipt the key the order was signed with), over "
        "SHA-256(workOrderId || updateType || updateData); updateType 0..4 or 255 and above.",
        ReceiptUpdateParams,
        None,
    ),
    "WorkOrderReceiptRetrieve": Method(
        "A work order's receipt as created, and its current status (0 pending, 1 completed, 2 processed, "
        "3 failed, 4 rejected).",
        ReceiptIdParams,
        ReceiptRecord,
    ),
    "WorkOrderReceiptUpdateRetrieve": Method(
        "One update of a receipt by 1-based updateIndex (4294967295: the last), counting only updaterId's "
        "updates when given; updateCount is how many were counted.",
        ReceiptUpdateRetrieveParams,
        ReceiptUpdateRecord,
    ),
    "WorkOrderReceiptLookUp": Method(
        "Ids of the receipts matching the filters (receiptStatus: the current status), 100 a page.",
        ReceiptLookUpParams,
        ReceiptLookUpPage,
    ),
    "WorkOrderReceiptLookUpNext": Method(
        "The next page of a WorkOrderReceiptLookUp: the same filters and lastLookUpTag = the lookupTag it "
        "returned (empty tag: no more).",
        ReceiptLookUpNextParams,
        ReceiptLookUpPage,
    ),
    "LedgerHead": Method(
        "adytum extension: the latest signed tree head of the receipt ledger (RFC 9162 tree of every receipt "
        "event), signed in the worker's enclave; code 5 while none is signed.",
        NoParams,
        TreeHead,
    ),
    "LedgerInclusionProof": Method(
        "adytum extension: the audit path of leaf leafIndex in the tree of treeSize leaves (default: the "
        "latest signed head's size; no larger).",
        LedgerProofParams,
        InclusionProof,
    ),
    "LedgerConsistencyProof": Method(
        "adytum extension: the proof that the tree of firstSize leaves is a prefix of the tree of secondSize "
        "(default: the latest signed head's size; no larger).",
        LedgerConsistencyParams,
        ConsistencyProof,
    ),
    "WorkOrderReceiptDocument": Method(
        "adytum extension: a work order's receipt trail, verifiable offline: the worker's record as "
        "WorkerRetrieve returns it, a signed tree head, and each event of the order with its inclusion proof "
        "in that head (waits a few seconds for a head to cover them; code 5 if none does yet).",
        ReceiptIdParams,
        ReceiptDocument,
    ),
    "rpc.discover": Method("This document.", NoParams, dict[str, Any]),
}


def document(served: list[str]) -> dict[str, Any]:
    """The OpenRPC 1.2.6 document of the `served` methods (each must be in METHODS); made once and shared,
    so callers serialise it and never change it."""
    return _document(tuple(served))


@cache
def _document(served: tuple[str, ...]) -> dict[str, Any]:
    specs = [METHODS[name] for name in served]
    schemas, components = msgspec.json.schema_components(
        [spec.params for spec in specs] + [spec.result for spec in specs], ref_template=SCHEMAS + "{name}"
    )
    params, results = schemas[: len(specs)], schemas[len(specs) :]
    methods = []
    for name, params_ref, result in zip(served, params, results, strict=True):
        struct = components[params_ref["$ref"].removeprefix(SCHEMAS)]
        required = set(struct.get("required", ()))
        methods.append(
            {
                "name": name,
                "summary": METHODS[name].summary,
                "paramStructure": "by-name",
                "params": [
                    {"name": param, "required": param in required, "schema": schema}
                    for param, schema in struct.get("properties", {}).items()
                ],
                "result": {"name": "result", "schema": result},
                "errors": ERRORS,
            }
        )
    return {
        "openrpc": "1.2.6",
        "info": {"title": "adytum EEA Off-Chain Trusted Compute API", "version": __version__},
        "servers": [{"name": "listener", "url": f"http://localhost:{DEFAULT_PORT}/"}],
        "methods": methods,
        "components": {"schemas": _referenced(methods, components), "errors": ENVELOPE_ERRORS},
    }


def _referenced(methods: list[dict[str, Any]], components: dict[str, Any]) -> dict[str, Any]:
    """The components the methods refer to, directly or through other components (the params structs
    themselves are spread into by-name params, so they are not among them)."""
    keep: dict[str, Any] = {}
    todo: list[Any] = [methods]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(SCHEMAS) and ref.removeprefix(SCHEMAS) not in keep:
                name = ref.removeprefix(SCHEMAS)
                keep[name] = components[name]
                todo.append(components[name])
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return dict(sorted(keep.items()))
