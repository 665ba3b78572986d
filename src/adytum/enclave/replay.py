"""The enclave's in-memory replay window: work-order ids and (requester, nonce) pairs seen lately.

The window holds the last `capacity` of each in memory allocated once, when the enclave starts, so an
enclave's size does not grow with the orders it serves (a soak shows it: bench/bench_soak.py). Each entry is
8 bytes of a keyed BLAKE2b digest in an open-addressing table at most half full, plus its place in a ring
that says which entry is the oldest: about 24 bytes an entry, 12 MB a kind at the default 500,000. The key
is drawn per process, so nobody can choose ids that collide with another requester's; two different ids
collide by chance with probability about capacity / 2^64 per check.

A host that restarts the enclave empties the window. What survives a restart is the key manager's: strictly
ordered requesters' sequence numbers and state versions (`counters.py`), and state markers (`state.py`).
"""

from __future__ import annotations

import hashlib
import os
from array import array

from ..protocol import EeaError, Status, WorkOrderParams

DEFAULT_CAPACITY = 500_000


class ReplayWindow:
    """The last `capacity` keys added; `in` says whether a key is among them."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a replay window holds at least one entry")
        self._capacity = capacity
        slots = 1 << (2 * capacity - 1).bit_length()  # a power of two at least twice the capacity
        self._mask = slots - 1
        self._table = array("Q", bytes(8 * slots))  # 0: empty; the memory is touched now, not as it fills
        self._ring = array("Q", bytes(8 * capacity))  # keys in the order they came: the oldest goes first
        self._next = 0
        self._count = 0
        self._salt = os.urandom(16)

    def key(self, value: str) -> int:
        digest = hashlib.blake2b(value.encode(), digest_size=8, key=self._salt).digest()
        return int.from_bytes(digest, "big") | 1  # never 0, which marks an empty slot

    def __contains__(self, key: int) -> bool:
        return self._table[self._slot(key)] == key

    def add(self, key: int) -> None:
        slot = self._slot(key)
        if self._table[slot] == key:
            return
        if self._count == self._capacity:
            self._remove(self._ring[self._next])
            slot = self._slot(key)  # the removal may have moved entries
        else:
            self._count += 1
        self._table[slot] = key
        self._ring[self._next] = key
        self._next = (self._next + 1) % self._capacity

    def _slot(self, key: int) -> int:
        """Where `key` is, or the empty slot where it would go (linear probing)."""
        table, mask = self._table, self._mask
        i = key & mask
        while table[i] != 0 and table[i] != key:
            i = (i + 1) & mask
        return i

    def _remove(self, key: int) -> None:
        """Empty the key's slot and shift back the entries after it that probed past it (no tombstones)."""
        table, mask = self._table, self._mask
        hole = self._slot(key)
        if table[hole] != key:
            return
        j = hole
        while True:
            j = (j + 1) & mask
            entry = table[j]
            if entry == 0:
                break
            home = entry & mask
            # the entry may fill the hole unless its home lies cyclically in (hole, j]
            if (hole < j and (home <= hole or home > j)) or (hole > j and home <= hole and home > j):
                table[hole] = entry
                hole = j
        table[hole] = 0


class ReplayGuard:
    """Refuses a work-order id or a (requester, nonce) pair seen in the window of each."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._orders = ReplayWindow(capacity)
        self._nonces = ReplayWindow(capacity)

    def check(self, p: WorkOrderParams) -> None:
        if self._orders.key(p.work_order_id.lower()) in self._orders:
            raise EeaError(Status.INVALID_PARAMETER, "replayed work order: this workOrderId was already processed")
        if self._nonces.key(_pair(p)) in self._nonces:
            raise EeaError(
                Status.INVALID_PARAMETER, "replayed requester nonce: each work order needs a fresh requesterNonce"
            )

    def record(self, p: WorkOrderParams) -> None:
        self._orders.add(self._orders.key(p.work_order_id.lower()))
        self._nonces.add(self._nonces.key(_pair(p)))


def _pair(p: WorkOrderParams) -> str:
    return f"{p.requester_id.lower()}\n{p.requester_nonce.lower()}"
