"""Connection limits for the listener: a deadline for each request, an idle timeout and a cap on open connections.

aiohttp closes idle keep-alive connections (`keepalive_timeout`, which also covers a connection that sends
nothing, or only part of its headers) but puts no limit on how long a request may take to arrive, nor on how
many connections are open. `Connection` is aiohttp's own per-connection protocol with those two added, and with
aiohttp's plain-text protocol errors (a malformed request line or header) answered as JSON-RPC error objects;
`GuardedSite` is a `TCPSite` that makes its connections with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, cast

import msgspec
from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError
from aiohttp.web_request import BaseRequest

from ..protocol import EeaError, Status

log = logging.getLogger("adytum.listener")

_PHRASES = {400: "Bad Request", 408: "Request Timeout", 413: "Payload Too Large", 503: "Service Unavailable"}


@dataclass(frozen=True)
class ConnectionLimits:
    #: Seconds a client has to send one complete request (headers and body), from its first byte.
    read_timeout: float
    #: Seconds a connection may stay idle (or still be sending its headers) before it is closed.
    keepalive_timeout: float
    #: Open connections served at once; one more is answered 503 (a JSON-RPC BUSY error) and closed.
    max_connections: int


def error_body(error: EeaError, rpc_id: Any = None) -> bytes:
    return msgspec.json.encode({"jsonrpc": "2.0", "id": rpc_id, "error": error.to_json()})


def raw_response(status: int, error: EeaError) -> bytes:
    """A complete HTTP/1.1 answer, for where there is no request to answer through aiohttp."""
    body = error_body(error)
    head = (
        f"HTTP/1.1 {status} {_PHRASES.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]


class _Throttle:
    """One log line per interval for a refusal a flood repeats, with the count of those not logged."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval, self.next, self.skipped = interval, 0.0, 0

    def __call__(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now < self.next:
            self.skipped += 1
            return
        suffix = f" (and {self.skipped} more since the last line)" if self.skipped else ""
        log.warning(message + suffix, *args)
        self.next, self.skipped = now + self.interval, 0


class Connections:
    """The open connections of one listener and their limits."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.open = 0
        self.refused = 0
        self.log_refusal = _Throttle()


class Connection(web.RequestHandler):
    """aiohttp's protocol for one connection, with a request deadline and the connection cap."""

    def __init__(self, connections: Connections, manager: web.Server, **kwargs: Any) -> None:
        super().__init__(manager, keepalive_timeout=connections.limits.keepalive_timeout, **kwargs)
        self.connections = connections
        self.refused = False
        self.reading = False  # the listener is reading a request's body (it keeps the deadline itself)
        self.deadline: float | None = None  # loop time by which the current request must have arrived
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.Transport | None = None

    # -- the cap -------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio.Transport
        if self.connections.open >= self.connections.limits.max_connections:
            self._refuse(self._transport)
            return
        self.connections.open += 1
        super().connection_made(transport)
        self._arm()

    def _refuse(self, transport: asyncio.Transport) -> None:
        self.refused = True
        self.connections.refused += 1
        self.connections.log_refusal(
            "refused a connection: %d are open, the limit (max_connections)", self.connections.limits.max_connections
        )
        busy = EeaError(
            Status.BUSY, f"the node serves {self.connections.limits.max_connections} connections already; retry later"
        )
        transport.write(raw_response(503, busy))
        if transport.can_write_eof():
            transport.write_eof()  # the client reads the answer; what it still sends is read and dropped
        asyncio.get_running_loop().call_later(2.0, transport.abort)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        if self._deadline_timer is None:
            self._arm()  # the first bytes of a new request
        super().data_received(data)

    def eof_received(self) -> None:
        if not self.refused:
            super().eof_received()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        if self.refused:
            return
        self.connections.open -= 1
        super().connection_lost(exc)

    # -- the request deadline -------------------------------------------------------------------------

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self.deadline = loop.time() + self.connections.limits.read_timeout
        self._deadline_timer = loop.call_at(self.deadline, self._expired)

    def _disarm(self) -> None:
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
        self._deadline_timer, self.deadline = None, None

    def start_reading(self) -> float:
        """The listener starts reading a request's body: the deadline it must keep (one starts if a pipelined
        request came in the same bytes as the one before it)."""
        if self._deadline_timer is None:
            self._arm()
        self.reading = True
        assert self.deadline is not None
        return self.deadline

    def request_complete(self) -> None:
        """The listener has the whole request: the next deadline starts with the next request's first byte."""
        self.reading = False
        self._disarm()

    def _expired(self) -> None:
        self._deadline_timer = None
        if self.reading:
            return  # the listener answers 408 itself: its read has the same deadline
        log.info("closed a connection that sent no complete request in %gs", self.connections.limits.read_timeout)
        if self._transport is not None and not self._transport.is_closing() and self._current_request is None:
            timeout = EeaError(
                Status.INVALID_PARAMETER,
                f"no complete request in {self.connections.limits.read_timeout:g} s (read_timeout)",
            )
            self._transport.write(raw_response(408, timeout))
        self.force_close()

    # -- aiohttp's own refusals (malformed request line or headers) ----------------------------------

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if status >= 500:  # a real bug: logged in full
            log.error("internal error answering %s %s", request.method, request.path[:64], exc_info=exc)
            response = web.Response(
                status=status,
                body=error_body(EeaError(Status.UNKNOWN_ERROR, "internal error; it has been logged")),
                content_type="application/json",
            )
            response.force_close()
            return response
        reason = _one_line(getattr(exc, "message", None) or message or str(exc or "") or "malformed HTTP request")
        if isinstance(exc, ContentEncodingError) and "content-encoding" not in reason.lower():
            reason = f"can not decode content-encoding: {reason}"  # aiohttp says only "deflate" at a cut stream
        log.info("refused a malformed HTTP request from %s: %s", request.remote, reason)
        error = EeaError(Status.INVALID_PARAMETER, f"malformed HTTP request: {reason}", {"httpStatus": status})
        response = web.Response(status=status, body=error_body(error), content_type="application/json")
        response.force_close()
        return response


class GuardedSite(web.TCPSite):
    """A TCP site whose connections are `Connection`s sharing one `Connections`."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, connections: Connections, **kwargs: Any) -> None:
        super().__init__(runner, host, port, **kwargs)
        self.connections = connections

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner (what TCPSite.start does first)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None

        def connection() -> Connection:
            return Connection(self.connections, server, loop=loop, access_log=None)

        self._server = await loop.create_server(
            connection, self._host, self._port, backlog=self._backlog, reuse_address=self._reuse_address
        )
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port
