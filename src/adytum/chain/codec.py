"""Between adytum's wire structs and the contracts' arguments and events: ids as bytes32, a worker's signing key
as the address ecrecover yields, a DER signature as (v, r, s), a completion event back as a `WorkOrderResult`.

WorkOrderRegistry recomputes the EEA response hash (adytum.protocol.hashing) from what `result_args` posts, so
everything signed goes on chain as the worker wrote it, items in index order.
"""

from __future__ import annotations

import re
from typing import Any

import coincurve
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from eth_utils import keccak, to_checksum_address

from .. import crypto
from ..protocol import DataItem, WorkOrderResult
from .errors import ChainError

_ID = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


def id_bytes(hex_id: str) -> bytes:
    """A 32-byte EEA id (64 hex digits, optional 0x) as the bytes32 the contracts key on."""
    if not _ID.match(hex_id):
        raise ChainError(f"id {hex_id[:80]!r} is not 32 bytes of hex: on chain every id is a bytes32")
    return bytes.fromhex(hex_id[2:] if hex_id.startswith("0x") else hex_id)


def id_hex(value: bytes) -> str:
    """A bytes32 as the lower-case hex the contract hashes (and adytum writes on the wire)."""
    return bytes(value).hex()


def signer_address(verification_key_pem: str) -> str:
    """The Ethereum address of a secp256k1 verification key: what ecrecover returns for its signatures."""
    point = _public_key(verification_key_pem).format(compressed=False)
    return str(to_checksum_address(keccak(point[1:])[-20:]))


def vrs(verification_key_pem: str, digest: bytes, der_signature: bytes) -> tuple[int, int, int]:
    """(v, r, s) of a DER signature by that key over `digest`, with the v that makes ecrecover find the key."""
    key = _public_key(verification_key_pem)
    try:
        r, s = decode_dss_signature(der_signature)
    except ValueError as exc:
        raise ChainError(f"the worker signature is not DER: {exc}") from None
    if s > _HALF_N:  # the enclave signs low-S; the other form verifies too but the contract takes one form
        s = _N - s
    compact = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    for recid in (0, 1):
        try:
            candidate = coincurve.PublicKey.from_signature_and_message(compact + bytes([recid]), digest, hasher=None)
        except ValueError:
            continue
        if candidate.format() == key.format():
            return 27 + recid, r, s
    raise ChainError("the worker signature is not by the worker's verification key over the response hash")


def der(r: int, s: int) -> bytes:
    return bytes(encode_dss_signature(r, s))


def result_args(result: WorkOrderResult, verification_key_pem: str, digest: bytes) -> tuple[Any, ...]:
    """WorkOrderRegistry's `Result` tuple for a signed result whose response hash is `digest`."""
    v, r, s = vrs(verification_key_pem, digest, crypto.b64decode(result.worker_signature))
    items = [
        (i.index, i.data_hash, i.data, i.encrypted_data_encryption_key, i.iv)
        for i in sorted(result.out_data, key=lambda i: i.index)
    ]
    return (id_bytes(result.work_order_id), result.workload_id, result.worker_nonce, items, (v, r, s))


def result_from_event(args: Any, worker_id: str) -> WorkOrderResult:
    """A `workOrderCompleted` event's fields as the signed `WorkOrderResult` they were taken from."""
    sig = args["signature"]
    _, r, s = (sig["v"], sig["r"], sig["s"]) if hasattr(sig, "keys") else sig
    items = []
    for item in args["outData"]:
        index, data_hash, data, key, iv = (
            (item["index"], item["dataHash"], item["data"], item["encryptedDataEncryptionKey"], item["iv"])
            if hasattr(item, "keys")
            else item
        )
        items.append(DataItem(index=index, data=data, data_hash=data_hash, encrypted_data_encryption_key=key, iv=iv))
    return WorkOrderResult(
        work_order_id=id_hex(args["workOrderId"]),
        workload_id=args["workloadId"],
        worker_id=worker_id,
        requester_id=id_hex(args["requesterId"]),
        worker_nonce=args["workerNonce"],
        worker_signature=crypto.b64encode(der(r, s)),
        out_data=items,
    )


_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = _N // 2


def _public_key(pem: str) -> coincurve.PublicKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise ChainError(f"the verification key is not a PEM public key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256k1":
        raise ChainError("the verification key is not a secp256k1 key")
    return coincurve.PublicKey(
        key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
