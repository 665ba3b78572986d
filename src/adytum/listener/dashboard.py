"""The operator's dashboard: `GET /ui`, a read-only page the listener serves beside its API, on its address.

The page (listener/ui/: plain HTML, JavaScript and CSS, no build step) reads `GET /ui/status.json` once a
second and draws the rest itself: the worker's identity and attestation verdict, the key manager and
enclaves, the queue, throughput and latency charts, recent orders, the ledger, the store, the notification
outbox and the chain. The snapshot holds ids, states, codes, times and counts, never a request or a result.
Like /metrics it needs no token; the Host check applies (no DNS rebinding), and nothing here changes anything.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from ..store import activity, outbox
from .methods import Api

_UI = Path(__file__).parent / "ui"
_TYPES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


class Dashboard:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.files = {name: (_UI / name).read_bytes() for name in _TYPES}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/ui", self.redirect)
        app.router.add_get("/ui/", self.page)
        app.router.add_get("/ui/status.json", self.status)
        for name in _TYPES:
            app.router.add_get(f"/ui/{name}", self.page)

    async def redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/ui/")

    async def page(self, request: web.Request) -> web.Response:
        name = request.path.removeprefix("/ui/") or "index.html"
        return web.Response(body=self.files[name], content_type=_TYPES[name], headers=_HEADERS)

    async def status(self, request: web.Request) -> web.Response:
        return web.Response(
            body=msgspec.json.encode(self.snapshot()), content_type="application/json", headers=_HEADERS
        )

    def snapshot(self) -> dict[str, Any]:
        api, reader = self.api, self.api.reader
        head = reader.latest_head()
        about = api.about() if api.about is not None else {}
        return {
            "now": time.time(),
            "identity": about.get("identity"),
            "pool": msgspec.to_builtins(api.pool.pool_status()),
            "queue": {"pending": api.dispatch.pending, "completed": api.dispatch.completed},
            "orders": activity.recent(reader),
            "ledger": {
                "receipts": api.receipts.enabled,
                "size": reader.ledger_size(),
                "head": None
                if head is None
                else {"treeSize": head.tree_size, "root": head.root.hex(), "timestampMs": head.timestamp_ms},
            },
            "store": {
                "where": reader.describe(),
                "schemaVersion": reader.schema_version(),
                "writable": api.committer.writable,
                "commits": api.committer.commits,
            },
            "outbox": outbox.counts(reader),
            "chain": about.get("chain"),
        }
