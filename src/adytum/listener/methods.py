"""The EEA JSON-RPC method table: each method validates its params and talks to the store and the node's ports."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from ..protocol import (
    EeaError,
    GetResultParams,
    NoParams,
    Status,
    WorkerStatus,
    WorkOrderParams,
    asks_notification,
    canonical,
    decode,
    decode_params,
)
from ..store import Duplicate, GroupCommit, NewOrder, Outcome, Store
from .openrpc import document
from .ports import Dispatch, KeyOps, PoolView
from .receipts import Receipts, node_receipt
from .registry import Registry


@dataclass
class Api:
    reader: Store
    committer: GroupCommit
    dispatch: Dispatch
    keys: KeyOps
    pool: PoolView
    registry: Registry
    receipts: Receipts
    max_pending: int
    #: Why a notifyUri may not be notified (None: it may); None: notifications are off, notifyUri is ignored.
    notify_refusal: Callable[[str], str | None] | None = None
    #: What the dashboard shows of the node beyond the store and the ports: the worker's identity and
    #: attestation verdict, the chain it follows (None: nothing more).
    about: Callable[[], dict[str, Any]] | None = None

    def table(self) -> dict[str, Callable[[bytes], Awaitable[Any]]]:
        return {
            "WorkOrderSubmit": self.work_order_submit,
            "WorkOrderGetResult": self.work_order_get_result,
            **self.registry.table(),
            **self.receipts.table(),
            "PoolStatus": self.pool_status,
            "rpc.discover": self.discover,
        }

    async def work_order_submit(self, raw: bytes) -> Any:
        wo_id, p = await self.accept(raw)
        if p.response_timeout_m_secs > 0:
            # No await lies between wake (in accept) and the waiter's registration, so it cannot miss the answer.
            outcome = await self.dispatch.wait(wo_id, p.response_timeout_m_secs / 1000)
            if outcome is not None:
                return _answer(wo_id, outcome)
        raise _pending(wo_id, "scheduled")

    async def accept(self, raw: bytes) -> tuple[str, WorkOrderParams]:
        """Validate a WorkOrderSubmit's params, store the order and wake the dispatcher: the one way an order
        enters the node, from HTTP or from a chain (adytum.chain's connector). EeaError if it is refused."""
        p = decode_params(raw)
        wo_id, worker_id = canonical(p.work_order_id), canonical(p.worker_id)
        worker = self.reader.worker(worker_id)
        if worker is None:
            raise EeaError(Status.INVALID_PARAMETER, f"worker {worker_id} is not registered here")
        if worker.status != WorkerStatus.ACTIVE:
            raise EeaError(Status.INVALID_PARAMETER, f"worker {worker_id} is not active")
        if worker_id != self.keys.worker_id:
            raise EeaError(
                Status.INVALID_PARAMETER,
                f"worker {worker_id} is registered here but served elsewhere; submit to its own node",
            )
        if self.dispatch.pending >= self.max_pending:
            raise EeaError(Status.BUSY, f"the worker has {self.dispatch.pending} work orders queued; retry later")
        receipt = node_receipt(p, wo_id, worker_id) if self.receipts.enabled else None
        notify_uri = p.notify_uri.strip()
        if not asks_notification(notify_uri) or self.notify_refusal is None:
            notify_uri = ""
        elif (refusal := self.notify_refusal(notify_uri)) is not None:
            raise EeaError(Status.INVALID_PARAMETER, refusal)
        owner = self.dispatch.reserve()  # claimed as it is stored when an enclave has room: no claim, no read back
        order = NewOrder(
            wo_id,
            worker_id,
            canonical(p.requester_id),
            p.requester_nonce.lower(),
            raw,
            receipt=receipt,
            owner=owner,
            notify_uri=notify_uri,
        )
        try:
            await self.committer.run(Store.insert_order, order)
        except Duplicate as dup:
            if owner is not None:
                self.dispatch.unreserve(maybe_stored=False)
            raise EeaError(
                Status.INVALID_PARAMETER, f"{dup.field} was already used by an accepted work order"
            ) from None
        except BaseException:
            if owner is not None:
                self.dispatch.unreserve(maybe_stored=True)
            raise
        if owner is None:
            self.dispatch.wake()  # the order is in the store: the dispatcher takes it from there
        else:
            self.dispatch.take(wo_id, raw)
        return wo_id, p

    async def work_order_get_result(self, raw: bytes) -> Any:
        wo_id = canonical(decode(raw, GetResultParams, "WorkOrderGetResult").workOrderId)
        stored = self.reader.response(wo_id)
        if stored is not None:
            return _answer(wo_id, stored)
        state = self.reader.state(wo_id)
        if state is None:
            raise EeaError(Status.INVALID_PARAMETER, f"work order {wo_id} is not known here")
        if state == "pruned":
            raise EeaError(
                Status.INVALID_PARAMETER,
                f"work order {wo_id} was answered, and its result was pruned after the node's retention period; "
                "its receipt stays",
            )
        raise _pending(wo_id, state)

    async def pool_status(self, raw: bytes) -> Any:
        decode(raw, NoParams, "PoolStatus")
        return self.pool.pool_status()

    async def discover(self, raw: bytes) -> Any:
        return document(sorted(self.table()))


def _answer(wo_id: str, outcome: Outcome) -> Any:
    if outcome.code == 0:
        return msgspec.Raw(outcome.body)
    raise EeaError(outcome.code, outcome.body.decode(errors="replace"), {"workOrderId": wo_id})


def _pending(wo_id: str, state: str) -> EeaError:
    return EeaError(
        Status.PENDING,
        f"work order is {state}; ask WorkOrderGetResult for the result",
        {"workOrderId": wo_id, "state": state},
    )
