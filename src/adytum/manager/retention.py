"""Retention: what the store keeps of answered orders, and for how long.

Two rules, each run in short batches so a backlog never holds one long transaction:

- A failed order's request body is forgotten after `failed_retention` seconds (`Store.forget_failed_bodies`).
  Junk from a stranger (valid shape, nonsense keys) would otherwise keep up to `max_body` bytes for ever; its
  row stays, for the duplicate-id and nonce rules and its receipt.
- An answered order is pruned after `answered_retention` seconds (`Store.prune_answered`): its result can no
  longer be fetched. Receipts and the ledger stay, so with receipts on its id stays taken.

Every node sharing a store runs it; two nodes pruning at once only find less to do. Once a minute it also
asks the store to make deleted rows' space usable again (`Store.reclaim`: VACUUM on PostgreSQL, where
autovacuum may be off or behind), so that a steady stream of orders keeps the database's size bounded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ..store import GroupCommit, Store

log = logging.getLogger("adytum.manager")

#: Rows per store transition.
BATCH = 500


#: Seconds between two `Store.reclaim` runs.
RECLAIM_INTERVAL = 60.0


class Retention:
    def __init__(self, committer: GroupCommit, failed_retention: float, answered_retention: float) -> None:
        """`answered_retention` 0: answered orders are kept for ever."""
        self.committer = committer
        self._reclaimed_at = time.monotonic()
        self.failed_retention, self.answered_retention = failed_retention, answered_retention
        shortest = min(failed_retention, answered_retention or failed_retention)
        #: Seconds between runs: a tenth of the shorter retention, within 1 s .. 60 s.
        self.interval = min(60.0, max(1.0, shortest / 10))
        self.forgotten = 0
        self.pruned = 0

    async def run_once(self) -> tuple[int, int]:
        """Apply both rules to everything past them; (bodies forgotten, orders pruned)."""
        now = time.time()
        forgotten = await self._drain(Store.forget_failed_bodies, now - self.failed_retention)
        pruned = (
            await self._drain(Store.prune_answered, now - self.answered_retention) if self.answered_retention else 0
        )
        self.forgotten += forgotten
        self.pruned += pruned
        return forgotten, pruned

    async def _drain(self, transition: Callable[..., int], older_than: float) -> int:
        total = 0
        while True:
            n: int = await self.committer.submit(transition, older_than, BATCH)
            total += n
            if n < BATCH:
                return total

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
                if time.monotonic() - self._reclaimed_at >= RECLAIM_INTERVAL:
                    self._reclaimed_at = time.monotonic()
                    await asyncio.to_thread(self.committer.store.reclaim)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store is busy or faulty: the next run catches up
                log.warning("applying retention to answered work orders failed: %s", exc)
            await asyncio.sleep(self.interval)
