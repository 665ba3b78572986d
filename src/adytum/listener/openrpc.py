"""The OpenRPC description of the API, served at GET /openrpc.json and by `rpc.discover`."""

from __future__ import annotations

from typing import Any

from .. import __version__

HEX = {"type": "string", "pattern": "^(0[xX])?[0-9a-fA-F]+$"}
ITEM = {"type": "object", "required": ["index", "data"], "properties": {
    "index": {"type": "integer", "minimum": 0}, "data": {"type": "string", "contentEncoding": "base64"},
    "dataHash": {"type": "string"}, "encryptedDataEncryptionKey": {"type": "string"},
    "iv": {"type": "string", "description": "hex 12-byte AES-GCM IV, unique per item"}}}
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

LOOKUP = {"type": "object", "properties": {
    "totalCount": {"type": "integer"}, "ids": {"type": "array", "items": HEX},
    "lookupTag": {"type": "string", "description": "pass to WorkerLookUpNext; empty when no ids remain"}}}
KEY = {"type": "object", "properties": {
    "workerId": HEX, "encryptionKey": {"type": "string"}, "encryptionKeyNonce": {"type": "string"},
    "tag": {"type": "string"}, "signature": {"type": "string", "contentEncoding": "base64"}}}
OPERATOR = {
    "operatorNonce": ({"type": "string", "pattern": "^[0-9]+$",
                       "description": "must exceed every nonce accepted before"}, True),
    "operatorSignature": ({"type": "string", "contentEncoding": "base64",
                           "description": "operator key, secp256k1 DER, see adytum.operator"}, True),
}

METHODS: dict[str, dict[str, Any]] = {
    "WorkOrderSubmit": {
        "summary": "Submit an encrypted work order; with responseTimeoutMSecs > 0 wait for its result.",
        "params": {
            "workOrderId": (HEX, True), "workerId": (HEX, True), "workloadId": (HEX, True),
            "requesterId": (HEX, True), "encryptedSessionKey": (HEX, True), "sessionKeyIv": (HEX, False),
            "requesterNonce": (HEX, True), "encryptedRequestHash": (HEX, True),
            "inData": ({"type": "array", "items": ITEM, "minItems": 1}, True),
            "outData": ({"type": "array", "items": ITEM}, False),
            "responseTimeoutMSecs": ({"type": "integer", "minimum": 0}, False),
            "payloadFormat": ({"type": "string", "enum": ["JSON-RPC"]}, False),
            "requesterSignature": ({"type": "string", "contentEncoding": "base64"}, False),
            "verifyingKey": ({"type": "string", "description": "PEM secp256k1 public key"}, False),
            "resultUri": ({"type": "string"}, False), "notifyUri": ({"type": "string"}, False),
            "workerEncryptionKey": (HEX, False), "dataEncryptionAlgorithm": ({"type": "string"}, False),
        },
        "result": {"type": "object", "description": "the signed work-order result"},
    },
    "WorkOrderGetResult": {
        "summary": "The result of a work order, or code 5 while it is scheduled or processing.",
        "params": {"workOrderId": (HEX, True)},
        "result": {"type": "object", "description": "the signed work-order result"},
    },
    "WorkerLookUp": {
        "summary": "Ids of the workers registered here with fresh attestation, optionally filtered, a page "
                   "at a time.",
        "params": {"workerType": ({"type": "integer", "enum": [1, 2, 3]}, False),
                   "organizationId": (HEX, False), "applicationTypeId": (HEX, False)},
        "result": LOOKUP,
    },
    "WorkerRetrieve": {
        "summary": "A worker's record: type, organization, details with its public keys, and status.",
        "params": {"workerId": (HEX, True)},
        "result": {"type": "object"},
    },
    "WorkerLookUpNext": {
        "summary": "The next page of a WorkerLookUp: pass the lookupTag it returned (empty tag: no more).",
        "params": {"workerType": ({"type": "integer", "enum": [1, 2, 3]}, False),
                   "organizationId": (HEX, False), "applicationTypeId": (HEX, False),
                   "lookUpTag": ({"type": "string"}, True)},
        "result": LOOKUP,
    },
    "WorkerRegister": {
        "summary": "Operator only: register a worker served elsewhere (its record as given).",
        "params": {"workerId": (HEX, True), "workerType": ({"type": "integer", "enum": [1, 2, 3]}, True),
                   "organizationId": (HEX, True), "applicationTypeId": (HEX, True),
                   "details": ({"type": "object"}, True), **OPERATOR},
        "result": {"type": "null"},
    },
    "WorkerUpdate": {
        "summary": "Operator only: replace fields of a worker's details (keys of a hosted worker excepted).",
        "params": {"workerId": (HEX, True), "details": ({"type": "object"}, True), **OPERATOR},
        "result": {"type": "null"},
    },
    "WorkerSetStatus": {
        "summary": "Operator only: 1 active, 2 off-line, 3 decommissioned, 4 compromised; only active workers "
                   "take work orders.",
        "params": {"workerId": (HEX, True), "status": ({"type": "integer", "enum": [1, 2, 3, 4]}, True), **OPERATOR},
        "result": {"type": "null"},
    },
    "EncryptionKeyGet": {
        "summary": "The worker's encryption key and nonce, signed by the worker's attested signing key over "
                   "SHA-256(workerId || encryptionKey || encryptionKeyNonce || tag).",
        "params": {"workerId": (HEX, True), "lastUsedKeyNonce": ({"type": "string"}, False),
                   "tag": ({"type": "string", "maxLength": 0}, False), "requesterId": ({"type": "string"}, False),
                   "signatureNonce": ({"type": "string"}, False), "signature": ({"type": "string"}, False)},
        "result": KEY,
    },
    "EncryptionKeySet": {
        "summary": "Publish a key the worker signed (same digest as EncryptionKeyGet); accepted only for the key "
                   "its enclaves hold, which is then re-attested.",
        "params": {"workerId": (HEX, True), "encryptionKey": ({"type": "string"}, True),
                   "encryptionKeyNonce": ({"type": "string"}, True), "tag": ({"type": "string"}, False),
                   "signatureNonce": ({"type": "string"}, False),
                   "signature": ({"type": "string", "contentEncoding": "base64"}, True)},
        "result": {"type": "null"},
    },
    "EncryptionKeyRotate": {
        "summary": "adytum extension, operator only: the enclaves make a new encryption key, re-attest and "
                   "publish it; orders encrypted to the previous key still complete.",
        "params": {"workerId": ({**HEX, "description": "default: the worker this node hosts"}, False), **OPERATOR},
        "result": KEY,
    },
    "PoolStatus": {
        "summary": "adytum extension: the worker's key-manager enclave and each work-order enclave, with "
                   "measurement, state (running or down), restarts and orders served.",
        "params": {},
        "result": {"type": "object", "required": ["workerId", "keyManager", "enclaves"],
                   "properties": {"workerId": HEX, "keyManager": {"type": "object"},
                                  "listening": {"type": "string"},
                                  "enclaves": {"type": "array", "items": {"type": "object"}}}},
    },
    "rpc.discover": {"summary": "This document.", "params": {}, "result": {"type": "object"}},
}


def document(served: list[str]) -> dict[str, Any]:
    methods = []
    for name in served:
        spec = METHODS[name]
        methods.append({
            "name": name, "summary": spec["summary"], "paramStructure": "by-name",
            "params": [{"name": p, "required": req, "schema": schema}
                       for p, (schema, req) in spec["params"].items()],
            "result": {"name": "result", "schema": spec["result"]},
            "errors": ERRORS,
        })
    return {"openrpc": "1.2.6",
            "info": {"title": "adytum EEA Off-Chain Trusted Compute API", "version": __version__},
            "servers": [{"name": "listener", "url": "http://localhost:1947/"}],
            "methods": methods}
