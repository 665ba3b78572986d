"""The notification outbox: one row per work order that named a `notifyUri`, stored with the order itself and
due once the order is answered, so no answer goes unnotified across a crash or a restart.

Delivery is at least once. A sender takes a row by its attempt count (`take`: only one sender, on any node
sharing the store, wins each attempt) and holds it until `until`; a row it never settled is then due again.
Receivers tell repeats apart by the work-order id. Transitions take the store first, as `GroupCommit` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Store

WAITING, DELIVERED, REFUSED, ABANDONED = "waiting", "delivered", "refused", "abandoned"


@dataclass(frozen=True)
class Notification:
    work_order_id: str
    uri: str
    attempts: int  # made so far
    state: str = WAITING
    last_error: str = ""


def add(store: Store, work_order_id: str, uri: str, now: float) -> None:
    """Inside the order's own insert: its notification waits for the answer."""
    store.db.execute(
        "INSERT INTO notifications (work_order_id, uri, state, attempts, next_at, last_error) "
        "VALUES (?, ?, 'waiting', 0, ?, '') ON CONFLICT DO NOTHING",
        (work_order_id, uri, now),
    )


def due(store: Store, now: float, limit: int = 100) -> list[Notification]:
    """Waiting notifications of answered orders whose time has come, oldest first."""
    rows = store.db.execute(
        "SELECT n.work_order_id, n.uri, n.attempts FROM notifications n "
        "JOIN responses r ON r.work_order_id = n.work_order_id "
        "WHERE n.state = 'waiting' AND n.next_at <= ? ORDER BY n.next_at LIMIT ?",
        (now, limit),
    ).fetchall()
    return [Notification(str(r[0]), str(r[1]), int(r[2])) for r in rows]


def next_due(store: Store) -> float | None:
    """When the next waiting notification of an answered order falls due (None: none waits)."""
    row = store.db.execute(
        "SELECT MIN(n.next_at) FROM notifications n JOIN responses r ON r.work_order_id = n.work_order_id "
        "WHERE n.state = 'waiting'"
    ).fetchone()
    return float(row[0]) if row and row[0] is not None else None


def take(store: Store, work_order_id: str, attempts: int, until: float) -> bool:
    """Attempt number `attempts + 1` is this sender's until `until` (False: another sender took it first)."""
    cur = store.db.execute(
        "UPDATE notifications SET attempts = attempts + 1, next_at = ? "
        "WHERE work_order_id = ? AND state = 'waiting' AND attempts = ?",
        (until, work_order_id, attempts),
    )
    return store._expect(lambda: int(cur.rowcount) == 1)


def settle(store: Store, work_order_id: str, state: str, next_at: float, error: str = "") -> None:
    """The attempt's end: delivered, refused by policy, abandoned, or (waiting) due again at `next_at`."""
    store.db.execute(
        "UPDATE notifications SET state = ?, next_at = ?, last_error = ? WHERE work_order_id = ?",
        (state, next_at, error[:500], work_order_id),
    )


def release(store: Store, work_order_id: str, attempts: int) -> None:
    """A sender's attempt number `attempts` was cut short (it stopped): due again now, unless it was settled."""
    store.db.execute(
        "UPDATE notifications SET next_at = 0, last_error = 'the node stopped during the attempt' "
        "WHERE work_order_id = ? AND state = 'waiting' AND attempts = ?",
        (work_order_id, attempts),
    )


def get(store: Store, work_order_id: str) -> Notification | None:
    row = store.db.execute(
        "SELECT work_order_id, uri, attempts, state, last_error FROM notifications WHERE work_order_id = ?",
        (work_order_id,),
    ).fetchone()
    return Notification(str(row[0]), str(row[1]), int(row[2]), str(row[3]), str(row[4])) if row else None


def counts(store: Store) -> dict[str, int]:
    """Notifications by state (the dashboard's outbox line)."""
    out = dict.fromkeys((WAITING, DELIVERED, REFUSED, ABANDONED), 0)
    for state, n in store.db.execute("SELECT state, COUNT(*) FROM notifications GROUP BY state"):
        out[str(state)] = int(n)
    return out
