"""Retention: the request bodies of failed orders are forgotten after `ManagerConfig.failed_retention` seconds.

An order that fails before any crypto is checked (junk from a stranger: valid shape, nonsense keys) would
otherwise keep up to `max_body` bytes in the store for ever. Its row stays (the duplicate-id and nonce rules
and its receipt need it); only the body goes (`Store.forget_failed_bodies`).
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..store import GroupCommit, Store

log = logging.getLogger("adytum.manager")

#: Bodies forgotten per store transition: a backlog is worked off in short transactions, not one long one.
BATCH = 500


class FailedBodyRetention:
    def __init__(self, committer: GroupCommit, retention: float) -> None:
        self.committer = committer
        self.retention = retention
        #: Seconds between runs: a tenth of the retention, within 1 s .. 60 s.
        self.interval = min(60.0, max(1.0, retention / 10))
        self.forgotten = 0

    async def run_once(self) -> int:
        """Forget every body past retention, a batch per transaction; how many were forgotten."""
        total = 0
        while True:
            n = await self.committer.submit(Store.forget_failed_bodies, time.time() - self.retention, BATCH)
            total += n
            if n < BATCH:
                break
        self.forgotten += total
        return total

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store is busy or faulty: the next run catches up
                log.warning("forgetting the bodies of failed work orders failed: %s", exc)
            await asyncio.sleep(self.interval)
