"""Offline checks of the receipt ledger: a signed tree head, an event's inclusion in it, two heads' consistency,
and the signature on one receipt event.

Short pure functions in the style of CCF's `receipt.py`: each returns nothing (or what it learnt) and raises
`LedgerError` naming what does not check out. They need no node: only the worker's verification key (from its
attested record; or its keys along the record's verified signing-key handovers) and the hashes. `adytum.client.receipt` composes them over a whole receipt document.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from .. import crypto
from ..errors import AdytumError
from ..protocol import canonical
from ..protocol.receipts import (
    SIGNATURE_RULES,
    Event,
    ReceiptEvent,
    ReceiptUpdateEvent,
    TreeHead,
    receipt_create_digest,
    receipt_update_digest,
    tree_head_digest,
)
from . import merkle

#: Who vouches for an event: "worker" and "requester" signed it (checked); "node" is the host's unsigned word
#: (a node-made receipt, a failure the host decided). A requester's update to a node-made receipt is signed by
#: the key the order was signed with: "named" when it verifies under the key the node's receipt names (the
#: node's word that it is the requester's), "unchecked" when no key was named or given.
Signer = Literal["worker", "requester", "node", "named", "unchecked"]
#: The worker's verification key (PEM), or its keys along its verified signing-key handovers (what it signed
#: before a rotation verifies under the key it had then).
WorkerKeys = str | Sequence[str]


class LedgerError(AdytumError):
    """A tree head, a proof or a receipt event does not check out."""


def head_root(head: TreeHead) -> bytes:
    try:
        root = bytes.fromhex(head.rootHash)
    except ValueError:
        raise LedgerError(f"tree head of {head.treeSize} leaves: rootHash is not hex") from None
    if len(root) != merkle.HASH_LEN:
        raise LedgerError(f"tree head of {head.treeSize} leaves: rootHash is not {merkle.HASH_LEN} bytes")
    return root


def hashes_from_hex(path: Sequence[str], what: str) -> list[bytes]:
    """A proof's path as the bytes the Merkle functions take; LedgerError naming `what` if it is malformed."""
    try:
        out = [bytes.fromhex(h) for h in path]
    except (ValueError, TypeError):
        raise LedgerError(f"{what}: a proof hash is not hex") from None
    if any(len(h) != merkle.HASH_LEN for h in out):
        raise LedgerError(f"{what}: a proof hash is not {merkle.HASH_LEN} bytes")
    return out


def verify_tree_head(head: TreeHead, verifying_key_pem: WorkerKeys) -> None:
    """The head's signature must be the worker's, over `tree_head_digest` of its (canonical) id, size, root, time."""
    digest = tree_head_digest(canonical(head.workerId), head.treeSize, head_root(head), head.timestamp)
    try:
        crypto.verify_under_any(_keys(verifying_key_pem), digest, crypto.b64decode(head.signature))
    except crypto.CryptoError as exc:
        raise LedgerError(
            f"tree head of {head.treeSize} leaves is not signed by worker {canonical(head.workerId)[:16]}…'s "
            f"verification key ({exc})"
        ) from None


def verify_event_inclusion(leaf_data: bytes, index: int, path: Sequence[bytes], head: TreeHead) -> None:
    """The event whose leaf data this is must be leaf `index` of the tree the head signs."""
    if not 0 <= index < head.treeSize:
        raise LedgerError(f"the tree head covers {head.treeSize} leaves; the event at leaf {index} is not among them")
    try:
        merkle.verify_inclusion(merkle.leaf_hash(leaf_data), index, head.treeSize, path, head_root(head))
    except merkle.ProofError as exc:
        raise LedgerError(
            f"the event at leaf {index} is not in the signed tree of {head.treeSize} leaves: {exc}"
        ) from None


def verify_heads_consistent(old: TreeHead, new: TreeHead, path: Sequence[bytes]) -> None:
    """`new` must extend `old`: same worker's ledger, and the consistency proof leads from one root to the other.
    Signatures are checked separately (`verify_tree_head`)."""
    if canonical(old.workerId) != canonical(new.workerId):
        raise LedgerError(f"the heads are of different workers' ledgers ({old.workerId[:16]}…, {new.workerId[:16]}…)")
    if old.treeSize > new.treeSize:
        raise LedgerError(f"the old head ({old.treeSize} leaves) is larger than the new one ({new.treeSize})")
    try:
        merkle.verify_consistency(old.treeSize, head_root(old), new.treeSize, head_root(new), path)
    except merkle.ProofError as exc:
        raise LedgerError(
            f"the tree of {new.treeSize} leaves does not extend the tree of {old.treeSize}: {exc}"
        ) from None


def check_event(
    event: Event,
    work_order_id: str,
    worker_id: str,
    verifying_key_pem: WorkerKeys,
    order_verifying_key: str | None = None,
) -> Signer:
    """The event must be of this work order and worker, and its signature (if it carries one) must verify: a
    worker's update by the worker's verification key, a requester's create by its `receiptVerificationKey`, a
    requester's update by `order_verifying_key` (that create's key, or the key the order was signed with).
    Returns who vouches for it."""
    order, worker = canonical(work_order_id), canonical(worker_id)
    if canonical(event.workOrderId) != order:
        raise LedgerError(f"the event records work order {event.workOrderId[:16]}…, not {order[:16]}…")
    if isinstance(event, ReceiptEvent):
        return _check_create(event, order, worker)
    return _check_update(event, order, worker, verifying_key_pem, order_verifying_key)


def _check_create(event: ReceiptEvent, order: str, worker: str) -> Signer:
    r = event.receipt
    if canonical(r.workOrderId) != order:
        raise LedgerError(f"the receipt is of work order {r.workOrderId[:16]}…, not {order[:16]}…")
    if canonical(r.workerId) != worker:
        raise LedgerError(f"the receipt names worker {r.workerId[:16]}…, not {worker[:16]}…")
    if event.by == "node":
        return "node"
    if r.signatureRules != SIGNATURE_RULES:
        raise LedgerError(f"the requester's receipt is signed under {r.signatureRules!r}, not {SIGNATURE_RULES}")
    _verify(r.receiptVerificationKey, receipt_create_digest(r), r.requesterSignature, "the requester's receipt")
    return "requester"


def _check_update(
    event: ReceiptUpdateEvent, order: str, worker: str, verifying_key_pem: WorkerKeys, order_verifying_key: str | None
) -> Signer:
    u, what = event.update, f"update {event.index}"
    if canonical(u.workOrderId) != order:
        raise LedgerError(f"{what} is of work order {u.workOrderId[:16]}…, not {order[:16]}…")
    if event.by == "node":
        return "node"
    if u.signatureRules != SIGNATURE_RULES:
        raise LedgerError(f"{what} is signed under {u.signatureRules!r}, not {SIGNATURE_RULES}")
    digest = receipt_update_digest(order, u.updateType, u.updateData)
    if event.by == "worker":
        if canonical(u.updaterId) != worker:
            raise LedgerError(f"{what} claims to be the worker's but its updaterId is {u.updaterId[:16]}…")
        _verify(verifying_key_pem, digest, u.updateSignature, f"{what} (by the worker)")
        return "worker"
    if order_verifying_key is None:
        return "unchecked"
    _verify(order_verifying_key, digest, u.updateSignature, f"{what} (by the requester)")
    return "requester"


def _keys(keys: WorkerKeys) -> Sequence[str]:
    return (keys,) if isinstance(keys, str) else keys


def _verify(key_pem: WorkerKeys, digest: bytes, signature_b64: str, what: str) -> None:
    if not signature_b64:
        raise LedgerError(f"{what} carries no signature")
    try:
        crypto.verify_under_any(_keys(key_pem), digest, crypto.b64decode(signature_b64))
    except crypto.CryptoError as exc:
        raise LedgerError(f"{what}: the signature does not verify ({exc})") from None
