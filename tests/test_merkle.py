"""RFC 9162 Merkle hashing: known answers (the RFC 6962 / CT test tree), proofs that verify, and every
tampered proof, root, index or size refused."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adytum.ledger.merkle import (
    EMPTY_ROOT,
    ProofError,
    consistency_proof,
    extend_frontier,
    frontier,
    frontier_root,
    inclusion_proof,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

#: The eight leaves of Certificate Transparency's reference test tree and the roots of its prefixes.
CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def leaves(n: int) -> list[bytes]:
    return [leaf_hash(os.urandom(8)) for _ in range(n)]


def test_known_roots() -> None:
    hashes = [leaf_hash(d) for d in CT_LEAVES]
    assert [root(hashes[:n]).hex() for n in range(1, 9)] == CT_ROOTS
    assert root([]) == EMPTY_ROOT == bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33])
def test_every_inclusion_and_consistency_proof_verifies(n: int) -> None:
    tree = leaves(n)
    top = root(tree)
    for i in range(n):
        verify_inclusion(tree[i], i, n, inclusion_proof(i, tree), top)
    for m in range(n + 1):
        verify_consistency(m, root(tree[:m]), n, top, consistency_proof(m, tree))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 40), data=st.data())
def test_a_changed_byte_anywhere_in_an_inclusion_proof_is_refused(n: int, data: st.DataObject) -> None:
    tree = leaves(n)
    i = data.draw(st.integers(0, n - 1))
    proof = inclusion_proof(i, tree)
    j = data.draw(st.integers(0, len(proof) - 1))
    bad = [*proof[:j], bytes([proof[j][0] ^ 1]) + proof[j][1:], *proof[j + 1 :]]
    with pytest.raises(ProofError):
        verify_inclusion(tree[i], i, n, bad, root(tree))
    with pytest.raises(ProofError):
        verify_inclusion(tree[i], (i + 1) % n, n, proof, root(tree))  # another position
    with pytest.raises(ProofError):
        verify_inclusion(tree[i], i, n, proof[:-1], root(tree))  # truncated
    with pytest.raises(ProofError):
        verify_inclusion(tree[i], i, n, [*proof, proof[0]], root(tree))  # too long


@settings(max_examples=60, deadline=None)
@given(n=st.integers(3, 40), data=st.data())
def test_a_fork_or_a_changed_proof_fails_consistency(n: int, data: st.DataObject) -> None:
    tree = leaves(n)
    m = data.draw(st.integers(1, n - 1))
    proof = consistency_proof(m, tree)
    forked = [*tree[: m - 1], leaf_hash(b"rewritten"), *tree[m:]]
    with pytest.raises(ProofError):  # history rewritten under the old head
        verify_consistency(m, root(tree[:m]), n, root(forked), consistency_proof(m, forked))
    j = data.draw(st.integers(0, len(proof) - 1))
    bad = [*proof[:j], bytes([proof[j][0] ^ 1]) + proof[j][1:], *proof[j + 1 :]]
    with pytest.raises(ProofError):
        verify_consistency(m, root(tree[:m]), n, root(tree), bad)
    with pytest.raises(ProofError):
        verify_consistency(m, root(tree[:m]), n, root(tree), [])


def test_sizes_out_of_range_are_refused() -> None:
    tree = leaves(4)
    with pytest.raises(ProofError):
        inclusion_proof(4, tree)
    with pytest.raises(ProofError):
        verify_inclusion(tree[0], 5, 4, inclusion_proof(0, tree), root(tree))
    with pytest.raises(ProofError):
        consistency_proof(5, tree)
    with pytest.raises(ProofError):
        verify_consistency(5, root(tree), 4, root(tree), [])
    with pytest.raises(ProofError):
        verify_consistency(4, root(tree), 4, root(leaves(4)), [])  # one size, two roots: a fork


@pytest.mark.parametrize("n", range(0, 34))
def test_the_frontier_extends_like_the_tree(n: int) -> None:
    tree = leaves(n)
    assert frontier_root(n, frontier(tree)) == root(tree)
    for m in range(n + 1):
        assert extend_frontier(m, frontier(tree[:m]), tree[m:]) == frontier(tree)


def test_a_frontier_of_the_wrong_shape_is_refused() -> None:
    tree = leaves(5)
    with pytest.raises(ProofError):
        frontier_root(7, frontier(tree))
    with pytest.raises(ProofError):
        extend_frontier(5, frontier(tree)[:1], [leaf_hash(b"x")])
