"""Group commit: store transitions run on one writer thread; those that arrive together share one
durable commit, each inside its own savepoint so one failure never undoes another.

The event loop never waits on an fsync, and under load one fsync covers many work orders.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from .sqlite import Store

log = logging.getLogger("adytum.store")
Op = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]"]


class GroupCommit:
    def __init__(self, store: Store, *, max_batch: int = 1024) -> None:
        self.store = store
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[Op | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="adytum-store-writer", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.commits = 0
        self.transitions = 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread.start()

    async def stop(self) -> None:
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)

    def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Queue `fn(store, *args)`; the future resolves once its transaction is durable."""
        assert self._loop is not None, "GroupCommit.start() first"
        fut = self._loop.create_future()
        self._queue.put((fn, args, fut))
        return fut

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self.submit(fn, *args)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    op = self._queue.get_nowait()
                except queue.Empty:
                    break
                if op is None:
                    stop = True
                    break
                batch.append(op)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[Op]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            with self.store.transaction():
                for i, (fn, args, _) in enumerate(batch):
                    try:
                        with self.store.savepoint(f"op{i}"):
                            outcomes.append((True, fn(self.store, *args)))
                    except Exception as exc:  # this transition only; the rest of the batch stands
                        outcomes.append((False, exc))
        except Exception as exc:
            log.error("store commit failed: %s", exc)
            outcomes = [(False, exc)] * len(batch)
        self.commits += 1
        self.transitions += len(batch)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(_resolve, [op[2] for op in batch], outcomes)


def _resolve(futures: list[asyncio.Future[Any]], outcomes: list[tuple[bool, Any]]) -> None:
    for fut, (ok, value) in zip(futures, outcomes, strict=True):
        if fut.done():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)
