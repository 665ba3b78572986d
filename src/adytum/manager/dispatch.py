"""Dispatch (`listener.ports.Dispatch`): work orders from the store to the enclaves, answers back to the store.

The store is the only hand-over. When an enclave slot is free and no order waits unclaimed, the listener
stores a new order already claimed by this node and hands it straight over (`reserve`, `take`): no claim, no
read back. Otherwise whoever commits an order calls `wake()` (or, on a shared store, the other nodes hear of
it through the store's notifications), and the dispatcher claims the worker's oldest scheduled orders, as
many as its enclaves have room for (`Store.claim`; many wakes between two claims are one claim; nothing
polls). What it cannot take stays scheduled for the next claim, here or on another node. The queue holds ids:
a claimed order's body is read from the store just before it goes to an enclave. Consumers (a few per
enclave, so each enclave always has the next order waiting) take an order, run it in their enclave and commit
the response. An order whose enclave dies goes back to the queue; one that has killed its enclave
`max_attempts` times gets an error. One whose state changed under it runs again on the new state, up to
`max_conflicts` times.

Claims are held under a lease: the node's heartbeat (`Store.heartbeat`, every third of `lease`). A node that
stops beating loses its claims to the next heartbeat of any node, and its late answers are dropped (only the
claim's owner may answer), so each order is answered once.

With receipts on, each response is stored with its receipt update: the one the enclave signed (by "worker"),
or for a failure the host decided (or an order the enclave could not read) an unsigned one (by "node").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable

import msgspec

from ..channel import Processed
from ..config import ManagerConfig
from ..crypto import b64encode, sha256
from ..protocol import Status, canonical, may_ask_notification
from ..protocol.receipts import ReceiptStatus, ReceiptUpdateParams
from ..store import GroupCommit, ItemWrite, NewReceiptUpdate, Outcome, StateConflict, Store, StoreUnavailable
from .enclave import EnclaveProcess
from .errors import EnclaveDied, EnclaveStartError, SpawnFailed
from .ledger import HeadSigner

log = logging.getLogger("adytum.manager")


class Dispatcher:
    def __init__(
        self,
        config: ManagerConfig,
        reader: Store,
        committer: GroupCommit,
        enclaves: list[EnclaveProcess],
        ledger: HeadSigner | None = None,
    ) -> None:
        """`ledger` hears of every leaf the dispatcher stores (receipts on)."""
        self.config = config
        self.ledger = ledger
        self.reader = reader
        self.committer = committer
        self.enclaves = enclaves
        self.completed = 0
        self.node_id = config.node_id
        #: Orders claimed ahead of the enclaves: enough that none waits for a claim, few enough to share on a
        #: shared store; on a store of its own, enough that most orders are handed over at once (`reserve`).
        self.capacity = len(enclaves) * config.pipeline_depth * (2 if reader.shared else 8)
        self._queue: asyncio.Queue[str] = asyncio.Queue()  # work order ids, claimed by this node
        self._woken = asyncio.Event()
        self._backlog = 0  # scheduled in the store and not claimed, as last counted (plus wakes since)
        self._backlog_at = 0.0
        self._inflight = 0
        self._reserved = 0  # slots promised to orders being stored claimed by this node (`reserve`)
        self._bodies: dict[str, bytes] = {}  # requests of orders taken at once (`take`), until they are sent
        self._held: set[str] = set()  # claimed by this node, not yet answered: queued or in an enclave
        self._quiet: set[str] = set()  # read, not yet answered, and asked for no notification
        self._unsure = False  # a claim failed: it may have committed all the same
        self._attempts: dict[str, int] = defaultdict(int)
        self._conflicts: dict[str, int] = defaultdict(int)
        self._waiters: dict[str, list[asyncio.Future[Outcome | None]]] = defaultdict(list)
        self._tasks: list[asyncio.Task[None]] = []
        #: Called with the id of each order this node answered, once the answer is stored (the notifier's wake),
        #: except those whose request asked for no notification (the notifier would look for none in vain).
        self.answer_hooks: list[Callable[[str], None]] = []

    @property
    def pending(self) -> int:
        """Accepted but not yet answered: claimed here (queued or in an enclave) plus the worker's backlog in
        the store (a node without enclaves counts it anew at most once a second)."""
        if not self.capacity and time.monotonic() - self._backlog_at > 1.0:
            try:
                self._backlog, self._backlog_at = self.reader.backlog(self.config.worker_id), time.monotonic()
            except Exception as exc:  # the count is advice: keep the last one
                log.debug("counting the backlog failed: %s", exc)
        return self._queue.qsize() + self._inflight + self._backlog

    def wake(self) -> None:
        """An order was committed to the store: claim it (and any others since) at the next turn."""
        self._backlog += 1
        self._woken.set()

    def reserve(self) -> str | None:
        """This node's id if an enclave slot is free and no order waits unclaimed: the next order is stored
        claimed by it, and `take`n straight to the queue (a claim and a read of the store fewer)."""
        if self._backlog or self._unsure or self._room() <= 0:
            return None
        self._reserved += 1
        return self.node_id

    def take(self, work_order_id: str, params: bytes) -> None:
        self._reserved -= 1
        self._bodies[work_order_id] = params
        self._hold(work_order_id)

    def unreserve(self, maybe_stored: bool) -> None:
        self._reserved -= 1
        if maybe_stored:  # stored claimed by us, perhaps: the next claim looks for it
            self._unsure = True
            self._woken.set()

    def _room(self) -> int:
        return self.capacity - self._queue.qsize() - self._inflight - self._reserved

    def answered(self, work_order_ids: list[str]) -> None:
        """Orders were answered, maybe by another node (the store's notification): their waiters here read
        the answers."""
        waited = [i for i in work_order_ids if i in self._waiters]
        if waited:
            self._resolve_from_store(waited)

    def recheck(self) -> None:
        """Notifications may have been missed (the store's connection was lost): look at the store itself."""
        self._resolve_from_store(list(self._waiters))
        self._woken.set()

    def _resolve_from_store(self, ids: list[str]) -> None:
        for work_order_id in ids:
            try:
                outcome = self.reader.response(work_order_id)
            except Exception as exc:  # the waiter stays; its timeout, or the next notification, ends it
                log.warning("reading the answer to %s failed: %s", work_order_id, exc)
                return
            if outcome is not None:
                self._deliver(work_order_id, outcome)

    def _deliver(self, work_order_id: str, outcome: Outcome) -> None:
        """The stored outcome to everyone waiting for it here."""
        for fut in self._waiters.pop(work_order_id, []):
            if not fut.done():
                fut.set_result(outcome)

    async def wait(self, work_order_id: str, timeout: float) -> Outcome | None:
        """The outcome, waiting up to `timeout` seconds for it; None if still pending.

        The waiter is registered before the first await: an outcome produced after the caller's `wake()`
        is never missed (one produced before is in the store)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Outcome | None] = loop.create_future()
        self._waiters[work_order_id].append(fut)
        timer = loop.call_later(timeout, _settle, fut)
        try:
            return await fut
        finally:
            timer.cancel()
            waiters = self._waiters.get(work_order_id)
            if waiters is not None:
                if fut in waiters:
                    waiters.remove(fut)
                if not waiters:
                    del self._waiters[work_order_id]

    async def start(self) -> None:
        """Take back what this node had claimed when it last stopped (in flight at a crash), then serve."""
        requeued = await self.committer.persist(Store.release, self.node_id)
        await self.committer.persist(Store.heartbeat, self.node_id, self.config.lease)
        if requeued:
            log.info("%d work orders were in flight at this node's last stop; they are scheduled again", requeued)
        self._tasks.append(asyncio.create_task(self._beat(), name="dispatch-heartbeat"))
        if self.capacity:
            self._woken.set()  # the backlog the last run left
            self._tasks.append(asyncio.create_task(self._feed(), name="dispatch-feed"))
        for enclave in self.enclaves:
            for slot in range(self.config.pipeline_depth):
                self._tasks.append(asyncio.create_task(self._consume(enclave), name=f"{enclave.name}-{slot}"))

    async def stop(self) -> None:
        """Stop taking orders; what this node had claimed goes back to the schedule for the others."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await asyncio.wait_for(self.committer.run(Store.leave, self.node_id), 5.0)
        except (StoreUnavailable, TimeoutError) as exc:  # the lease runs out instead
            log.warning("could not hand back this node's claims at stop (%s); they pass on when its lease ends", exc)

    async def _beat(self) -> None:
        """The lease: renewed every third of it; any node's beat takes back the claims of nodes that stopped."""
        while True:
            await asyncio.sleep(self.config.lease / 3)
            try:
                taken = await self.committer.run(Store.heartbeat, self.node_id, self.config.lease)
            except StoreUnavailable as exc:
                log.warning("the lease of node %s could not be renewed: %s", self.node_id, exc)
                continue
            if taken:
                log.warning("took back %d work orders claimed by nodes whose lease ran out", taken)
                self._woken.set()

    async def _feed(self) -> None:
        while True:
            await self._woken.wait()
            self._woken.clear()
            try:
                await self._claim()
            except StoreUnavailable as exc:  # retried shortly; the claim may have been stored all the same
                self._unsure = True
                log.warning("claiming work orders failed (%s); retrying", exc)
                await asyncio.sleep(0.5)
                self._woken.set()
            except Exception:
                log.exception("claiming work orders failed")

    async def _claim(self) -> None:
        if self._unsure:  # a claim whose commit was never confirmed: what it took is ours all the same
            for work_order_id in await self.committer.run(Store.claimed_by, self.config.worker_id, self.node_id):
                self._hold(work_order_id)
            self._unsure = False
        while (room := self._room()) > 0:
            ids, self._backlog = await self.committer.run(Store.claim, self.config.worker_id, self.node_id, room)
            for work_order_id in ids:
                self._hold(work_order_id)
            if len(ids) < room:
                return

    def _hold(self, work_order_id: str) -> None:
        if work_order_id not in self._held:
            self._held.add(work_order_id)
            self._queue.put_nowait(work_order_id)

    async def _consume(self, enclave: EnclaveProcess) -> None:
        """Take the next order whenever this enclave has a free slot: the least loaded enclave takes the
        next order. A dead enclave is restarted (and provisioned) before it takes more, for as long as it
        takes (`ensure_running` backs off and logs each failed start), while live siblings take the queue.
        With none alive, orders wait for, and count, its restarts, except while its process cannot even be
        spawned: then no order is to blame, and they wait in the queue uncounted."""
        while True:
            if not enclave.alive and (enclave.restart.spawn_failed or any(e.serving for e in self.enclaves)):
                try:
                    await enclave.ensure_running()
                except EnclaveStartError:  # logged there, with its cause; the next turn tries again
                    continue
            work_order_id = await self._queue.get()
            self._inflight += 1
            try:
                await self._dispatch(enclave, work_order_id)
            except asyncio.CancelledError:
                raise
            except Exception:  # keep serving; the order stays claimed, and passes on with this node's lease
                log.exception("dispatch of %s failed", work_order_id)
            finally:
                self._inflight -= 1
            if self._backlog and self._queue.qsize() * 2 <= self.capacity:
                self._woken.set()  # room for more, and orders wait in the store: claim before the enclaves run dry

    async def _dispatch(self, enclave: EnclaveProcess, work_order_id: str) -> None:
        try:
            params = self._bodies.pop(work_order_id, None) or self.reader.order_params(work_order_id)
        except Exception as exc:  # the store cannot read just now: the order waits its turn again
            log.warning("reading work order %s failed (%s); it goes back to the queue", work_order_id, exc)
            await asyncio.sleep(1.0)
            self._queue.put_nowait(work_order_id)
            return
        if params is None:
            log.warning("work order %s is no longer in the store; skipped", work_order_id)
            self._held.discard(work_order_id)
            return
        if not may_ask_notification(params):
            self._quiet.add(work_order_id)
        try:
            await enclave.ensure_running()
            reply = await enclave.process(params)
        except SpawnFailed:  # the order never reached an enclave: it waits for one, uncounted
            self._queue.put_nowait(work_order_id)
            return
        except (EnclaveDied, EnclaveStartError) as exc:
            self._attempts[work_order_id] += 1
            if self._attempts[work_order_id] < self.config.max_attempts:
                log.warning("%s; work order %s goes back to the queue", exc, work_order_id)
                self._queue.put_nowait(work_order_id)
                return
            log.error("work order %s failed: its enclave died %d times", work_order_id, self._attempts[work_order_id])
            await self._finish(
                work_order_id,
                Outcome(Status.FAILED, b"the enclave stopped while processing this work order, repeatedly"),
            )
            return
        if reply.retry:  # the enclave waits for another order's state write to be stored (enclave/counters.py)
            await self._run_again(work_order_id, reply.message, pause=True)
            return
        if reply.code != 0:
            await self._finish(work_order_id, Outcome(reply.code, reply.message.encode()), reply=reply)
            return
        writes = tuple(ItemWrite(w.item_id, w.version, w.value) for w in reply.writes)
        try:
            await self._finish(work_order_id, Outcome(0, reply.result), writes, reply=reply)
        except StateConflict:
            await self._run_again(
                work_order_id, "the state this work order changes kept changing under it; retry later"
            )

    async def _run_again(self, work_order_id: str, reason: str, pause: bool = False) -> None:
        """Another order changed the same state first: run this one again on the state as it is now (`pause`:
        after a moment that grows with each try, for that order's write to be stored)."""
        self._conflicts[work_order_id] += 1
        if self._conflicts[work_order_id] <= self.config.max_conflicts:
            if pause:
                await asyncio.sleep(min(0.002 * self._conflicts[work_order_id], 0.1))
            self._queue.put_nowait(work_order_id)
        else:
            await self._finish(work_order_id, Outcome(Status.FAILED, reason.encode()))

    async def _finish(
        self,
        work_order_id: str,
        outcome: Outcome,
        writes: tuple[ItemWrite, ...] = (),
        reply: Processed | None = None,
    ) -> None:
        """Store the response; `reply` is the enclave's answer (None: the host decided the outcome). While the
        store cannot write, the answer is held here and retried: the order is never run again for that."""
        receipt_update = self._receipt_update(work_order_id, outcome, reply) if self.config.receipts else None
        stored = await self.committer.persist(
            Store.insert_response, work_order_id, outcome.code, outcome.body, writes, receipt_update, self.node_id
        )
        if stored and receipt_update is not None and self.ledger is not None:
            self.ledger.added()
        self._attempts.pop(work_order_id, None)
        self._conflicts.pop(work_order_id, None)
        self._held.discard(work_order_id)
        quiet = work_order_id in self._quiet
        self._quiet.discard(work_order_id)
        if not stored:
            log.warning(
                "work order %s was answered already (by another node that took over its claim, or by a commit of "
                "ours whose acknowledgement the connection lost): this answer is dropped",
                work_order_id,
            )
            self._resolve_from_store([work_order_id])  # waiters get the stored answer, once there is one
            return
        self.completed += 1
        self._deliver(work_order_id, outcome)
        if not quiet:
            for hook in self.answer_hooks:
                hook(work_order_id)

    def _receipt_update(self, work_order_id: str, outcome: Outcome, reply: Processed | None) -> NewReceiptUpdate | None:
        """The worker's signed update from the enclave's answer; else, for a failure, the node's unsigned one."""
        if reply is not None and reply.receipt_signature:
            return self._update(work_order_id, reply.receipt_type, reply.receipt_data, reply.receipt_signature)
        if outcome.code != 0:  # the host's word: same updateData as the enclave would give, no signature
            failure = f"{outcome.code}:{outcome.body.decode(errors='replace')}".encode()
            return self._update(work_order_id, ReceiptStatus.FAILED, b64encode(sha256(failure)), "")
        return None  # a result the enclave did not account for: nothing to say on the worker's behalf

    def _update(self, work_order_id: str, update_type: int, data: str, signature: str) -> NewReceiptUpdate:
        work_order_id, worker_id = canonical(work_order_id), self.config.worker_id
        params = ReceiptUpdateParams(
            workOrderId=work_order_id,
            updaterId=worker_id,
            updateType=int(update_type),
            updateData=data,
            updateSignature=signature,
        )
        body = msgspec.json.encode(params).decode()
        return NewReceiptUpdate(work_order_id, worker_id, int(update_type), "worker" if signature else "node", body)


def _settle(fut: asyncio.Future[Outcome | None]) -> None:
    """A waiter's time is up: it hears None (still pending)."""
    if not fut.done():
        fut.set_result(None)
