"""Request and response hashes, computed exactly as Avalon computes them (avalon.md §4.5, §4.7).

Strings are hashed as they appear on the wire (base64/hex not decoded, hex case significant), and
the per-part SHA-256 digests are concatenated raw before the final SHA-256.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..crypto import sha256
from .hexid import canonical
from .messages import DataItem, WorkOrderParams, WorkOrderResult

_SESSION_KEY_INFO = b"adytum-session-key/1"


def items_hash(items: Iterable[DataItem]) -> bytes:
    """SHA-256 over dataHash + data + encryptedDataEncryptionKey + iv of each item, by index."""
    text = "".join(
        i.data_hash + i.data + i.encrypted_data_encryption_key + i.iv for i in sorted(items, key=lambda i: i.index)
    )
    return sha256(text.encode())


def request_hash(p: WorkOrderParams) -> bytes:
    head = sha256((p.requester_nonce + p.work_order_id + p.worker_id + p.workload_id + p.requester_id).encode())
    parts = head + items_hash(p.in_data)
    if p.out_data:
        parts += items_hash(p.out_data)
    return sha256(parts)


def session_key_info(p: WorkOrderParams) -> bytes:
    """The HPKE `info` an HPKE-wrapped session key is sealed under: the worker, the workload, the order and its
    requester and nonce (canonical hex, each length-prefixed), so the host cannot move a wrapped key to
    another order or worker; HPKE itself binds the suite (KEM, KDF and AEAD ids) into its key schedule."""
    fields = (p.worker_id, p.work_order_id, p.workload_id, p.requester_id, p.requester_nonce)
    return _SESSION_KEY_INFO + b"".join(
        len(value).to_bytes(4, "big") + value for value in (canonical(f).encode() for f in fields)
    )


def strict_order_digest(request_hash: bytes, sequence: int) -> bytes:
    """What the requester signs for a strictly ordered order (`requesterSequence`, an adytum extension): the
    EEA request hash bound to the sequence number, so that removing or changing it breaks the signature."""
    return sha256(b"adytum-strict-order/1\0" + request_hash + sequence.to_bytes(8, "big"))


def response_hash(r: WorkOrderResult) -> bytes:
    head = sha256((r.worker_nonce + r.work_order_id + r.worker_id + r.workload_id + r.requester_id).encode())
    return sha256(head + items_hash(r.out_data)) if r.out_data else sha256(head)


def encryption_key_digest(encryption_key_pem: str) -> bytes:
    """What `encryptionKeySignature` signs: SHA-256 of the PEM string (avalon.md §4.8)."""
    return sha256(encryption_key_pem.encode())


def encryption_key_get_digest(worker_id: str, encryption_key_pem: str, nonce: str, tag: str = "") -> bytes:
    """What an EncryptionKeyGet answer's `signature` signs (EEA v1.1: worker id, key, nonce and tag).
    Avalon returned this bare hash as the "signature"; adytum signs it with the worker's key."""
    return sha256(worker_id.encode() + encryption_key_pem.encode() + nonce.encode() + tag.encode())


def key_handover_digest(worker_id: str, index: int, previous_key_pem: str, next_key_pem: str) -> bytes:
    """What the worker's previous signing key signs to hand over to the next (adytum extension): the
    worker id, the handover's place in the chain (0: from the worker's first key) and both keys' PEM."""
    return sha256(
        b"adytum-signing-key-handover/1\0"
        + worker_id.lower().encode()
        + b"\0"
        + index.to_bytes(8, "big")
        + previous_key_pem.strip().encode()
        + b"\0"
        + next_key_pem.strip().encode()
    )
