"""Monotonic counters held by the key-manager enclave: order and freshness that survive enclave restarts.

A work-order enclave forgets everything when the host restarts it; the key manager seals what must not be
forgotten and serves it to every work-order enclave of the pool. It holds, bounded by requesters and by live
state items (never by orders):

* per strictly ordered requester (SHA-256 of its verifying key): the last sequence number it used and the
  order that used it; the next order must carry exactly one more (a gap, a reorder or a repeat is refused).
  The order that used a number may run again (its answer was lost), never another order with that number;
* per state item: the highest version any enclave has read (`seen`), and the version an order wrote that no
  enclave has read back yet (`pending`, with that order). Applied-order markers are left out: an order
  replayed on rolled-back state reads its items at versions older than `seen` or `pending`, and is refused.

One `Commit` per order that needs them, sent before the order's answer leaves its enclave, is checked and
applied whole (or not at all). A read older than `seen` or than another order's `pending` is either a
rollback or a read that raced a newer write (orders run in parallel, on several enclaves and nodes): the order
runs again later on the state stored then (`Decision.retry`), and a store that keeps handing back the old
version fails it, after `max_conflicts` tries, as a rollback. The writer itself may read the old version again:
its write was lost in a crash and it is running again. Every change is sealed before the answer (`DATA_DIR/kme/counters.sealed`), with a version
that grows by one per change: what the anchor (`enclave/anchor.py`) holds a digest of.

Work-order enclave and key manager talk through the host, under a key derived from the worker's secret
(which only enclaves the key manager provisioned hold); each request has its channel's next number, and the
reply is bound to it, so the host can neither read, forge nor replay either.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import msgspec

from .. import crypto
from ..files import write_atomic
from .sealing import Sealer, UnsealError

SEAL_LABEL = "counters.sealed"
_DOMAIN = b"adytum-counters/1\0"
#: Channels (work-order enclave processes) whose last request number the key manager remembers.
MAX_CHANNELS = 4096


class Commit(msgspec.Struct, forbid_unknown_fields=True):
    """What one order needs checked and recorded: its strict sequence, the state versions it read and wrote."""

    order: bytes  # SHA-256 of the canonical work-order id
    requester: str = ""  # strict ordering: the requester key; empty: none
    sequence: int = 0
    reads: dict[str, int] = {}
    writes: dict[str, int] = {}


class Decision(msgspec.Struct, forbid_unknown_fields=True):
    """The key manager's answer: applied (`refused` empty), or why not: "sequence" (not the requester's next),
    "retry" (older state than seen or pending: run it again later, on the state stored then), "channel" (the
    request or its answer did not open), "unreachable" (no answer came back)."""

    refused: str = ""
    message: str = ""

    @property
    def ok(self) -> bool:
        return not self.refused


class _Requester(msgspec.Struct, array_like=True):
    sequence: int
    order: bytes


class _Item(msgspec.Struct, array_like=True):
    seen: int = 0
    pending: int = 0
    order: bytes = b""


class CounterState(msgspec.Struct):
    version: int = 0
    requesters: dict[str, _Requester] = {}
    items: dict[str, _Item] = {}
    witnesses: list[str] = []  # verifying keys of the witnesses at the last anchored start (empty: never anchored)

    def decide(self, c: Commit) -> Decision:
        """Check `c` against the counters; apply it only if it passes (the caller seals the result)."""
        refusal = self._check_sequence(c) or self._check_reads(c)
        if refusal is not None:
            return refusal
        changed = False
        if c.requester:
            self.requesters[c.requester] = _Requester(c.sequence, c.order)
            changed = True
        for item_id, version in c.reads.items():
            if not version and item_id not in self.items:
                continue  # an item nobody wrote yet: nothing to remember
            rec = self.items.setdefault(item_id, _Item())
            if version > rec.seen:
                rec.seen, changed = version, True
            if rec.pending and version >= rec.pending:
                rec.pending, rec.order, changed = 0, b"", True
        for item_id, version in c.writes.items():
            rec = self.items.setdefault(item_id, _Item())
            rec.pending, rec.order, changed = version, c.order, True
        if changed:
            self.version += 1
        return Decision()

    def _check_sequence(self, c: Commit) -> Decision | None:
        if not c.requester:
            return None
        last = self.requesters.get(c.requester)
        expected = (last.sequence if last else 0) + 1
        if c.sequence == expected:
            return None
        if last and c.sequence == last.sequence and c.order == last.order:
            return None  # the same order again: its answer was lost (a crash, the anchor out of reach)
        what = (
            "was already used (a repeat, or an order older than the last)" if c.sequence < expected else "skips ahead"
        )
        return Decision(
            "sequence", f"requesterSequence {c.sequence} {what}: this requester's next sequence is {expected}"
        )

    def _check_reads(self, c: Commit) -> Decision | None:
        for item_id, version in c.reads.items():
            rec = self.items.get(item_id)
            if rec is None:
                continue
            if version < rec.seen:  # a rollback, or a read made before a newer version was stored and read
                return Decision(
                    "retry",
                    f"the host handed back version {version} of a state item the key manager has seen at "
                    f"version {rec.seen}: refused as a rollback (unless the store has caught up when it runs again)",
                )
            if rec.pending and version < rec.pending and rec.order != c.order:
                return Decision(
                    "retry",
                    f"a state item is at version {version} in the store, but another order wrote version "
                    f"{rec.pending} that no enclave has read back: not stored yet, or rolled back",
                )
        return None


class CounterStore:
    """The key manager's counters, sealed at `path` after every change (atomically, fsync'd)."""

    def __init__(self, path: Path, sealer: Sealer) -> None:
        self.path, self._sealer = path, sealer
        self.state = CounterState()
        self.digest = crypto.sha256(msgspec.msgpack.encode(self.state))
        if path.exists():
            plain = sealer.unseal(SEAL_LABEL, path.read_bytes())
            try:
                self.state = msgspec.msgpack.decode(plain, type=CounterState)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise UnsealError(f"sealed counters {path} are malformed: {exc}") from None
            self.digest = crypto.sha256(plain)

    @property
    def version(self) -> int:
        return self.state.version

    def apply(self, c: Commit) -> Decision:
        before = self.state.version
        decision = self.state.decide(c)
        if self.state.version != before:
            self._seal()
        return decision

    def anchored_to(self, witnesses: list[str]) -> None:
        """Record the witnesses these counters are anchored to (a new version, to anchor too)."""
        if self.state.witnesses != witnesses:
            self.state.witnesses = witnesses
            self.state.version += 1
            self._seal()

    def _seal(self) -> None:
        plain = msgspec.msgpack.encode(self.state)
        write_atomic(self.path, self._sealer.seal(SEAL_LABEL, plain))
        self.digest = crypto.sha256(plain)


class _Sealed(msgspec.Struct, array_like=True):
    channel: bytes
    number: int
    box: bytes


def _key(worker_secret: bytes) -> bytes:
    return crypto.hkdf(worker_secret, b"adytum-counters/1 channel")


def _aad(direction: bytes, channel: bytes, number: int) -> bytes:
    return _DOMAIN + direction + channel + number.to_bytes(8, "big")


class CounterClient:
    """A work-order enclave's end: seal a commit, send it through the host, open the bound reply."""

    def __init__(self, worker_secret: bytes) -> None:
        self._key = _key(worker_secret)
        self.channel = crypto.random_bytes(16)
        self._number = 0

    def commit(self, c: Commit, send: Callable[[bytes], bytes]) -> Decision:
        """`send` carries the sealed request to the key manager and returns its sealed reply (b"": unreachable)."""
        self._number += 1
        number = self._number
        box = crypto.aead_encrypt(self._key, msgspec.msgpack.encode(c), _aad(b"req", self.channel, number))
        reply = send(msgspec.msgpack.encode(_Sealed(self.channel, number, box.to_bytes())))
        if not reply:
            return Decision("unreachable", "the key manager could not be reached to check this order; try again")
        try:
            sealed = msgspec.msgpack.decode(reply, type=_Sealed)
            if sealed.channel != self.channel or sealed.number != number:
                raise ValueError("a reply to another request")
            plain = crypto.aead_decrypt(
                self._key, crypto.Encrypted.from_bytes(sealed.box), _aad(b"rep", self.channel, number)
            )
            return msgspec.msgpack.decode(plain, type=Decision)
        except (msgspec.DecodeError, msgspec.ValidationError, crypto.CryptoError, ValueError):
            return Decision("channel", "the key manager's answer did not open: altered or replayed by the host")


class CounterServer:
    """The key manager's end: open a request (its number above the channel's last), decide, seal the reply."""

    def __init__(self, store: CounterStore, worker_secret: Callable[[], bytes]) -> None:
        self.store, self._secret = store, worker_secret
        self._last: OrderedDict[bytes, int] = OrderedDict()

    def handle(self, body: bytes) -> bytes:
        key = _key(self._secret())
        try:
            sealed = msgspec.msgpack.decode(body, type=_Sealed)
            plain = crypto.aead_decrypt(
                key, crypto.Encrypted.from_bytes(sealed.box), _aad(b"req", sealed.channel, sealed.number)
            )
            commit = msgspec.msgpack.decode(plain, type=Commit)
        except (msgspec.DecodeError, msgspec.ValidationError, crypto.CryptoError):
            raise ValueError("a counter request that does not open under the worker's counter key") from None
        if sealed.number <= self._last.get(sealed.channel, 0):
            decision = Decision("channel", "a replayed counter request")
        else:
            self._last[sealed.channel] = sealed.number
            self._last.move_to_end(sealed.channel)
            while len(self._last) > MAX_CHANNELS:
                self._last.popitem(last=False)
            decision = self.store.apply(commit)
        box = crypto.aead_encrypt(key, msgspec.msgpack.encode(decision), _aad(b"rep", sealed.channel, sealed.number))
        return msgspec.msgpack.encode(_Sealed(sealed.channel, sealed.number, box.to_bytes()))
