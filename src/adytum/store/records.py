"""What goes into the store and comes out of it: plain records and the store's own refusals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import AdytumError
from ..protocol import WorkerStatus


class StateConflict(AdytumError):
    """A state item changed since the order read it: the order must run again on the new value."""


@dataclass(frozen=True)
class ItemWrite:
    item_id: str
    version: int  # stored only if the current version is version - 1 (for version 1: no item yet)
    value: bytes


@dataclass(frozen=True)
class Outcome:
    """A stored response: code 0 with the result JSON, or an EEA error code with its message."""

    code: int
    body: bytes


class Duplicate(AdytumError):
    """A work order with this id, or this requester nonce, was already accepted (or, field "receipt", its
    requester already created its receipt)."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


class UnknownOrder(AdytumError):
    """No such work order here (for a receipt create), or no receipt for it (for an update)."""

    def __init__(self, work_order_id: str) -> None:
        super().__init__(work_order_id)
        self.work_order_id = work_order_id


@dataclass(frozen=True)
class NewReceipt:
    """A receipt's create record; `params` is its ReceiptCreateParams JSON (the store builds the leaf from it)."""

    work_order_id: str
    worker_id: str
    worker_service_id: str
    requester_id: str
    status: int
    by: Literal["node", "requester"]
    params: str


@dataclass(frozen=True)
class NewReceiptUpdate:
    """A receipt update; `params` is its ReceiptUpdateParams JSON (the store numbers it and builds its leaf)."""

    work_order_id: str
    updater_id: str
    update_type: int
    by: Literal["worker", "requester", "node"]
    params: str


@dataclass(frozen=True)
class StoredHead:
    """A signed tree head, with the frontier of its tree (what the enclave needs to extend it)."""

    tree_size: int
    root: bytes
    timestamp_ms: int
    signature: str
    frontier: list[bytes]


@dataclass(frozen=True)
class LedgerLeaf:
    index: int
    work_order_id: str
    data: bytes  # an encoded Event (`protocol.receipts.encode_event`)
    hash: bytes  # merkle.leaf_hash(data)


@dataclass(frozen=True)
class NewOrder:
    work_order_id: str
    worker_id: str
    requester_id: str
    requester_nonce: str
    params: bytes
    receipt: NewReceipt | None = None  # the node's receipt: stored, with its leaf, in the same transition
    owner: str | None = None  # the node that claims it as it is stored (it had room, and nothing older waited)


@dataclass(frozen=True)
class WorkerRow:
    worker_id: str
    worker_type: int
    organization_id: str
    application_type_id: str
    status: WorkerStatus
    record: str
    expires_at: float | None = None  # when its attestation goes stale; None: the record carries no expiry


class StoreError(AdytumError):
    """The database cannot serve: damaged, unreadable or not writable. The message is one line naming the file."""


class StoreUnavailable(AdytumError):
    """The store cannot write right now (the cause is in the message); the transition was not stored."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"the store cannot write right now ({describe_fault(cause)}); retry later")
        self.cause = cause


def describe_fault(exc: BaseException) -> str:
    """One line: a driver's message may run to several (PostgreSQL's hints)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"
