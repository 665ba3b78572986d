"""Encrypted workload state: the host stores it, and can neither read, alter nor quietly roll it back.

Each item lives in the host's store under an opaque id, HMAC(state key, workload, scope, name), so
the host does not even learn item names. Its value is AES-GCM under the state key with a fresh IV;
the associated data binds the state key's id, the item id and the item's version, so a value moved
to another item or another version does not decrypt.

One work order sees one `StateSession`: reads go to the host (the enclave asks over the channel),
writes stay in the session and leave the enclave only with the signed result, as version + 1 of
each item. The host stores them in the same transaction as the response, each one only if the
stored version is still the one read (compare-and-swap); if another order got there first, the
order is run again on the new values. Deletes are versioned too (a tombstone).

Rollback: the enclave remembers the highest version it has read of every item and refuses an
older one. (Not what it wrote: orders are pipelined, so the next order may read an item before the
previous order's write is committed, and a write that lost its compare-and-swap never will be.) Orders that change state also write a marker item for their work-order id, so an order
replayed by the host finds its marker and is refused, durably. What one enclave process cannot see
(versions another enclave read or wrote, or anything before a restart) the key manager's counters hold
(`enclave/counters.py`): every order that reads or writes state has its versions checked there before it
answers.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Callable

from .. import crypto
from ..channel import StateWrite
from ..protocol import EeaError, Status
from ..workloads.base import State, check_state_item

_DOMAIN = b"adytum-state/1\0"
_DELETED, _PRESENT = b"\x00", b"\x01"

#: Asks the host for an item: (version, sealed value), or None if the host has no such item.
ReadItem = Callable[[str], "tuple[int, bytes] | None"]


class StateRollback(EeaError):
    """The host handed back an item older than one this enclave has already read, or altered it."""

    def __init__(self, message: str) -> None:
        super().__init__(Status.FAILED, message)


class StateKeys:
    """The state key of one worker (derived from its sealed signing secret, so every enclave of the
    worker, and every enclave a key manager provisions, derives the same) and what this enclave saw."""

    def __init__(self, worker_secret: bytes) -> None:
        self._enc = crypto.hkdf(worker_secret, b"adytum-state-encryption/1")
        self._mac = crypto.hkdf(worker_secret, b"adytum-state-names/1")
        self.key_id = hashlib.sha256(self._enc).digest()[:8]
        self.read: dict[str, int] = {}  # item id -> highest version read

    def item_id(self, workload: str, scope: str, name: str) -> str:
        label = b"\0".join(part.encode() for part in (workload, scope, name))
        return hmac.new(self._mac, label, hashlib.sha256).hexdigest()

    def _aad(self, item_id: str, version: int) -> bytes:
        return _DOMAIN + self.key_id + item_id.encode() + struct.pack(">Q", version)

    def seal(self, item_id: str, version: int, value: bytes | None) -> bytes:
        plain = _DELETED if value is None else _PRESENT + value
        return crypto.aead_encrypt(self._enc, plain, self._aad(item_id, version)).to_bytes()

    def open(self, item_id: str, version: int, sealed: bytes) -> bytes | None:
        try:
            plain = crypto.aead_decrypt(self._enc, crypto.Encrypted.from_bytes(sealed), self._aad(item_id, version))
        except crypto.CryptoError:
            raise StateRollback(
                "a state item handed back by the host does not decrypt under its version: it was altered or moved"
            ) from None
        if plain[:1] not in (_DELETED, _PRESENT):
            raise StateRollback("a state item has no valid marker")
        return None if plain[:1] == _DELETED else plain[1:]

    def check_fresh(self, item_id: str, version: int) -> None:
        known = self.read.get(item_id, 0)
        if version < known:
            raise StateRollback(
                f"the host handed back version {version} of a state item this enclave has "
                f"read at version {known}: refused as a rollback"
            )
        self.read[item_id] = version


class StateSession:
    """The state one work order reads and writes, across its scopes."""

    def __init__(self, keys: StateKeys, read: ReadItem, workload: str) -> None:
        self._keys, self._read, self._workload = keys, read, workload
        self._versions: dict[str, int] = {}  # item id -> version read
        self._values: dict[str, bytes | None] = {}  # item id -> current value (read or written)
        self._dirty: set[str] = set()
        self._markers: set[str] = set()

    def scope(self, requester_key: str | None) -> State:
        """The shared scope (None), or the scope of the key that signed the order ("" if unsigned)."""
        if requester_key is None:
            return ScopedState(self, "*")
        return ScopedState(self, "requester:" + requester_key) if requester_key else _Unsigned()

    def _load(self, item_id: str) -> bytes | None:
        if item_id not in self._values:
            stored = self._read(item_id)
            if stored is None:
                self._keys.check_fresh(item_id, 0)
                self._versions[item_id], self._values[item_id] = 0, None
            else:
                version, sealed = stored
                value = self._keys.open(item_id, version, sealed)
                self._keys.check_fresh(item_id, version)
                self._versions[item_id], self._values[item_id] = version, value
        return self._values[item_id]

    def get(self, item_id: str) -> bytes | None:
        return self._load(item_id)

    def put(self, item_id: str, value: bytes | None) -> None:
        self._load(item_id)  # the version to build on
        self._values[item_id] = value
        self._dirty.add(item_id)

    def mark_applied(self, work_order_id: str) -> None:
        """Record that this order changed state; refuse it if it did so before (a durable replay check)."""
        marker = self._keys.item_id(self._workload, "order", work_order_id.lower())
        self._markers.add(marker)
        if self._load(marker) is not None:
            raise EeaError(Status.INVALID_PARAMETER, "replayed work order: its state changes were already applied")
        self.put(marker, b"1")

    @property
    def changed(self) -> bool:
        return bool(self._dirty)

    def versions(self) -> tuple[dict[str, int], dict[str, int]]:
        """The versions this order read and the ones it writes, markers left out: what the key manager's
        counters check and record (`enclave/counters.py`)."""
        reads = {i: v for i, v in self._versions.items() if i not in self._markers}
        writes = {i: self._versions[i] + 1 for i in self._dirty if i not in self._markers}
        return reads, writes

    def writes(self) -> list[StateWrite]:
        out = []
        for item_id in sorted(self._dirty):
            version = self._versions[item_id] + 1
            out.append(StateWrite(item_id, version, self._keys.seal(item_id, version, self._values[item_id])))
        return out


class ScopedState(State):
    """What a workload sees as `ctx.state` or `ctx.requester_state`."""

    def __init__(self, session: StateSession, scope: str) -> None:
        self._session, self._scope = session, scope

    def _id(self, name: str) -> str:
        return self._session._keys.item_id(self._session._workload, self._scope, name)

    def get(self, name: str) -> bytes | None:
        check_state_item(name)
        return self._session.get(self._id(name))

    def put(self, name: str, value: bytes) -> None:
        check_state_item(name, value)
        self._session.put(self._id(name), value)

    def delete(self, name: str) -> None:
        check_state_item(name)
        self._session.put(self._id(name), None)


class _Unsigned(State):
    """`ctx.requester_state` of an unsigned order: there is no requester the enclave could vouch for."""

    def _refuse(self, *_: object) -> None:
        raise EeaError(
            Status.ACCESS_DENIED,
            "this workload keeps state per requester: sign the work order (requesterSignature and verifyingKey)",
        )

    get = put = delete = _refuse  # type: ignore[assignment]
