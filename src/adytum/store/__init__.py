"""The durable store: workers, requests, the schedule, responses, encrypted workload state, receipts and their
ledger."""

from .committer import GroupCommit, StoreUnavailable, is_store_fault
from .sqlite import (
    Duplicate,
    ItemWrite,
    LedgerLeaf,
    NewOrder,
    NewReceipt,
    NewReceiptUpdate,
    Outcome,
    StateConflict,
    Store,
    StoredHead,
    StoreError,
    UnknownOrder,
    WorkerRow,
)

__all__ = [
    "Duplicate",
    "GroupCommit",
    "ItemWrite",
    "LedgerLeaf",
    "NewOrder",
    "NewReceipt",
    "NewReceiptUpdate",
    "Outcome",
    "StateConflict",
    "Store",
    "StoredHead",
    "StoreError",
    "StoreUnavailable",
    "UnknownOrder",
    "WorkerRow",
    "is_store_fault",
]
