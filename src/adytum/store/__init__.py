"""The durable store: workers, requests, the schedule, responses, encrypted workload state, receipts and their
ledger."""

from .committer import GroupCommit
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
    "UnknownOrder",
    "WorkerRow",
]
