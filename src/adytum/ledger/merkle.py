"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing, proofs and their verification.

Leaf hash ``SHA-256(0x00 || data)``, node hash ``SHA-256(0x01 || left || right)``; a tree of n leaves
splits at the largest power of two below n (RFC 9162 §2.1.1). Proof generation takes the leaf hashes;
verification takes only hashes and sizes and raises `ProofError` naming what does not match. The empty
tree's root is ``SHA-256("")``. Pure functions on bytes: the enclave, the host and offline verifiers share them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from ..errors import AdytumError

HASH_LEN = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(AdytumError):
    """A proof, a root or a tree size does not check out."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def root(leaves: Sequence[bytes]) -> bytes:
    """The root over these leaf hashes (MTH of RFC 9162 §2.1.1)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(root(leaves[:k]), root(leaves[k:]))


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The audit path of leaf `index` in the tree of these leaf hashes (RFC 9162 §2.1.3.1)."""
    if not 0 <= index < len(leaves):
        raise ProofError(f"leaf {index} is not in a tree of {len(leaves)} leaves")
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*inclusion_proof(index, leaves[:k]), root(leaves[k:])]
    return [*inclusion_proof(index - k, leaves[k:]), root(leaves[:k])]


def consistency_proof(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The proof that the tree of the first `old_size` leaves is a prefix of the tree of all (§2.1.4.1)."""
    if not 0 <= old_size <= len(leaves):
        raise ProofError(f"a tree of {old_size} leaves is not a prefix of one of {len(leaves)}")
    if old_size in (0, len(leaves)):
        return []
    return _subproof(old_size, leaves, True)


def _subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [root(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], complete), root(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), root(leaves[:k])]


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes) -> None:
    """Raise ProofError unless `proof` puts leaf hash `leaf` at `index` of the tree of `size` with this root."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size} leaves")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    if r != expected_root:
        raise ProofError(f"leaf {index} with this proof does not give the root of the tree of {size} leaves")


def verify_consistency(old_size: int, old_root: bytes, new_size: int, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Raise ProofError unless the tree (old_size, old_root) is a prefix of (new_size, new_root) (§2.1.4.2)."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"a tree of {old_size} leaves cannot be a prefix of one of {new_size}")
    if old_size == new_size:
        if proof:
            raise ProofError("two heads of one size need an empty consistency proof")
        if old_root != new_root:
            raise ProofError(f"two different roots for the same tree size {new_size}: the log forked")
        return
    if old_size == 0:
        if proof:
            raise ProofError("consistency from the empty tree needs an empty proof")
        return
    if not proof:
        raise ProofError(f"consistency from {old_size} to {new_size} leaves needs a proof; it is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node of the path
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than the trees are deep")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than the trees are deep")
    if fr != old_root:
        raise ProofError(f"the proof does not lead to the old root (tree of {old_size})")
    if sr != new_root:
        raise ProofError(f"the proof does not lead to the new root (tree of {new_size})")


# --- the compact range: what the enclave keeps to extend a tree without its leaves ------------------


def frontier(leaves: Sequence[bytes]) -> list[bytes]:
    """The roots of the perfect subtrees that make up the tree, largest first (one per set bit of its size)."""
    out, start, n = [], 0, len(leaves)
    while n:
        k = 1 << (n.bit_length() - 1)
        out.append(root(leaves[start : start + k]))
        start, n = start + k, n - k
    return out


def frontier_root(size: int, nodes: Sequence[bytes]) -> bytes:
    """The root of a tree of `size` leaves given its frontier (ProofError if they do not fit together)."""
    if len(nodes) != bin(size).count("1") or any(len(h) != HASH_LEN for h in nodes):
        raise ProofError(f"a tree of {size} leaves has {bin(size).count('1')} frontier nodes, not {len(nodes)}")
    if not nodes:
        return EMPTY_ROOT
    acc = nodes[-1]
    for node in reversed(nodes[:-1]):
        acc = node_hash(node, acc)
    return acc


def extend_frontier(size: int, nodes: Sequence[bytes], new_leaves: Sequence[bytes]) -> list[bytes]:
    """The frontier after appending `new_leaves` (leaf hashes) to the tree of `size` with frontier `nodes`."""
    frontier_root(size, nodes)  # checks the shape
    stack = list(nodes)
    for leaf in new_leaves:
        stack.append(leaf)
        size += 1
        carry = size
        while carry & 1 == 0:  # merge equal-sized subtrees, as a binary counter carries
            right, left = stack.pop(), stack.pop()
            stack.append(node_hash(left, right))
            carry >>= 1
    return stack
