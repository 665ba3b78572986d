"""The SDK's delivery state machine against a scripted node (aiohttp in-process) that drops connections at the
worst moments: before it stored an order (the order is sent again, same id and nonce) or after (it is asked
for, never sent twice); a node that never answers ends in NodeUnreachable naming the work-order id."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from adytum.client import AsyncClient, NodeUnreachable, PendingOrder
from adytum.protocol import DataItem, EeaError, Status, WorkOrderParams

RESULT = {"workOrderId": "ab" * 32, "answer": "done"}


def _order() -> PendingOrder:
    params = WorkOrderParams(
        work_order_id="ab" * 32,
        worker_id="cd" * 32,
        workload_id="ef" * 8,
        requester_id="01" * 32,
        encrypted_session_key="02" * 256,
        requester_nonce="03" * 16,
        encrypted_request_hash="04" * 48,
        in_data=[DataItem(index=0, data="AA==", iv="05" * 12)],
    )
    return PendingOrder(params, b"k" * 32, b"i" * 12, b"h" * 32)


class ScriptedNode:
    """A node whose answers follow `script(node, method, params)`: a reply dict, or None to hang up."""

    def __init__(self, script: Callable[[ScriptedNode, str, dict[str, Any]], dict[str, Any] | None]) -> None:
        self.script = script
        self.stored: set[str] = set()
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        self.calls.append((body["method"], body["params"]))
        reply = self.script(self, body["method"], body["params"])
        if reply is None:
            assert request.transport is not None
            request.transport.close()  # the node went away mid-request
            return web.Response()
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], **reply})

    def submits(self) -> list[dict[str, Any]]:
        return [p for m, p in self.calls if m == "WorkOrderSubmit"]


def _error(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


async def _deliver(node: ScriptedNode, timeout: float = 10.0) -> Any:
    app = web.Application()
    app.router.add_post("/", node.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with AsyncClient(f"http://127.0.0.1:{port}/") as client:
            return json.loads(bytes(await client.deliver(_order(), timeout=timeout)))
    finally:
        await runner.cleanup()


def _get_result(node: ScriptedNode, params: dict[str, Any]) -> dict[str, Any]:
    if params["workOrderId"] in node.stored:
        return {"result": RESULT}
    return _error(Status.INVALID_PARAMETER, f"work order {params['workOrderId']} is not known here")


def test_a_submit_lost_before_the_node_stored_it_is_sent_again_unchanged():
    def script(node: ScriptedNode, method: str, params: dict[str, Any]) -> dict[str, Any] | None:
        if method == "WorkOrderSubmit":
            if len(node.submits()) == 1:
                return None  # hung up before storing it
            node.stored.add(params["workOrderId"])
            return _error(Status.PENDING, "scheduled")
        return _get_result(node, params)

    node = ScriptedNode(script)
    assert asyncio.run(_deliver(node)) == RESULT
    first, second = node.submits()
    assert first == second  # the same order: same id, nonce and session key, so it can never run twice
    assert [m for m, _ in node.calls] == ["WorkOrderSubmit", "WorkOrderGetResult"] * 2


def test_a_submit_lost_after_the_node_stored_it_is_asked_for_never_sent_again():
    polls = [0]

    def script(node: ScriptedNode, method: str, params: dict[str, Any]) -> dict[str, Any] | None:
        if method == "WorkOrderSubmit":
            node.stored.add(params["workOrderId"])
            return None  # stored, then hung up before answering
        polls[0] += 1
        if polls[0] <= 2:
            return None if polls[0] == 1 else _error(Status.PENDING, "processing")  # down, then busy with it
        return _get_result(node, params)

    node = ScriptedNode(script)
    assert asyncio.run(_deliver(node)) == RESULT
    assert len(node.submits()) == 1


def test_a_resubmit_refused_as_a_duplicate_means_an_earlier_attempt_was_taken():
    def script(node: ScriptedNode, method: str, params: dict[str, Any]) -> dict[str, Any] | None:
        if method == "WorkOrderSubmit":
            if len(node.submits()) == 1:
                return None  # hung up; the order is committed only after the node said it is not known
            node.stored.add(params["workOrderId"])
            return _error(Status.INVALID_PARAMETER, "workOrderId was already used by an accepted work order")
        return _get_result(node, params)

    node = ScriptedNode(script)
    assert asyncio.run(_deliver(node)) == RESULT
    assert len(node.submits()) == 2


def test_a_refusal_of_the_first_submit_is_the_answer():
    node = ScriptedNode(lambda node, method, params: _error(Status.INVALID_PARAMETER, "worker is not active"))
    with pytest.raises(EeaError, match="not active"):
        asyncio.run(_deliver(node))
    assert len(node.calls) == 1


def test_a_node_that_never_answers_ends_in_node_unreachable_naming_the_order():
    node = ScriptedNode(lambda node, method, params: None)
    with pytest.raises(NodeUnreachable, match="ab" * 32):
        asyncio.run(_deliver(node, timeout=0.5))
    assert len(node.submits()) == 1  # never known to be unstored, so never sent again


def test_a_busy_node_is_asked_again_with_the_same_order():
    def script(node: ScriptedNode, method: str, params: dict[str, Any]) -> dict[str, Any] | None:
        if method == "WorkOrderSubmit":
            if len(node.submits()) < 3:
                return _error(Status.BUSY, "the worker has 1000 work orders queued; retry later")
            node.stored.add(params["workOrderId"])
            return {"result": RESULT}
        return _get_result(node, params)

    node = ScriptedNode(script)
    assert asyncio.run(_deliver(node)) == RESULT
    assert [m for m, _ in node.calls] == ["WorkOrderSubmit"] * 3
