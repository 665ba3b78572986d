"""EEA v1.1 wire messages as typed, strictly validated structs.

Field names are the spec's camelCase; decoding rejects unknown fields, wrong types and malformed
hex, so everything past `decode_*` can trust shapes (not contents: signatures and hashes are checked
in the enclave).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta

from ..crypto import KeySuite
from .errors import EeaError, RpcCode, Status, envelope_error
from .hexid import HexId, LongHex, OptHex, canonical
from .limits import MAX_BATCH, MAX_DATA, MAX_ITEMS, MAX_IV, MAX_KEY, MAX_NAME, MAX_SIGNATURE, MAX_URI

T = TypeVar("T")
Index = Annotated[int, Meta(ge=0, le=2**31 - 1)]
Data = Annotated[str, Meta(max_length=MAX_DATA)]
Iv = Annotated[str, Meta(max_length=MAX_IV)]
Key = Annotated[str, Meta(max_length=MAX_KEY)]
Name = Annotated[str, Meta(max_length=MAX_NAME)]
Uri = Annotated[str, Meta(max_length=MAX_URI)]
Signature = Annotated[str, Meta(max_length=MAX_SIGNATURE)]


class DataItem(msgspec.Struct, rename="camel", forbid_unknown_fields=True, omit_defaults=False):
    """One inData/outData item. `data` is base64; an empty or "null" key means the session key."""

    index: Index
    data: Data
    data_hash: Iv = ""
    encrypted_data_encryption_key: Key = ""
    iv: Iv = ""


class WorkOrderParams(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """`WorkOrderSubmit` params (EEA v1.1 §6.1.1, plus Avalon's `verifyingKey` and adytum's `requesterSequence`
    and `keyEncryptionAlgorithm`).

    `requesterSequence` (an EEA extension, 0 or absent: none) asks for strict ordering: the enclave runs the
    order only if it is exactly one more than the last sequence number of the key that signed it, and the
    signature then covers it (`protocol.hashing.strict_order_digest`), so the host can neither drop nor change it."""

    work_order_id: HexId
    worker_id: HexId
    workload_id: HexId
    requester_id: HexId
    encrypted_session_key: LongHex
    requester_nonce: HexId
    encrypted_request_hash: HexId
    in_data: Annotated[list[DataItem], Meta(min_length=1, max_length=MAX_ITEMS)]
    response_timeout_m_secs: Annotated[int, Meta(ge=0, le=3_600_000)] = 0
    payload_format: Name = "JSON-RPC"
    result_uri: Uri = ""
    notify_uri: Uri = ""
    worker_encryption_key: OptHex = ""
    data_encryption_algorithm: Name = "AES-GCM-256"
    session_key_iv: OptHex = ""
    requester_signature: Signature = ""
    verifying_key: Key = ""
    out_data: Annotated[list[DataItem], Meta(max_length=MAX_ITEMS)] = []
    requester_sequence: Annotated[
        int,
        Meta(
            ge=0,
            le=2**63 - 1,
            description="adytum extension (EEA: none): strict per-requester ordering. 1, 2, 3, ... for the key that "
            "signs the order; the enclave runs it only as that key's next sequence number (a gap, a reorder or a "
            "repeat is refused with code 2, naming the next), checked against the key manager's counters, so a "
            "work-order enclave restart does not reopen a replay. Needs requesterSignature, which then signs "
            "SHA-256('adytum-strict-order/1' || 0x00 || requestHash || sequence as 8 bytes big-endian) "
            "instead of the request hash. 0 or absent: the EEA's default mode (nonces in any order).",
        ),
    ] = 0
    key_encryption_algorithm: Annotated[
        KeySuite,
        Meta(
            description="adytum extension (EEA: a work order does not say; the name is the worker record's field): "
            "how encryptedSessionKey wraps the session key. Absent: RSA-OAEP-3072, as from every Avalon client. "
            "An HPKE suite wraps it to the worker's key of that suite (workerTypeData.hpkeEncryptionKeys), "
            "encryptedSessionKey being hex of enc || ciphertext, with the HPKE info binding the order "
            "('adytum-session-key/1' then workerId, workOrderId, workloadId, requesterId and requesterNonce, "
            "each lower-case hex without 0x, preceded by its length as 4 bytes big-endian). A suite the worker "
            "does not offer is refused with code 2.",
        ),
    ] = KeySuite.RSA_OAEP_3072


class WorkOrderResult(msgspec.Struct, rename="camel", forbid_unknown_fields=True, omit_defaults=True):
    """The signed `result` of a work order (EEA v1.1 §6.1.3)."""

    work_order_id: str
    workload_id: str
    worker_id: str
    requester_id: str
    worker_nonce: str
    worker_signature: str
    out_data: list[DataItem]
    ext_verification_key: str = ""
    ext_verification_key_signature: str = ""


class GetResultParams(msgspec.Struct, forbid_unknown_fields=True):
    """`WorkOrderGetResult` params (wire names, like the registry's)."""

    workOrderId: HexId


class NoParams(msgspec.Struct, forbid_unknown_fields=True):
    """Params of a method that takes none (`{}` or absent)."""


class RpcRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A JSON-RPC 2.0 request; `params` stays raw so the enclave sees the requester's exact bytes. Without an
    `id` it is a notification: it runs, and is not answered (JSON-RPC 2.0 §4.1)."""

    jsonrpc: Literal["2.0"]
    method: Annotated[str, Meta(max_length=64)]
    id: int | str | None | msgspec.UnsetType = msgspec.UNSET
    params: msgspec.Raw = msgspec.Raw(b"{}")

    @property
    def notification(self) -> bool:
        return self.id is msgspec.UNSET


class _NotifyUri(msgspec.Struct, rename="camel"):
    notify_uri: str = ""


_params_decoder = msgspec.json.Decoder(WorkOrderParams)
_notify_decoder = msgspec.json.Decoder(_NotifyUri)
_result_decoder = msgspec.json.Decoder(WorkOrderResult)
_rpc_decoder = msgspec.json.Decoder(RpcRequest)
_batch_decoder = msgspec.json.Decoder(list[msgspec.Raw])
encode = msgspec.json.encode


#: What decoding untrusted JSON can raise besides a schema error: msgspec raises UnicodeDecodeError for invalid
#: UTF-8 in a string and RecursionError for nesting past its depth limit.
MALFORMED = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


def reason(exc: Exception) -> str:
    """What is wrong with a body that did not decode, in words (not Python's)."""
    if isinstance(exc, RecursionError):
        return "JSON nested too deeply"
    if isinstance(exc, UnicodeDecodeError):
        return f"a string is not valid UTF-8 ({exc.reason})"
    return str(exc)


def _explain(exc: Exception, what: str) -> EeaError:
    return EeaError(Status.INVALID_PARAMETER, f"invalid {what}: {reason(exc)}")


def decode_rpc(body: bytes) -> RpcRequest:
    try:
        return _rpc_decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise envelope_error(RpcCode.INVALID_REQUEST, f"invalid JSON-RPC envelope: {reason(exc)}") from None
    except MALFORMED as exc:
        raise envelope_error(RpcCode.PARSE_ERROR, f"request is not valid JSON: {reason(exc)}") from None


def is_batch(body: bytes) -> bool:
    """Whether a body is a JSON-RPC batch: a JSON array (JSON-RPC 2.0 §6)."""
    return body.lstrip(b" \t\r\n")[:1] == b"["


def decode_batch(body: bytes) -> list[bytes]:
    """The entries of a batch, each still raw: one bad entry is refused on its own, not with the others."""
    try:
        entries = _batch_decoder.decode(body)
    except (msgspec.ValidationError, *MALFORMED) as exc:
        raise envelope_error(RpcCode.PARSE_ERROR, f"request is not valid JSON: {reason(exc)}") from None
    if not entries:
        raise envelope_error(RpcCode.INVALID_REQUEST, "an empty batch: send at least one request")
    if len(entries) > MAX_BATCH:
        raise envelope_error(RpcCode.INVALID_REQUEST, f"a batch holds at most {MAX_BATCH} requests, not {len(entries)}")
    return [bytes(entry) for entry in entries]


def asks_notification(notify_uri: str) -> bool:
    """Only a URL asks to be notified: Avalon's clients send placeholders (" ", "notifyuri")."""
    return "://" in notify_uri.strip()


def may_ask_notification(params: bytes) -> bool:
    """Whether accepted WorkOrderSubmit params may have asked to be notified (only their notifyUri is read;
    True when in doubt)."""
    try:
        return asks_notification(_notify_decoder.decode(params).notify_uri)
    except (msgspec.ValidationError, *MALFORMED):
        return True


def decode_params(raw: bytes) -> WorkOrderParams:
    try:
        params = _params_decoder.decode(raw)
    except (msgspec.ValidationError, *MALFORMED) as exc:
        raise _explain(exc, "WorkOrderSubmit params") from None
    indexes = [item.index for item in params.in_data]
    if len(set(indexes)) != len(indexes):
        raise EeaError(Status.INVALID_PARAMETER, "inData indexes must be unique")
    if params.payload_format.lower() != "json-rpc":
        raise EeaError(
            Status.INVALID_PARAMETER, f"payloadFormat {params.payload_format!r} is not supported (use JSON-RPC)"
        )
    if params.data_encryption_algorithm.upper() != "AES-GCM-256":
        raise EeaError(
            Status.INVALID_PARAMETER, f"dataEncryptionAlgorithm {params.data_encryption_algorithm!r} is not supported"
        )
    return params


def decode(raw: bytes, kind: type[T], method: str, code: int = Status.INVALID_PARAMETER) -> T:
    """`method`'s params as `kind` (absent params: `{}`), or an EEA error naming what is wrong."""
    try:
        return msgspec.json.decode(raw or b"{}", type=kind)
    except (msgspec.ValidationError, *MALFORMED) as exc:
        raise EeaError(code, _explain(exc, f"{method} params").message) from None


def decode_result(raw: bytes | str) -> WorkOrderResult:
    try:
        return _result_decoder.decode(raw)
    except (msgspec.ValidationError, *MALFORMED) as exc:
        raise _explain(exc, "work-order result") from None


def to_builtins(obj: Any) -> Any:
    return msgspec.to_builtins(obj)


def workload_hex(name: str) -> str:
    """On the wire a workload id is the hex of its UTF-8 name (Avalon's convention)."""
    return name.encode().hex()


def workload_name(workload_id: str) -> str:
    try:
        return bytes.fromhex(canonical(workload_id)).decode()
    except (ValueError, UnicodeDecodeError):
        raise EeaError(Status.INVALID_WORKLOAD, "workloadId is not the hex of a UTF-8 name") from None
