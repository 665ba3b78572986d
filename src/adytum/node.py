"""A node: the store, the enclave manager and the listener, started and stopped as one."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from . import operator
from .listener import Api, Listener
from .listener.registry import Registry
from .manager import Manager, ManagerConfig
from .store import GroupCommit, Store

log = logging.getLogger("adytum.node")
DEFAULT_PORT = 1947


@dataclass
class NodeConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    max_body: int = 4 * 1024 * 1024
    max_pending: int = 10_000
    durable: bool = True
    manager: ManagerConfig = field(init=False)
    worker_name: str = "adytum-worker-1"
    enclaves: int | None = None
    avalon_compat: bool = False
    allowed_mr_enclaves: tuple[str, ...] = ()
    time_budget: float = 30.0
    memory_mb: int = 2048
    attestation_lifetime: float = 24 * 3600.0  # renewed every quarter of it
    join: str = ""  # HOST:PORT of another node's key manager
    kme_listen: str = ""  # HOST:PORT to serve our key manager to other nodes

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        self.manager = ManagerConfig(data_dir=self.data_dir, worker_name=self.worker_name,
                                     avalon_compat=self.avalon_compat,
                                     allowed_mr_enclaves=tuple(self.allowed_mr_enclaves),
                                     time_budget=self.time_budget, memory_mb=self.memory_mb,
                                     attestation_lifetime=self.attestation_lifetime,
                                     attestation_refresh=self.attestation_lifetime / 4,
                                     join=self.join, kme_listen=self.kme_listen)
        if self.enclaves:
            self.manager.enclaves = self.enclaves


class Node:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        db = config.data_dir / "adytum.sqlite3"
        writer = Store(db, durable=config.durable)
        writer.create_schema()
        self.reader = Store(db, durable=config.durable)
        self.committer = GroupCommit(writer)
        self.manager = Manager(config.manager, self.reader, self.committer)
        operator.ensure_key(config.data_dir)
        registry = Registry(self.reader, self.committer, self.manager, operator.load_public(config.data_dir))
        self.api = Api(self.reader, self.committer, self.manager, registry, max_pending=config.max_pending)
        self.listener = Listener(self.api, max_body=config.max_body)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}/"

    @property
    def port(self) -> int:
        if self._runner and self._runner.addresses:
            return int(self._runner.addresses[0][1])
        return self.config.port

    async def start(self) -> None:
        self.committer.start()
        try:
            await self.manager.start()
        except BaseException:
            await self.manager.stop()  # no orphaned enclave processes after a refused start
            await self.committer.stop()
            raise
        self._runner = web.AppRunner(self.listener.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port, backlog=1024,
                           reuse_address=True)
        await site.start()
        kme = self.config.join or "its own key manager"
        log.info("node serving worker %s on %s with %d enclave(s) provisioned by %s, data in %s",
                 self.manager.worker_id, self.url, len(self.manager.enclaves), kme, self.config.data_dir)

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
        await self.manager.stop()
        await self.committer.stop()
        self.reader.close()
        self.committer.store.close()

    async def serve_forever(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()
