"""A development chain in this process: eth-tester's py-evm chain served as Ethereum JSON-RPC over HTTP.

It is a real EVM behind a real JSON-RPC endpoint, so the node's connector and the requester reach it by URL
exactly as they reach Ganache, Geth or Besu; it auto-mines one block per transaction and its ten accounts are
unlocked (dev keys, never for value). `adytum chain dev` and `adytum demo --chain` use it; the tests too.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web


def _quantities(value: Any) -> Any:
    """eth-tester answers with Python ints and bytes; JSON-RPC writes them as 0x-hex."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if hasattr(value, "items"):  # dict, web3's AttributeDict
        return {k: _quantities(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_quantities(v) for v in value]
    return value


def _error(exc: Exception) -> dict[str, Any]:
    """A JSON-RPC error as nodes write it; a revert keeps its reason and data, so clients decode it as usual."""
    message = getattr(exc, "message", None) or str(exc)
    error: dict[str, Any] = {"code": 3 if "revert" in message else -32000, "message": message}
    data = getattr(exc, "data", None)
    if isinstance(data, str):
        error["data"] = data
    return error


class DevChain:
    """One eth-tester chain; `answer` is one JSON-RPC call (serialized: eth-tester is not thread-safe)."""

    def __init__(self) -> None:
        from . import recursion_limit_kept

        with recursion_limit_kept():  # eth-tester imports py-evm, which raises it (see adytum.chain)
            from web3 import Web3
            from web3.providers.eth_tester import EthereumTesterProvider

            self.provider = EthereumTesterProvider()
        #: web3's eth-tester middleware turns JSON-RPC params into eth-tester calls and its answers back into
        #: JSON-RPC names; only the quantities are left as ints (`_quantities`).
        self.w3 = Web3(self.provider)
        self._lock = threading.Lock()

    def answer(self, request: Any) -> Any:
        if isinstance(request, list):
            return [self.answer(r) for r in request]
        ident = request.get("id") if isinstance(request, dict) else None
        try:
            method, params = request["method"], request.get("params", [])
        except (KeyError, TypeError, AttributeError):
            return {"jsonrpc": "2.0", "id": ident, "error": {"code": -32600, "message": "invalid request"}}
        with self._lock:
            try:
                result = self.w3.manager.request_blocking(method, params)
            except Exception as exc:  # eth-tester raises for what a node answers with an error (a revert too)
                return {"jsonrpc": "2.0", "id": ident, "error": _error(exc)}
        return {"jsonrpc": "2.0", "id": ident, "result": _quantities(result)}

    def app(self) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            try:
                body = json.loads(await request.read())
            except ValueError:
                return web.json_response(
                    {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}}
                )
            answer = await asyncio.get_running_loop().run_in_executor(None, self.answer, body)
            return web.json_response(answer)

        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_post("/", handle)
        return app


class DevChainServer:
    """A DevChain's JSON-RPC endpoint on a thread of its own; `stop` and `start` again on the same port is an RPC
    node that went away and came back with its chain intact."""

    def __init__(self, chain: DevChain | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.chain = chain or DevChain()
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self) -> str:
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failed: list[BaseException] = []

        async def main() -> None:
            self._stop = asyncio.Event()
            runner = web.AppRunner(self.chain.app(), access_log=None)
            await runner.setup()
            try:
                await web.TCPSite(runner, self.host, self.port, reuse_address=True).start()
            except OSError as exc:
                failed.append(exc)
                ready.set()
                await runner.cleanup()
                return
            self.port = int(runner.addresses[0][1])
            ready.set()
            await self._stop.wait()
            await runner.cleanup()

        self._loop = loop
        self._thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("the development chain did not start")
        if failed:
            self._join()
            raise failed[0]
        return self.url

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._join()

    def _join(self) -> None:
        if self._thread is not None:
            self._thread.join(30)
        if self._loop is not None:
            self._loop.close()
        self._thread = self._loop = self._stop = None


@contextmanager
def serving(host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """A dev chain served for as long as the block runs; yields its URL."""
    server = DevChainServer(host=host, port=port)
    url = server.start()
    try:
        yield url
    finally:
        server.stop()
