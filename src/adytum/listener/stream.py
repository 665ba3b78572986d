"""The result stream: `GET /results?workOrderId=ID` (repeatable) answered as Server-Sent Events, so that a
requester waits for its results instead of polling WorkOrderGetResult.

Each order gets one event once it is answered, or at once if it is answered already or not known here:
`event: result`, `id:` the work-order id, `data:` the JSON-RPC reply WorkOrderGetResult would give for it (its
result, or its error object: the same code and message). While orders are pending a comment line goes out every
`KEEPALIVE` seconds. The stream ends after the last order's event. It needs the API token as a POST does.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import msgspec
from aiohttp import web

from ..protocol import EeaError, Status
from ..store import StoreUnavailable
from .connections import error_body
from .methods import Api

PATH = "/results"
#: Orders one stream may wait for.
MAX_IDS = 64
#: Seconds between comment lines while nothing is answered (proxies close connections silent for long).
KEEPALIVE = 15.0
_HEX = re.compile(r"(0x)?[0-9a-fA-F]{1,256}")


class ResultStream:
    def __init__(self, api: Api) -> None:
        self.api = api
        self._open: set[asyncio.Task[Any]] = set()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(PATH, self.handle)
        app.on_shutdown.append(self._close)

    async def _close(self, app: web.Application) -> None:
        """A stopping node ends its open streams at once instead of waiting out its shutdown timeout; the
        requesters' SDK asks again once the node is back."""
        for task in self._open:
            task.cancel()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._open.add(task)
        try:
            return await self._stream(request)
        finally:
            self._open.discard(task)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        ids = list(dict.fromkeys(request.query.getall("workOrderId", [])))
        if not 1 <= len(ids) <= MAX_IDS:
            error = EeaError(Status.INVALID_PARAMETER, f"name 1 to {MAX_IDS} orders: {PATH}?workOrderId=ID&...")
            return web.Response(body=error_body(error), status=400, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await response.prepare(request)
        answers: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        waits = [asyncio.create_task(self._answer(i, answers)) for i in ids]
        try:
            for _ in ids:
                while True:
                    try:
                        work_order_id, reply = await asyncio.wait_for(answers.get(), KEEPALIVE)
                        break
                    except TimeoutError:
                        await response.write(b": pending\n\n")
                await response.write(b"event: result\nid: %s\ndata: %s\n\n" % (work_order_id.encode(), reply))
        finally:
            for wait in waits:
                wait.cancel()
        await response.write_eof()
        return response

    async def _answer(self, work_order_id: str, answers: asyncio.Queue[tuple[str, bytes]]) -> None:
        """The order's WorkOrderGetResult reply once it is not pending any more."""
        raw = msgspec.json.encode({"workOrderId": work_order_id})
        while True:
            try:
                reply: dict[str, Any] = {"result": await self.api.work_order_get_result(raw)}
            except EeaError as exc:
                if exc.code != Status.PENDING:
                    reply = {"error": exc.to_json()}
                else:  # registered before the next await: an answer stored from now on wakes it
                    await self.api.dispatch.wait(str((exc.data or {})["workOrderId"]), KEEPALIVE * 4)
                    continue
            except StoreUnavailable:
                await asyncio.sleep(1.0)
                continue
            label = work_order_id if _HEX.fullmatch(work_order_id) else "invalid"  # no line breaks into the stream
            answers.put_nowait((label, msgspec.json.encode({"jsonrpc": "2.0", "id": None, **reply})))
            return
