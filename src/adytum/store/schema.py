"""One schema for SQLite and PostgreSQL, in numbered migrations; only the few type words differ."""

from __future__ import annotations

from dataclasses import dataclass

DIALECTS = {
    # key: an integer primary key the store numbers itself (SQLite: the rowid; PostgreSQL: 64 bits)
    "sqlite": {
        "blob": "BLOB",
        "serial": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "real": "REAL",
        "key": "INTEGER PRIMARY KEY",
    },
    "postgres": {
        "blob": "BYTEA",
        "serial": "BIGSERIAL PRIMARY KEY",
        "real": "DOUBLE PRECISION",
        "key": "BIGINT PRIMARY KEY",
    },
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS workers (
    worker_id            TEXT PRIMARY KEY,
    worker_type          INTEGER NOT NULL,
    organization_id      TEXT NOT NULL,
    application_type_id  TEXT NOT NULL,
    status               INTEGER NOT NULL,
    record               TEXT NOT NULL,
    updated_at           {real} NOT NULL,
    expires_at           {real}
);
CREATE TABLE IF NOT EXISTS state (
    item_id     TEXT PRIMARY KEY,
    version     BIGINT NOT NULL,
    value       {blob} NOT NULL,
    updated_at  {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS work_orders (
    work_order_id    TEXT PRIMARY KEY,
    worker_id        TEXT NOT NULL,
    requester_id     TEXT NOT NULL,
    requester_nonce  TEXT NOT NULL,
    params           {blob} NOT NULL,
    submitted_at     {real} NOT NULL,
    UNIQUE (requester_id, requester_nonce)
);
CREATE TABLE IF NOT EXISTS schedule (
    seq            {serial},
    work_order_id  TEXT NOT NULL UNIQUE REFERENCES work_orders (work_order_id),
    worker_id      TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('scheduled', 'processing')),
    claimed_at     {real}
);
CREATE INDEX IF NOT EXISTS schedule_worker_state ON schedule (worker_id, state, seq);
CREATE TABLE IF NOT EXISTS responses (
    work_order_id  TEXT PRIMARY KEY REFERENCES work_orders (work_order_id),
    code           INTEGER NOT NULL,
    body           {blob} NOT NULL,
    completed_at   {real} NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_failed ON responses (completed_at) WHERE code <> 0;
CREATE TABLE IF NOT EXISTS receipts (
    work_order_id      TEXT PRIMARY KEY REFERENCES work_orders (work_order_id),
    worker_id          TEXT NOT NULL,
    worker_service_id  TEXT NOT NULL,
    requester_id       TEXT NOT NULL,
    status             INTEGER NOT NULL,
    by                 TEXT NOT NULL CHECK (by IN ('node', 'requester')),
    leaf               BIGINT NOT NULL,
    created_at         {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS receipt_updates (
    work_order_id  TEXT NOT NULL REFERENCES receipts (work_order_id),
    idx            INTEGER NOT NULL,
    updater_id     TEXT NOT NULL,
    update_type    BIGINT NOT NULL,
    by             TEXT NOT NULL CHECK (by IN ('worker', 'requester', 'node')),
    leaf           BIGINT NOT NULL,
    created_at     {real} NOT NULL,
    PRIMARY KEY (work_order_id, idx)
);
CREATE TABLE IF NOT EXISTS ledger (
    idx            {key},
    work_order_id  TEXT NOT NULL,
    data           {blob} NOT NULL,
    hash           {blob} NOT NULL,
    created_at     {real} NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_work_order ON ledger (work_order_id, idx);
CREATE TABLE IF NOT EXISTS ledger_heads (
    tree_size     {key},
    root          {blob} NOT NULL,
    timestamp_ms  BIGINT NOT NULL,
    signature     TEXT NOT NULL,
    frontier      {blob} NOT NULL,
    created_at    {real} NOT NULL
);
"""
#: Columns the `receipts` table has had since receipts were written; a table without them predates that.
#: A receipt and its updates are stored once, as ledger leaves: `leaf` is the ledger index of the one in force.
RECEIPT_COLUMNS = frozenset({"worker_id", "worker_service_id", "requester_id", "by", "leaf"})

_CLAIMS = """
ALTER TABLE schedule ADD COLUMN owner TEXT;
CREATE INDEX IF NOT EXISTS schedule_owner ON schedule (owner, state);
CREATE TABLE IF NOT EXISTS nodes (
    node_id      TEXT PRIMARY KEY,
    alive_until  {real} NOT NULL,
    started_at   {real} NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_completed ON responses (completed_at);
"""

_NOTIFICATIONS = """
CREATE TABLE IF NOT EXISTS notifications (
    work_order_id  TEXT PRIMARY KEY,
    uri            TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('waiting', 'delivered', 'refused', 'abandoned')),
    attempts       INTEGER NOT NULL,
    next_at        {real} NOT NULL,
    last_error     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS notifications_due ON notifications (state, next_at);
"""


@dataclass(frozen=True)
class Migration:
    version: int
    why: str
    text: str

    def statements(self, dialect: str) -> list[str]:
        text = self.text.format(**DIALECTS[dialect])
        return [stmt.strip() for stmt in text.split(";") if stmt.strip()]


#: Every schema version, oldest first; a store applies those above its `schema_version` in one transaction.
#: Never edit one that has shipped: add the next. (Version 1 is the schema from before versions were kept,
#: written with IF NOT EXISTS, so a store from then takes it as a no-op.)
MIGRATIONS = (
    Migration(1, "workers, orders, schedule, responses, state, receipts and their ledger", _SCHEMA),
    Migration(2, "claims: many nodes on one store, each order claimed by one node under a lease", _CLAIMS),
    Migration(3, "notifications: the outbox of result notifications to requesters' notifyUri", _NOTIFICATIONS),
)
LATEST = MIGRATIONS[-1].version
