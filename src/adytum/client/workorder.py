"""Build a work order for a worker, and verify and decrypt what comes back.

Secure by default: a fresh session key per order, a fresh IV for every encryption under it
(the request hash uses `sessionKeyIv`, each item its own `iv`), the session key wrapped with HPKE
(X25519) when the worker offers it, else with RSA-OAEP (SHA-256); `suite` chooses (`SUITES`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from .. import crypto
from ..crypto import KeySuite
from ..errors import AdytumError
from ..protocol import (
    DataItem,
    EeaError,
    Status,
    WorkOrderParams,
    WorkOrderResult,
    decode_result,
    encode,
    request_hash,
    response_hash,
    session_key_info,
    strict_order_digest,
    workload_hex,
)
from .worker import WorkerInfo

#: The suites by the short names the CLI and `Client(suite=...)` take (their full names work too).
SUITES = {"rsa": KeySuite.RSA_OAEP_3072, "hpke": KeySuite.HPKE_X25519, "mlkem-x25519": KeySuite.HPKE_MLKEM768_X25519}


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
    suite: KeySuite | str | None = None,
) -> PendingOrder:
    """`sequence` (with `signer`): strict ordering, an adytum extension. The worker runs the order only as
    the signer's next after `sequence - 1` (1 is the first), so it can be neither reordered nor replayed.
    `suite`: how the session key is wrapped (see `choose_suite`)."""
    if sequence and signer is None:
        raise ValueError("a strictly ordered work order (sequence) must be signed (signer)")
    chosen = choose_suite(worker, suite)
    key = crypto.generate_aead_key()
    items = []
    for index, data in enumerate(inputs):
        item = crypto.aead_encrypt(key, data)
        items.append(DataItem(index=index, data=crypto.b64encode(item.ciphertext), iv=item.iv.hex()))
    params = WorkOrderParams(
        work_order_id=crypto.random_bytes(32).hex(),
        worker_id=worker.worker_id,
        workload_id=workload_hex(workload),
        requester_id=requester_id or crypto.random_bytes(32).hex(),
        encrypted_session_key="",
        requester_nonce=crypto.random_bytes(16).hex(),
        encrypted_request_hash="",
        in_data=items,
        response_timeout_m_secs=response_timeout_ms,
        requester_sequence=sequence,
        key_encryption_algorithm=chosen,
    )
    if chosen is KeySuite.RSA_OAEP_3072:
        wrapped = crypto.wrap_session_key(crypto.rsa_public_from_pem(worker.encryption_key), key)
    else:  # sealed under the order's ids: the host cannot move it to another order
        public = bytes.fromhex(worker.hpke_keys[chosen.value])
        wrapped = crypto.hpke_wrap_session_key(chosen, public, key, session_key_info(params))
    params.encrypted_session_key = wrapped.hex()
    digest = request_hash(params)  # covers neither sessionKeyIv nor encryptedRequestHash: both are set after
    sealed_hash = crypto.aead_encrypt(key, digest)
    params.session_key_iv, params.encrypted_request_hash = sealed_hash.iv.hex(), sealed_hash.ciphertext.hex()
    if signer is not None:
        params.verifying_key = signer.public_pem()
        signed = strict_order_digest(digest, sequence) if sequence else digest
        params.requester_signature = crypto.b64encode(signer.sign_digest(signed))
    return PendingOrder(params, key, sealed_hash.iv, digest)


def parse_suite(name: KeySuite | str) -> KeySuite:
    """A `SUITES` short name or a full suite name as the suite; ValueError if it is neither."""
    try:
        return SUITES[name] if name in SUITES else KeySuite(name)
    except ValueError:
        raise ValueError(f"no key-encryption suite {name!r} (known: {', '.join(SUITES)})") from None


def choose_suite(worker: WorkerInfo, suite: KeySuite | str | None = None) -> KeySuite:
    """The suite to wrap the session key in: `suite` (a `SUITES` short name or a full name), or by default
    HPKE with X25519 if the worker offers it, else RSA-OAEP. ValueError for a name that is no suite,
    EeaError (INVALID_PARAMETER) for a suite the worker does not offer."""
    if suite is None:
        return KeySuite.HPKE_X25519 if KeySuite.HPKE_X25519 in worker.suites else KeySuite.RSA_OAEP_3072
    chosen = parse_suite(suite)
    if chosen not in worker.suites:
        offered = ", ".join(name for name, s in SUITES.items() if s in worker.suites)
        raise EeaError(
            Status.INVALID_PARAMETER,
            f"worker {worker.worker_id[:16]}… does not offer {chosen} (it offers {offered})",
        )
    return chosen


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
