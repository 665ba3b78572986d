"""The EEA JSON-RPC method table: each method validates its params and talks to store and manager."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Awaitable, Callable

import msgspec
from msgspec import Meta

from ..manager import Manager, Outcome
from ..protocol import EeaError, RegistryStatus, Status, decode_params
from ..store import Duplicate, GroupCommit, NewOrder, Store
from .openrpc import document

HexId = Annotated[str, Meta(pattern=r"^(0[xX])?[0-9a-fA-F]+$", max_length=256)]


class GetResultParams(msgspec.Struct, forbid_unknown_fields=True):
    workOrderId: HexId


class WorkerRetrieveParams(msgspec.Struct, forbid_unknown_fields=True):
    workerId: HexId


class WorkerLookUpParams(msgspec.Struct, forbid_unknown_fields=True):
    workerType: Annotated[int, Meta(ge=1, le=3)] | None = None
    organizationId: HexId | None = None
    applicationTypeId: HexId | None = None


def canonical(hex_id: str) -> str:
    """Store keys are lower-case hex without 0x, so "0xAB" and "ab" are one id."""
    return (hex_id[2:] if hex_id[:2] in ("0x", "0X") else hex_id).lower()


def _params(raw: bytes, kind: type[Any], method: str) -> Any:
    try:
        return msgspec.json.decode(raw, type=kind)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise EeaError(Status.INVALID_PARAMETER, f"invalid {method} params: {exc}") from None


@dataclass
class Api:
    reader: Store
    committer: GroupCommit
    manager: Manager
    max_pending: int = 10_000

    def table(self) -> dict[str, Callable[[bytes], Awaitable[Any]]]:
        return {
            "WorkOrderSubmit": self.work_order_submit,
            "WorkOrderGetResult": self.work_order_get_result,
            "WorkerLookUp": self.worker_look_up,
            "WorkerRetrieve": self.worker_retrieve,
            "rpc.discover": self.discover,
        }

    async def work_order_submit(self, raw: bytes) -> Any:
        p = decode_params(raw)
        wo_id, worker_id = canonical(p.work_order_id), canonical(p.worker_id)
        worker = self.reader.worker(worker_id)
        if worker is None:
            raise EeaError(Status.INVALID_PARAMETER, f"worker {worker_id} is not registered here")
        if worker.status != 1:
            raise EeaError(Status.INVALID_PARAMETER, f"worker {worker_id} is not active")
        if self.manager.pending >= self.max_pending:
            raise EeaError(Status.BUSY, f"the worker has {self.manager.pending} work orders queued; "
                                        "retry later")
        order = NewOrder(wo_id, worker_id, canonical(p.requester_id), p.requester_nonce.lower(), raw)
        try:
            await self.committer.run(Store.insert_order, order)
        except Duplicate as dup:
            raise EeaError(Status.INVALID_PARAMETER,
                           f"{dup.field} was already used by an accepted work order") from None
        self.manager.enqueue(wo_id, raw)
        if p.response_timeout_m_secs > 0:
            # No await lies between enqueue and the waiter's registration, so it cannot miss the answer.
            outcome = await self.manager.wait(wo_id, p.response_timeout_m_secs / 1000)
            if outcome is not None:
                return _answer(wo_id, outcome)
        raise _pending(wo_id, "scheduled")

    async def work_order_get_result(self, raw: bytes) -> Any:
        wo_id = canonical(_params(raw, GetResultParams, "WorkOrderGetResult").workOrderId)
        stored = self.reader.response(wo_id)
        if stored is not None:
            return _answer(wo_id, Outcome(*stored))
        state = self.reader.state(wo_id)
        if state is None:
            raise EeaError(Status.INVALID_PARAMETER, f"work order {wo_id} is not known here")
        raise _pending(wo_id, state)

    async def worker_look_up(self, raw: bytes) -> Any:
        p = _params(raw, WorkerLookUpParams, "WorkerLookUp")
        filters = {column: canonical(value) if isinstance(value, str) else value
                   for column, value in (("worker_type", p.workerType), ("organization_id", p.organizationId),
                                         ("application_type_id", p.applicationTypeId)) if value is not None}
        ids = self.reader.workers(filters)
        return {"totalCount": len(ids), "lookupTag": "", "ids": ids}

    async def worker_retrieve(self, raw: bytes) -> Any:
        worker_id = canonical(_params(raw, WorkerRetrieveParams, "WorkerRetrieve").workerId)
        row = self.reader.worker(worker_id)
        if row is None:
            raise EeaError(RegistryStatus.INVALID_PARAMETER, f"worker {worker_id} is not registered here")
        record = json.loads(row.record)
        record["status"] = row.status
        return record

    async def discover(self, raw: bytes) -> Any:
        return document(sorted(self.table()))


def _answer(wo_id: str, outcome: Outcome) -> Any:
    if outcome.code == 0:
        return msgspec.Raw(outcome.body)
    raise EeaError(outcome.code, outcome.body.decode(errors="replace"), {"workOrderId": wo_id})


def _pending(wo_id: str, state: str) -> EeaError:
    return EeaError(Status.PENDING, f"work order is {state}; ask WorkOrderGetResult for the result",
                    {"workOrderId": wo_id, "state": state})
