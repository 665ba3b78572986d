"""Build a work order for a worker, and verify and decrypt what comes back.

Secure by default: a fresh session key per order, a fresh IV for every encryption under it
(the request hash uses `sessionKeyIv`, each item its own `iv`), OAEP with SHA-256.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from .. import crypto
from ..errors import AdytumError
from ..protocol import (
    DataItem,
    WorkOrderParams,
    WorkOrderResult,
    decode_result,
    encode,
    request_hash,
    response_hash,
    strict_order_digest,
    workload_hex,
)
from .worker import WorkerInfo


class VerificationError(AdytumError):
    """A result that must not be believed: bad signature, wrong order, or undecryptable output."""


@dataclass(frozen=True)
class PendingOrder:
    """What the requester keeps (privately) to check and open the result."""

    params: WorkOrderParams
    session_key: bytes
    session_iv: bytes
    request_hash: bytes

    @property
    def work_order_id(self) -> str:
        return self.params.work_order_id


def build(
    worker: WorkerInfo,
    workload: str,
    inputs: list[bytes],
    *,
    requester_id: str | None = None,
    signer: crypto.SigningKey | None = None,
    response_timeout_ms: int = 0,
    sequence: int = 0,
) -> PendingOrder:
    """`sequence` (with `signer`): strict ordering, an adytum extension. The worker runs the order only as
    the signer's next after `sequence - 1` (1 is the first), so it can be neither reordered nor replayed."""
    if sequence and signer is None:
        raise ValueError("a strictly ordered work order (sequence) must be signed (signer)")
    key = crypto.generate_aead_key()
    items = []
    for index, data in enumerate(inputs):
        item = crypto.aead_encrypt(key, data)
        items.append(DataItem(index=index, data=crypto.b64encode(item.ciphertext), iv=item.iv.hex()))
    wrapped = crypto.wrap_session_key(crypto.rsa_public_from_pem(worker.encryption_key), key)
    params = WorkOrderParams(
        work_order_id=crypto.random_bytes(32).hex(),
        worker_id=worker.worker_id,
        workload_id=workload_hex(workload),
        requester_id=requester_id or crypto.random_bytes(32).hex(),
        encrypted_session_key=wrapped.hex(),
        requester_nonce=crypto.random_bytes(16).hex(),
        encrypted_request_hash="",
        in_data=items,
        response_timeout_m_secs=response_timeout_ms,
        requester_sequence=sequence,
    )
    digest = request_hash(params)  # covers neither sessionKeyIv nor encryptedRequestHash: both are set after
    sealed_hash = crypto.aead_encrypt(key, digest)
    params.session_key_iv, params.encrypted_request_hash = sealed_hash.iv.hex(), sealed_hash.ciphertext.hex()
    if signer is not None:
        params.verifying_key = signer.public_pem()
        signed = strict_order_digest(digest, sequence) if sequence else digest
        params.requester_signature = crypto.b64encode(signer.sign_digest(signed))
    return PendingOrder(params, key, sealed_hash.iv, digest)


def open_result(
    order: PendingOrder, worker: WorkerInfo, result: WorkOrderResult | dict[str, Any] | bytes | msgspec.Raw
) -> list[bytes]:
    """Verify the worker's signature over the result, then decrypt the outputs (by index)."""
    if isinstance(result, dict):
        result = encode(result)
    if not isinstance(result, WorkOrderResult):
        result = decode_result(result)
    p = order.params
    for name in ("work_order_id", "worker_id", "workload_id", "requester_id"):
        if getattr(result, name).lower() != getattr(p, name).lower():
            raise VerificationError(f"result {name} does not match the work order")
    try:
        crypto.verify_digest(worker.verifying_key, response_hash(result), crypto.b64decode(result.worker_signature))
    except crypto.CryptoError as exc:
        raise VerificationError(f"worker signature does not verify: {exc}") from None
    outputs = []
    for item in sorted(result.out_data, key=lambda i: i.index):
        try:
            iv = bytes.fromhex(item.iv) if item.iv else order.session_iv
            outputs.append(crypto.aead_decrypt(order.session_key, crypto.Encrypted(iv, crypto.b64decode(item.data))))
        except (crypto.CryptoError, ValueError) as exc:
            raise VerificationError(f"outData[{item.index}] does not decrypt: {exc}") from None
    return outputs
