"""What the dashboard shows of the orders: ids, states, codes and times, never a request or result body.

Both reads walk an index (the schedule's sequence, the responses' completion time), so a store of millions of
orders answers them as fast as an empty one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import Store


def recent(store: Store, limit: int = 20) -> list[dict[str, Any]]:
    """The newest answered orders and the oldest waiting ones, newest event first."""
    answered = store.db.execute(
        "SELECT r.work_order_id, r.code, o.submitted_at, r.completed_at FROM responses r "
        "JOIN work_orders o ON o.work_order_id = r.work_order_id ORDER BY r.completed_at DESC LIMIT ?",
        (limit,),
    ).fetchall()
    waiting = store.db.execute(
        "SELECT s.work_order_id, s.state, o.submitted_at FROM schedule s "
        "JOIN work_orders o ON o.work_order_id = s.work_order_id ORDER BY s.seq LIMIT ?",
        (limit,),
    ).fetchall()
    rows: list[dict[str, Any]] = [
        {"workOrderId": str(w), "state": str(state), "submittedAt": float(at), "completedAt": None, "code": None}
        for w, state, at in waiting
    ]
    rows += [
        {
            "workOrderId": str(w),
            "state": "done" if code == 0 else "failed",
            "code": int(code),
            "submittedAt": float(at),
            "completedAt": float(done),
        }
        for w, code, at, done in answered
    ]
    return sorted(rows, key=lambda r: r["completedAt"] or r["submittedAt"], reverse=True)[:limit]
