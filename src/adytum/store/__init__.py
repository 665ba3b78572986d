"""The durable store: workers, requests, the schedule and its claims, responses, encrypted workload state,
receipts and their ledger. One `Store` (base.py) holds the semantics; `open_store` picks the backend."""

from __future__ import annotations

from pathlib import Path

from .base import ANSWERED, HEADS, SCHEDULED, Store
from .committer import GroupCommit
from .records import (
    Duplicate,
    ItemWrite,
    LedgerLeaf,
    NewOrder,
    NewReceipt,
    NewReceiptUpdate,
    Outcome,
    StateConflict,
    StoredHead,
    StoreError,
    StoreUnavailable,
    UnknownOrder,
    WorkerRow,
)
from .sqlite import SqliteStore


def is_server_store(target: str | None) -> bool:
    """A PostgreSQL connection string (postgresql://..., or key=value with dbname=) rather than a file."""
    return bool(target) and (str(target).startswith(("postgresql://", "postgres://")) or "dbname=" in str(target))


def open_store(target: str | Path, *, durable: bool = True) -> Store:
    """The store at `target`: a PostgreSQL connection string, or the path of a SQLite file."""
    if is_server_store(str(target)):
        from .postgres import PostgresStore  # psycopg is needed only by nodes that use it

        return PostgresStore(str(target))
    return SqliteStore(target, durable=durable)


__all__ = [
    "ANSWERED",
    "HEADS",
    "SCHEDULED",
    "Duplicate",
    "GroupCommit",
    "ItemWrite",
    "LedgerLeaf",
    "NewOrder",
    "NewReceipt",
    "NewReceiptUpdate",
    "Outcome",
    "SqliteStore",
    "StateConflict",
    "Store",
    "StoredHead",
    "StoreError",
    "StoreUnavailable",
    "UnknownOrder",
    "WorkerRow",
    "is_server_store",
    "open_store",
]
