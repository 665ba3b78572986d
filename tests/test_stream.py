"""The result stream (GET /results, Server-Sent Events) on a real node: an answer arrives as the same reply a
poll gives, unknown and malformed ids get their error at once, the token is required like a POST's, and the SDK
uses the stream (no WorkOrderGetResult polls) when the node offers it."""

from __future__ import annotations

import asyncio

import aiohttp
import msgspec
import pytest

from adytum.client import AsyncClient
from adytum.client.client import _unwrap
from adytum.protocol import EeaError, Status
from support import running_node


async def _events(url: str, *ids: str, headers: dict[str, str] | None = None) -> tuple[int, list[bytes]]:
    async with aiohttp.ClientSession() as session:
        query = [("workOrderId", i) for i in ids]
        async with session.get(url + "results", params=query, headers=headers or {}) as resp:
            if resp.status != 200:
                return resp.status, [await resp.read()]
            assert resp.content_type == "text/event-stream"
            events = (await resp.read()).split(b"\n\n")  # the stream ends after the last order's event
            return resp.status, [line[6:] for e in events for line in e.split(b"\n") if line.startswith(b"data: ")]


def test_an_async_order_is_streamed_once_answered(node):
    async def main() -> None:
        async with AsyncClient(node.url, trust=node.trust) as client:
            worker = await client.worker()
            order, answer = await client.submit(worker, "hello", [b"stream"])
            assert answer is None  # asynchronous: the node answered PENDING
            status, (reply,) = await _events(node.url, order.work_order_id)
            assert status == 200
            assert await client.result(order, worker, result=_unwrap(reply)) == [b"Hello stream"]

    asyncio.run(main())


def test_unknown_and_malformed_ids_get_their_error_at_once(node):
    status, replies = asyncio.run(_events(node.url, "ab" * 32, "not-hex\ninjected: x"))
    assert status == 200 and len(replies) == 2
    for reply in replies:
        with pytest.raises(EeaError) as refused:
            _unwrap(reply)
        assert refused.value.code == Status.INVALID_PARAMETER


@pytest.mark.parametrize("count", [0, 65])
def test_a_stream_names_one_to_64_orders(node, count):
    status, (body,) = asyncio.run(_events(node.url, *[f"{i:064x}" for i in range(count)]))
    assert status == 400 and b"1 to 64" in body


def test_the_sdk_waits_on_the_stream_instead_of_polling(node):
    polls_before = _count(node, "WorkOrderGetResult")

    async def main() -> list[bytes]:
        async with AsyncClient(node.url, trust=node.trust) as client:
            worker = await client.worker()
            order, _ = await client.submit(worker, "hello", [b"again"])
            outputs = await client.result(order, worker)
            assert client.streams is True
            return outputs

    assert asyncio.run(main()) == [b"Hello again"]
    assert _count(node, "WorkOrderGetResult") == polls_before


def test_the_stream_needs_the_token_when_the_api_has_one(tmp_path):
    with running_node(tmp_path / "node", api_token="s3cret") as node:
        status, _ = asyncio.run(_events(node.url, "ab" * 32))
        assert status == 401
        status, (reply,) = asyncio.run(_events(node.url, "ab" * 32, headers={"Authorization": "Bearer s3cret"}))
        assert status == 200 and b"not known here" in reply


def _count(node, method: str) -> float:
    return sum(
        s.value
        for m in node.node.listener.requests.collect()
        for s in m.samples
        if s.labels.get("method") == method and s.name.endswith("_total")
    )


def test_a_stream_outlives_the_idle_timeouts_and_sends_an_answer_stored_later(tmp_path):
    """An order of another worker stays scheduled here (this node never claims it); its answer, stored while
    the stream waits past the node's read and keep-alive timeouts, is sent as soon as the node hears of it."""
    from adytum.store import NewOrder, Store

    with running_node(tmp_path / "node", read_timeout=0.5, keepalive_timeout=0.5) as node:
        wo = "cd" * 32
        order = NewOrder(wo, "ee" * 32, "bb" * 32, "01" * 16, b"{}")
        node.call(node.node.committer.run, Store.insert_order, order)

        async def answer_later() -> None:
            await asyncio.sleep(1.5)  # longer than both timeouts: the stream must still be open
            await node.node.committer.run(Store.insert_response, wo, 0, b'{"answer":1}')
            node.node.manager.dispatch.answered([wo])  # as a shared store's NOTIFY would tell it

        later = asyncio.run_coroutine_threadsafe(answer_later(), node.loop)
        status, (reply,) = asyncio.run(_events(node.url, wo))
        later.result(30)
    assert status == 200 and msgspec.json.decode(_unwrap(reply)) == {"answer": 1}
