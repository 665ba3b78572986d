"""Signing the receipt ledger's tree heads inside the work-order enclave.

The enclave keeps no ledger: each `SignHead` brings the previous signed head, its frontier and the leaf hashes
since. The enclave checks that it signed that head and that the frontier gives its root, extends the frontier
and signs only the root it computed, so the host can neither forge a head nor rewrite what a head covers.
Within one process it also refuses to sign a smaller tree than it signed before; across restarts the host
could present an old head and fork the log (detecting that needs a monotonic counter; clients that keep heads
detect a fork with a consistency proof).
"""

from __future__ import annotations

from .. import crypto
from ..channel import HeadSigned, SignHead
from ..ledger import merkle
from ..protocol import EeaError, Status, canonical
from ..protocol.receipts import tree_head_digest
from .keys import WorkerKeys


class HeadRefused(EeaError):
    """The host asked for a head this enclave will not sign."""

    def __init__(self, message: str) -> None:
        super().__init__(Status.ACCESS_DENIED, message)


class TreeHeadSigner:
    """Signs tree heads with the worker's signing key under its own domain tag (`tree_head_digest`)."""

    def __init__(self) -> None:
        self.largest = 0  # the largest tree this process has signed

    def sign(self, keys: WorkerKeys, req: SignHead) -> HeadSigned:
        if canonical(req.worker_id) != keys.worker_id:
            raise HeadRefused("the head is for another worker")
        if req.previous_size < 0 or req.previous_timestamp < 0 or req.timestamp < 0:
            raise HeadRefused("tree sizes and timestamps cannot be negative")
        if req.previous_size:
            _check_previous(keys, req)
        elif req.frontier:
            raise HeadRefused("the empty tree has no frontier")
        if req.timestamp < req.previous_timestamp:
            raise HeadRefused(f"timestamp {req.timestamp} is older than the previous head's ({req.previous_timestamp})")
        if any(len(leaf) != merkle.HASH_LEN for leaf in req.leaves):
            raise HeadRefused(f"every leaf hash must be {merkle.HASH_LEN} bytes")
        size = req.previous_size + len(req.leaves)
        if size < self.largest:
            raise HeadRefused(f"a tree of {size} leaves is smaller than the tree of {self.largest} already signed")
        root = merkle.frontier_root(size, merkle.extend_frontier(req.previous_size, req.frontier, req.leaves))
        digest = tree_head_digest(keys.worker_id, size, root, req.timestamp)
        signature = crypto.b64encode(keys.signing.sign_digest(digest))
        self.largest = max(self.largest, size)
        return HeadSigned(seq=req.seq, tree_size=size, root=root, timestamp=req.timestamp, signature=signature)


def _check_previous(keys: WorkerKeys, req: SignHead) -> None:
    """The previous head must be one this worker signed, and its frontier must give its root."""
    digest = tree_head_digest(keys.worker_id, req.previous_size, req.previous_root, req.previous_timestamp)
    try:  # by this key or an earlier one of the worker's (heads signed before a signing-key rotation)
        crypto.verify_under_any(keys.verifying_keys, digest, crypto.b64decode(req.previous_signature))
    except crypto.CryptoError:
        raise HeadRefused(f"the previous head (tree of {req.previous_size}) is not signed by this worker") from None
    try:
        root = merkle.frontier_root(req.previous_size, req.frontier)
    except merkle.ProofError as exc:
        raise HeadRefused(f"the frontier does not fit the previous head: {exc}") from None
    if root != req.previous_root:
        raise HeadRefused(f"the frontier does not give the previous head's root (tree of {req.previous_size})")
