"""The worker registry and encryption-key methods' params and results (EEA v1.1 §5, as Avalon spells them).

Field names are the wire names (camelCase) so a struct reads like the JSON it decodes; unknown fields are
refused. The OpenRPC document is generated from these structs.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from .hexid import HexId, canonical
from .limits import MAX_HEX_ID, MAX_KEY, MAX_SIGNATURE
from .worker import WorkerStatus, WorkerType

Key = Annotated[str, Meta(max_length=MAX_KEY)]  # PEM
Short = Annotated[str, Meta(max_length=MAX_HEX_ID)]  # nonces, tags, ids the spec does not make hex
Signed = Annotated[str, Meta(max_length=MAX_SIGNATURE)]
Base64 = Annotated[str, Meta(extra_json_schema={"contentEncoding": "base64"})]
OperatorNonce = Annotated[Signed, Meta(description="decimal; must exceed every nonce the node accepted before")]
OperatorSignature = Annotated[
    Signed,
    Meta(description="base64 secp256k1 DER by the operator key over the method and params (see adytum.operator)"),
]


class LookUpParams(msgspec.Struct, forbid_unknown_fields=True):
    """`WorkerLookUp` params: every filter optional (and `WorkerLookUpNext` takes the same)."""

    workerType: WorkerType | None = None
    organizationId: HexId | None = None
    applicationTypeId: HexId | None = None

    def columns(self) -> dict[str, Any]:
        return {
            column: canonical(value) if isinstance(value, str) else value
            for column, value in (
                ("worker_type", self.workerType),
                ("organization_id", self.organizationId),
                ("application_type_id", self.applicationTypeId),
            )
            if value is not None
        }


class LookUpNextParams(LookUpParams, forbid_unknown_fields=True):
    lookUpTag: Annotated[Short | None, Meta(description="the lookupTag the previous page returned")] = None
    lookupTag: Annotated[Short | None, Meta(description="the same, as Avalon's handler spelled it")] = None


class LookUpPage(msgspec.Struct, forbid_unknown_fields=True):
    """A page of worker ids, in id order."""

    totalCount: int
    lookupTag: Annotated[str, Meta(description="pass to WorkerLookUpNext; empty when no ids remain")]
    ids: list[HexId]


class WorkerIdParams(msgspec.Struct, forbid_unknown_fields=True):
    workerId: HexId


class RegisterParams(msgspec.Struct, forbid_unknown_fields=True):
    workerId: HexId
    workerType: WorkerType
    organizationId: HexId
    applicationTypeId: HexId
    details: dict[str, Any]
    operatorNonce: OperatorNonce
    operatorSignature: OperatorSignature
    workerEncryptionKey: Annotated[
        Key | None, Meta(description="in Avalon's samples; ignored: the key belongs in details")
    ] = None


class UpdateParams(msgspec.Struct, forbid_unknown_fields=True):
    workerId: HexId
    details: dict[str, Any]
    operatorNonce: OperatorNonce
    operatorSignature: OperatorSignature


class SetStatusParams(msgspec.Struct, forbid_unknown_fields=True):
    workerId: HexId
    status: WorkerStatus
    operatorNonce: OperatorNonce
    operatorSignature: OperatorSignature


class RotateParams(msgspec.Struct, forbid_unknown_fields=True):
    operatorNonce: OperatorNonce
    operatorSignature: OperatorSignature
    workerId: Annotated[HexId | None, Meta(description="default: the worker this node hosts")] = None
    signingKey: Annotated[
        bool,
        Meta(
            description="adytum extension: rotate the signing key too; the old key signs a handover to the "
            "new one, listed in the record's signingKeyHandovers"
        ),
    ] = False


class KeyGetParams(msgspec.Struct, forbid_unknown_fields=True):
    """The optional fields may be null: Avalon's SDK (`encryption_key_get`) sends null for each one not given."""

    workerId: HexId
    lastUsedKeyNonce: Short | None = None
    tag: Annotated[Short | None, Meta(description="must be empty: a worker here has one encryption key")] = None
    requesterId: Short | None = None
    signatureNonce: Short | None = None
    signature: Signed | None = None


class KeySetParams(msgspec.Struct, forbid_unknown_fields=True):
    workerId: HexId
    encryptionKey: Key
    encryptionKeyNonce: Short
    signature: Annotated[Signed, Meta(extra_json_schema={"contentEncoding": "base64"})]
    tag: Short = ""
    signatureNonce: Short = ""


class EncryptionKey(msgspec.Struct, forbid_unknown_fields=True):
    """EncryptionKeyGet's and EncryptionKeyRotate's result: the key, signed by the worker's verification key."""

    # The signature is over SHA-256(workerId || encryptionKey || encryptionKeyNonce || tag).

    workerId: HexId
    encryptionKey: str  # PEM
    encryptionKeyNonce: str
    tag: str
    signature: Base64
