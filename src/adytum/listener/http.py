"""JSON-RPC 2.0 over HTTP on aiohttp: POST / for the EEA methods, GET /metrics, GET /openrpc.json, the result
stream (GET /results, stream.py) and the dashboard (GET /ui, dashboard.py).

Whatever a client sends, it gets a JSON-RPC error object with a clear message (an EEA code, or JSON-RPC 2.0's
for the envelope: docs/api.md has the table), and the log one line: never a traceback (code 10 is kept for real
bugs), never a dropped connection it did not cause. Batches are served entry by entry; notifications run
unanswered.
Before any method runs, a request must name an allowed Host (no DNS rebinding), carry the API token when one
is configured, be `application/json` when it is a POST, and arrive in full within the read timeout.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..protocol import EeaError, RpcCode, Status, decode_batch, decode_rpc, envelope_error, is_batch
from ..store import StoreUnavailable
from .connections import Connection
from .dashboard import Dashboard
from .methods import Api
from .openrpc import document
from .stream import PATH as STREAM_PATH
from .stream import ResultStream

log = logging.getLogger("adytum.listener")
_encode = msgspec.json.encode
#: Host names a node on loopback answers to, whatever else is configured.
LOCAL_HOSTS = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
#: Error answers that are part of normal work (a pending order, a full queue): not worth a log line each.
_UNREMARKABLE = frozenset({Status.PENDING, Status.SCHEDULED, Status.PROCESSING, Status.BUSY})
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _answer(rpc_id: Any, *, result: Any = None, error: EeaError | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": rpc_id}
    if error is not None:
        body["error"] = error.to_json()
    else:
        body["result"] = result
    return body


def _reply(rpc_id: Any, *, result: Any = None, error: EeaError | None = None, status: int = 200) -> web.Response:
    return _json(_answer(rpc_id, result=result, error=error), status)


def _json(body: Any, status: int = 200) -> web.Response:
    """A JSON-RPC answer (one object, or a batch's list); nothing to answer (only notifications): 204."""
    if body is None or body == []:
        return web.Response(status=204)
    return web.Response(body=_encode(body), content_type="application/json", status=status)


class _Refused(Exception):
    """A request refused before any method saw it: the HTTP status and the JSON-RPC error to answer with."""

    def __init__(self, status: int, error: EeaError) -> None:
        super().__init__(error.message)
        self.status, self.error = status, error


def host_name(header: str) -> str:
    """The name in a Host header, without its port (and without the brackets of an IPv6 literal)."""
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


@functools.lru_cache(maxsize=1024)
def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _usage(pid: int) -> tuple[float, int] | None:
    """A process's CPU seconds and resident bytes, from /proc (None where there is none, or it has exited)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        # utime, stime and rss are fields 14, 15 and 24 of proc_pid_stat(5); the split starts at field 3
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS, int(fields[21]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


class _NodeCollector:
    """Gauges and counters read from dispatch, the pool status and the store at scrape time."""

    def __init__(self, api: Api) -> None:
        self.api = api

    def collect(self) -> Any:
        dispatch, pool = self.api.dispatch, self.api.pool.pool_status()
        yield GaugeMetricFamily(
            "adytum_work_orders_pending", "Accepted work orders not yet answered", value=dispatch.pending
        )
        yield CounterMetricFamily(
            "adytum_work_orders_completed", "Work orders answered since start", value=dispatch.completed
        )
        yield GaugeMetricFamily(
            "adytum_store_writable",
            "1 if the store's last commit was written, 0 while it cannot write",
            value=1 if self.api.committer.writable else 0,
        )
        yield CounterMetricFamily("adytum_store_commits", "Durable store commits", value=self.api.committer.commits)
        yield CounterMetricFamily(
            "adytum_store_transitions", "Work-order state transitions stored", value=self.api.committer.transitions
        )
        up = GaugeMetricFamily(
            "adytum_enclave_up", "1 if the enclave process is running and provisioned", labels=["enclave"]
        )
        served = CounterMetricFamily("adytum_enclave_served", "Work orders processed", labels=["enclave"])
        restarts = CounterMetricFamily("adytum_enclave_restarts", "Enclave restarts", labels=["enclave"])
        for e in pool.enclaves:
            up.add_metric([e.name], 1 if e.state == "running" else 0)
            served.add_metric([e.name], e.served)
            restarts.add_metric([e.name], e.restarts)
        kme = pool.key_manager
        up.add_metric(["kme"], 1 if kme.state in ("running", "reachable") else 0)
        restarts.add_metric(["kme"], kme.restarts)
        yield from (up, served, restarts)
        cpu = CounterMetricFamily(
            "adytum_cpu_seconds",
            "CPU time (user and system) of the node's process, and of each enclave process since it started",
            labels=["process"],
        )
        rss = GaugeMetricFamily(
            "adytum_memory_rss_bytes", "Resident memory of the node's process and of each enclave", labels=["process"]
        )
        for name, pid in [("node", os.getpid())] + [(e.name, e.pid) for e in pool.enclaves] + [("kme", kme.pid)]:
            usage = _usage(pid) if pid else None
            if usage is not None:
                cpu.add_metric([name], usage[0])
                rss.add_metric([name], usage[1])
        yield from (cpu, rss)
        yield CounterMetricFamily(
            "adytum_keys_provisioned",
            "Work-order enclaves this node's key manager provisioned (or, joined, was provisioned by)",
            value=kme.provisioned,
        )


class Listener:
    def __init__(self, api: Api, *, max_body: int, allowed_hosts: Iterable[str] = (), api_token: str = "") -> None:
        self.api = api
        self.max_body = max_body
        #: Names besides localhost and IP literals (a DNS-rebinding page always sends a name of its own).
        self.allowed_hosts = LOCAL_HOSTS | {name.lower() for name in allowed_hosts}
        self.api_token = api_token.encode()
        self.methods = api.table()
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "adytum_rpc_requests", "JSON-RPC requests by method and code", ["method", "code"], registry=self.registry
        )
        self.latency = Histogram(
            "adytum_rpc_latency_seconds",
            "JSON-RPC handling time",
            ["method"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
        )
        self.registry.register(_NodeCollector(api))
        #: The two metrics' children by (method, code): labels() takes a lock and builds a key every call.
        self._counted: dict[tuple[str, int], tuple[Any, Any]] = {}

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body, middlewares=[self._guard])
        app.router.add_post("/", self.handle)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/openrpc.json", self.openrpc)
        app.router.add_get("/", self.get_root)
        ResultStream(self.api).add_routes(app)
        Dashboard(self.api).add_routes(app)
        return app

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Host, token and Content-Type checks, the body read in full within the deadline, and aiohttp's own
        HTTP errors (404, 405, 413) as JSON-RPC error objects."""
        try:
            self._check(request)
            await self._read(request)
            return await handler(request)
        except _Refused as refused:
            log.info("refused %s %s from %s: %s", request.method, request.path[:64], request.remote, refused)
            self.requests.labels("-", str(refused.error.code)).inc()
            response = _reply(None, error=refused.error, status=refused.status)
            if refused.status in (400, 408):
                # A broken or too slow body is not read any further (aiohttp would linger reading it).
                response.force_close()
                await response.prepare(request)
                await response.write_eof()
                request.protocol.force_close()
            return response
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            log.info("refused %s %s from %s: HTTP %d", request.method, request.path[:64], request.remote, exc.status)
            self.requests.labels("-", str(int(Status.INVALID_PARAMETER))).inc()
            error = EeaError(
                Status.INVALID_PARAMETER,
                f"{exc.reason}: {request.method} {request.path[:64]} (the API is POST /; GET /openrpc.json, /metrics, /results, /ui)",
                {"httpStatus": exc.status},
            )
            return _reply(None, error=error, status=exc.status)

    def _check(self, request: web.Request) -> None:
        host = request.headers.get("Host", "")
        name = host_name(host).lower().rstrip(".")
        if not (name in self.allowed_hosts or _is_ip(name)):
            raise _Refused(
                421,
                EeaError(
                    Status.ACCESS_DENIED,
                    f"Host {host[:64]!r} is not served here (adytum up --allow-host NAME allows a name)",
                ),
            )
        if self.api_token and (request.method == "POST" or request.path == STREAM_PATH):
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.api_token):
                raise _Refused(
                    401, EeaError(Status.ACCESS_DENIED, "this node's API needs its token: Authorization: Bearer TOKEN")
                )
        if request.method == "POST" and request.content_type != "application/json":
            raise _Refused(
                415,
                EeaError(
                    Status.INVALID_PARAMETER, f"Content-Type must be application/json, not {request.content_type!r}"
                ),
            )

    async def handle(self, request: web.Request) -> web.Response:
        """One request, or a batch (JSON-RPC 2.0 §6): its entries run concurrently, each answered on its own."""
        body = await request.read()  # read in full by _guard
        if not is_batch(body):
            return _json(await self._call(request, body))
        try:
            entries = decode_batch(body)
        except EeaError as exc:
            self.requests.labels("-", str(exc.code)).inc()
            log.info("refused a batch from %s: %s", request.remote, exc.message)
            return _reply(None, error=exc)
        answers = await asyncio.gather(*(self._call(request, entry) for entry in entries))
        return _json([answer for answer in answers if answer is not None])

    async def _call(self, request: web.Request, raw: bytes) -> dict[str, Any] | None:
        """The answer to one JSON-RPC request, whatever it holds (None for a notification)."""
        started = time.perf_counter()
        method, rpc_id, notification = "-", None, False
        try:
            rpc = decode_rpc(raw)
            method, rpc_id, notification = rpc.method, (None if rpc.notification else rpc.id), rpc.notification
            handler = self.methods.get(rpc.method)
            if handler is None:
                method = "unknown"
                raise envelope_error(RpcCode.METHOD_NOT_FOUND, f"method {rpc.method[:64]!r} is not supported")
            answer, code = _answer(rpc_id, result=await handler(bytes(rpc.params))), 0
        except EeaError as exc:
            answer, code = _answer(rpc_id, error=exc), exc.code
            if code not in _UNREMARKABLE:
                log.info("refused %s from %s: %s", method, request.remote, exc.message[:300])
        except StoreUnavailable as exc:  # logged by the store, once per interval: not per request
            answer, code = _answer(rpc_id, error=EeaError(Status.BUSY, str(exc))), Status.BUSY
        except Exception:
            log.exception("internal error in %s", method)
            error = EeaError(Status.UNKNOWN_ERROR, "internal error; it has been logged")
            answer, code = _answer(rpc_id, error=error), 1
        self._count(method, code, time.perf_counter() - started)
        return None if notification else answer

    def _count(self, method: str, code: int, seconds: float) -> None:
        """One answer into the two metrics, through children looked up once per (method, code): both come from
        fixed sets (the method table, "unknown", "-"; the status codes)."""
        children = self._counted.get((method, code))
        if children is None:
            children = self._counted[(method, code)] = (
                self.requests.labels(method, str(code)),
                self.latency.labels(method),
            )
        children[0].inc()
        children[1].observe(seconds)

    async def _read(self, request: web.Request) -> None:
        """The whole body (decompressed), by the connection's deadline; then the connection's clock stops."""
        connection = request.protocol if isinstance(request.protocol, Connection) else None
        deadline = connection.start_reading() if connection is not None else None
        try:
            if request.content_length is not None and request.content_length > self.max_body:
                raise _Refused(
                    413,
                    EeaError(
                        Status.INVALID_PARAMETER,
                        f"request of {request.content_length} bytes exceeds the {self.max_body}-byte limit",
                    ),
                )
            if request.content.is_eof():
                await request.read()  # all of it is here already (the usual case): no deadline to keep
            else:
                async with asyncio.timeout_at(deadline):
                    await request.read()
        except TimeoutError:
            raise _Refused(408, EeaError(Status.INVALID_PARAMETER, "the request did not arrive in time")) from None
        except web.HTTPRequestEntityTooLarge:
            raise _Refused(
                413, EeaError(Status.INVALID_PARAMETER, f"request exceeds the {self.max_body}-byte limit")
            ) from None
        except (ConnectionError, web.RequestPayloadError, asyncio.IncompleteReadError) as exc:
            what = " ".join(str(exc).split()).removeprefix("400, message: ")
            raise _Refused(
                400, EeaError(Status.INVALID_PARAMETER, f"request body is truncated or badly encoded ({what})")
            ) from None
        finally:
            if connection is not None:
                connection.request_complete()

    async def metrics(self, request: web.Request) -> web.Response:
        resp = web.Response(body=generate_latest(self.registry))
        resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return resp

    async def openrpc(self, request: web.Request) -> web.Response:
        return web.json_response(document(sorted(self.methods)))

    async def get_root(self, request: web.Request) -> web.Response:
        return _reply(
            None,
            error=EeaError(Status.INVALID_PARAMETER, "use HTTP POST with a JSON-RPC 2.0 body (API: GET /openrpc.json)"),
        )
