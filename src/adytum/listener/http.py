"""JSON-RPC 2.0 over HTTP on aiohttp: POST / for the EEA methods, GET /metrics, GET /openrpc.json.

Whatever a client sends, it gets a JSON-RPC error object with an EEA code and a clear message:
never a traceback, never a dropped connection it did not cause.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..protocol import EeaError, Status, decode_rpc
from ..store import StoreUnavailable
from .methods import Api
from .openrpc import document

log = logging.getLogger("adytum.listener")
_encode = msgspec.json.encode


def _reply(rpc_id: Any, *, result: Any = None, error: EeaError | None = None) -> web.Response:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": rpc_id}
    if error is not None:
        body["error"] = error.to_json()
    else:
        body["result"] = result
    return web.Response(body=_encode(body), content_type="application/json")


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
            "adytum_store_writable", "1 if the store's last commit was written, 0 while it cannot write",
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
        yield CounterMetricFamily(
            "adytum_keys_provisioned",
            "Work-order enclaves this node's key manager provisioned (or, joined, was provisioned by)",
            value=kme.provisioned,
        )


class Listener:
    def __init__(self, api: Api, *, max_body: int) -> None:
        self.api = api
        self.max_body = max_body
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

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body)
        app.router.add_post("/", self.handle)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/openrpc.json", self.openrpc)
        app.router.add_get("/", self.get_root)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        method, rpc_id = "-", None
        try:
            body = await self._read(request)
            rpc = decode_rpc(body)
            method, rpc_id = rpc.method, rpc.id
            handler = self.methods.get(rpc.method)
            if handler is None:
                method = "unknown"
                raise EeaError(
                    Status.INVALID_PARAMETER, f"method {rpc.method[:64]!r} is not supported", {"jsonrpcCode": -32601}
                )
            response = _reply(rpc_id, result=await handler(bytes(rpc.params)))
            code = 0
        except EeaError as exc:
            response, code = _reply(rpc_id, error=exc), exc.code
        except StoreUnavailable as exc:  # logged by the store, once per interval: not per request
            response, code = _reply(rpc_id, error=EeaError(Status.BUSY, str(exc))), Status.BUSY
        except Exception:
            log.exception("internal error in %s", method)
            response, code = (
                _reply(rpc_id, error=EeaError(Status.UNKNOWN_ERROR, "internal error; it has been logged")),
                1,
            )
        self.requests.labels(method, str(code)).inc()
        self.latency.labels(method).observe(time.perf_counter() - started)
        return response

    async def _read(self, request: web.Request) -> bytes:
        if request.content_length is not None and request.content_length > self.max_body:
            raise EeaError(
                Status.INVALID_PARAMETER,
                f"request of {request.content_length} bytes exceeds the {self.max_body}-byte limit",
            )
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise EeaError(Status.INVALID_PARAMETER, f"request exceeds the {self.max_body}-byte limit") from None
        except (ConnectionError, aiohttp.ClientPayloadError, asyncio.IncompleteReadError) as exc:
            raise EeaError(Status.INVALID_PARAMETER, f"request body is truncated ({exc})") from None

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
