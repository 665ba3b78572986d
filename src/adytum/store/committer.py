"""Group commit: store transitions run on one writer thread; those that arrive together share one
durable commit, each inside its own savepoint so one failure never undoes another.

The event loop never waits on an fsync, and under load one fsync covers many work orders. A batch of only
`volatile` transitions (claims, heartbeats: lost in a crash, they cost a re-run) does not wait for the disk.

A transition fails in one of two ways. Its own logic refuses it (Duplicate, StateConflict, ...): the caller
hears of it at once. Or the store cannot write (disk full, read-only file, I/O error, a lost connection to
the server; `Store.is_fault` tells): the caller gets
`StoreUnavailable`, and the node's own transitions (`persist`) are retried with backoff until the store
writes again, so nothing the node took on is dropped. A fault is logged once per `fault_log_interval`.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from .base import Recheck, Store
from .records import StoreUnavailable, describe_fault

log = logging.getLogger("adytum.store")
Op = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]"]
#: What the event loop hands the writer at once: every transition submitted in one turn of the loop.
Ops = list[Op]


class GroupCommit:
    def __init__(
        self,
        store: Store,
        *,
        max_batch: int = 1024,
        fault_log_interval: float = 10.0,
        retry_initial: float = 0.05,
        retry_max: float = 1.0,
    ) -> None:
        self.store = store
        self.max_batch = max_batch
        self.fault_log_interval = fault_log_interval
        self.retry_initial, self.retry_max = retry_initial, retry_max
        self._queue: queue.SimpleQueue[Ops | None] = queue.SimpleQueue()
        self._gathering: Ops = []  # submitted in this turn of the loop, handed over at its end (`_hand_over`)
        #: Outcomes of commits the loop has not resolved yet: one wake of the loop covers all of them.
        self._outcomes: list[tuple[list[asyncio.Future[Any]], list[tuple[bool, Any]]]] = []
        self._outcomes_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="adytum-store-writer", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.commits = 0
        self.transitions = 0
        self.failed_commits = 0
        #: Why the store cannot write, while it cannot (set and cleared by the writer thread).
        self.fault: str | None = None
        self._fault_since = 0.0
        self._fault_logged = 0.0
        self._fault_count = 0

    @property
    def writable(self) -> bool:
        return self.fault is None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread.start()

    async def stop(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._hand_over()
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)

    def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Queue `fn(store, *args)`; the future resolves once its transaction is durable, or fails with the
        transition's own exception or with `StoreUnavailable`. Everything submitted in one turn of the event
        loop reaches the writer together: one wake-up of its thread, not one per transition."""
        assert self._loop is not None, "GroupCommit.start() first"
        fut = self._loop.create_future()
        if not self._gathering:
            self._loop.call_soon(self._hand_over)
        self._gathering.append((fn, args, fut))
        return fut

    def _hand_over(self) -> None:
        if self._gathering:
            self._queue.put(self._gathering)
            self._gathering = []

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self.submit(fn, *args)

    async def persist(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A transition the node owes (an enclave's answer, a tree head): retried with backoff while the store
        cannot write, so it is never dropped; the transition's own failures are raised at once."""
        delay = self.retry_initial
        while True:
            try:
                return await self.submit(fn, *args)
            except StoreUnavailable:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)

    def persist_later(self, fn: Callable[..., Any], *args: Any) -> None:
        """`persist` without waiting for it; its own failure is logged (a stop cancels what is left)."""
        task = asyncio.ensure_future(self.persist(fn, *args))
        self._background.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("a background store transition failed: %s", task.exception())

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            stop = False
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.extend(more)
            for start in range(0, len(batch), self.max_batch):
                self._commit(batch[start : start + self.max_batch])
            if stop:
                return

    def _commit(self, batch: list[Op]) -> None:
        """The batch in one transaction, without a savepoint each (a savepoint is two statements more per
        transition, and on a server each is a message) and with its reads deferred (`Store.transaction`). If
        one transition refuses, or a deferred read did not hold, everything is rolled back and the batch runs
        again with each transition in its own savepoint, reading as it goes, so a refusal is its own."""
        durable = not all(getattr(fn, "volatile", False) for fn, _, _ in batch)
        outcomes, fault, again = self._attempt(batch, isolated=False, durable=durable)
        if again:
            outcomes, fault, _ = self._attempt(batch, isolated=True, durable=durable)
        # Only a durable commit says the store writes again: a volatile batch may have read, or written nothing.
        self._note(fault, durable and any(ok for ok, _ in outcomes))
        self.commits += 1
        self.transitions += len(batch)
        with self._outcomes_lock:
            wake = not self._outcomes  # else the loop is woken already, and resolves these with the others
            self._outcomes.append(([op[2] for op in batch], outcomes))
        if wake:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        with self._outcomes_lock:
            done, self._outcomes = self._outcomes, []
        for futures, outcomes in done:
            _resolve(futures, outcomes)

    def _attempt(
        self, batch: list[Op], *, isolated: bool, durable: bool
    ) -> tuple[list[tuple[bool, Any]], BaseException | None, bool]:
        """(outcomes, the store's fault if it had one, whether to run the batch again isolated)."""
        outcomes: list[tuple[bool, Any]] = []
        fault: BaseException | None = None
        try:
            with self.store.transaction(deferred=not isolated, durable=durable):
                for i, (fn, args, _) in enumerate(batch):
                    if not isolated:
                        outcomes.append((True, fn(self.store, *args)))  # a refusal rolls the whole batch back
                        continue
                    try:
                        with self.store.savepoint(f"op{i}"):
                            outcomes.append((True, fn(self.store, *args)))
                    except Exception as exc:  # this transition only; the rest of the batch stands
                        if self.store.is_fault(exc):
                            fault = exc
                            exc = StoreUnavailable(exc)
                        outcomes.append((False, exc))
        except Exception as exc:
            if self.store.is_fault(exc):
                return [(False, StoreUnavailable(exc))] * len(batch), exc, False
            if isinstance(exc, Recheck) or (not isolated and len(batch) > 1):
                return [], None, True
            if not isolated:
                return [(False, exc)], None, False  # the one transition of a batch of one refused
            log.error("store commit failed: %s", exc)
            return [(False, exc)] * len(batch), None, False
        return outcomes, fault, False

    def _note(self, fault: BaseException | None, stored: bool) -> None:
        """Keep `fault` current and log it once per interval; a stored transition means the store writes again."""
        now = time.monotonic()
        if fault is not None:
            self.failed_commits += 1
            self._fault_count += 1
            if self.fault is None:
                self._fault_since, self._fault_logged, self._fault_count = now, now, 1
                self.fault = describe_fault(fault)
                log.error(
                    "the store cannot write (%s): answers are held and retried, new work orders get BUSY", self.fault
                )
            elif now - self._fault_logged >= self.fault_log_interval:
                self._fault_logged = now
                self.fault = describe_fault(fault)
                log.error(
                    "the store still cannot write (%s) after %.0f s; %d commits failed so far",
                    self.fault,
                    now - self._fault_since,
                    self._fault_count,
                )
        elif stored and self.fault is not None:
            log.warning(
                "the store writes again after %.1f s (%d commits failed meanwhile)",
                now - self._fault_since,
                self._fault_count,
            )
            self.fault = None


def _resolve(futures: list[asyncio.Future[Any]], outcomes: list[tuple[bool, Any]]) -> None:
    for fut, (ok, value) in zip(futures, outcomes, strict=True):
        if fut.done():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)
