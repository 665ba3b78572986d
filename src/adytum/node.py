"""A node: the store, the enclave manager and the listener, started and stopped as one.

This is where the parts are wired: the listener gets the store and the manager's narrow ports
(`Dispatch`, `KeyOps`, `PoolView`, `Ledger`), never the manager itself; the manager gets its attestation service.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import secrets
import socket
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp import web

from . import operator
from .config import ChainConfig, NodeConfig
from .datadir import DataDir
from .errors import AdytumError
from .issuer.dcap import DcapAttestation
from .issuer.service import SimulatedAttestation
from .listener import Api, Listener
from .listener.connections import ConnectionLimits, Connections, GuardedSite
from .listener.receipts import Receipts
from .listener.registry import Registry
from .manager import Manager
from .manager.evidence import AttestationService
from .manager.identity import IdentityView
from .manager.ledger import StoredHeads
from .manager.notify import Notifier, NotifyPolicy
from .store import ANSWERED, HEADS, SCHEDULED, GroupCommit, Store, is_server_store, open_store

if TYPE_CHECKING:
    from .chain.connector import Connector
    from .store.postgres import Notifications

log = logging.getLogger("adytum.node")


class StartRefused(AdytumError):
    """The node will not start on this data directory as it is; the message says why and what to do."""


class Node:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        data = DataDir(config.data_dir)
        data.create()
        if not config.manager.node_id:
            config.manager.node_id = _node_id(data)
        target = config.store if is_server_store(config.store) else str(data.store)
        if not is_server_store(config.store):
            if not config.manager.enclaves:
                raise StartRefused(
                    "a node without enclaves serves the API on a store that nodes with enclaves share: "
                    "give it --store postgresql://... (the same as theirs)"
                )
            _refuse_forgetting(data, start_empty=config.start_empty)
        writer = open_store(target, durable=config.durable)
        applied = writer.migrate()
        if applied:
            log.info("store %s brought to schema version %d", writer.describe(), applied[-1])
        self.reader: Store = open_store(target, durable=config.durable)
        self.committer = GroupCommit(writer)
        self.manager = Manager(config.manager, self.reader, self.committer, attestation_service(data))
        operator.ensure_key(config.data_dir)
        registry = Registry(self.reader, self.committer, self.manager.keys, operator.load_public(config.data_dir))
        self.notifier = Notifier(
            self.reader,
            self.committer,
            self.manager.worker_id,
            NotifyPolicy(config.notify_allow),
            retry=config.notify_retry,
        )
        self.manager.dispatch.answer_hooks.append(self.notifier.wake)
        self.identity = IdentityView(config.manager, self.manager.publisher, self.manager.attestation)
        receipts = Receipts(
            self.reader, self.committer, self.manager.keys, self.manager.heads, enabled=config.manager.receipts
        )
        self.api = Api(
            self.reader,
            self.committer,
            self.manager.dispatch,
            self.manager.keys,
            self.manager.status,
            registry,
            receipts,
            max_pending=config.max_pending,
            notify_refusal=self.notifier.policy.refusal,
            about=self._about,
        )
        self.listener = Listener(
            self.api, max_body=config.max_body, allowed_hosts=config.allowed_hosts, api_token=config.api_token
        )
        self.connections = Connections(
            ConnectionLimits(config.read_timeout, config.keepalive_timeout, _connection_cap(config.max_connections))
        )
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._notifications = self._listen(target) if is_server_store(target) else None
        self.connector = self._connector(config.chain) if config.chain is not None else None
        self._chain: asyncio.Task[None] | None = None
        self._chain_stop = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}/"

    @property
    def port(self) -> int:
        if self._runner and self._runner.addresses:
            return int(self._runner.addresses[0][1])
        return self.config.port

    def _about(self) -> dict[str, object]:
        """The dashboard's identity and chain lines."""
        chain = self.config.chain
        return {
            "identity": self.identity.identity(),
            # the endpoint's scheme and host only: a provider's URL may carry its key in the path or query
            "chain": None if chain is None else {"endpoint": _endpoint(chain.url), "contracts": str(chain.contracts)},
        }

    def _listen(self, url: str) -> Notifications:
        """A shared store announces orders scheduled and answered by any node: this node wakes on them."""
        from .store.postgres import Notifications

        return Notifications(url, (SCHEDULED, ANSWERED, HEADS), self._on_notify, self._on_listen)

    def _on_notify(self, channel: str, payload: str) -> None:  # on the listening thread
        assert self._loop is not None
        payloads = payload.split(",")
        if channel == ANSWERED:
            self._loop.call_soon_threadsafe(self.manager.dispatch.answered, payloads)
        elif channel == HEADS:
            if isinstance(self.manager.heads, StoredHeads):
                self._loop.call_soon_threadsafe(self.manager.heads.stored)
        elif "" in payloads or self.manager.worker_id in payloads:
            self._loop.call_soon_threadsafe(self.manager.dispatch.wake)

    def _on_listen(self) -> None:  # on the listening thread, at each (re)connect
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.manager.dispatch.recheck)
            if isinstance(self.manager.heads, StoredHeads):
                self._loop.call_soon_threadsafe(self.manager.heads.stored)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.committer.start()
        if self._notifications is not None:
            self._notifications.start()
        try:
            await self.manager.start()
        except BaseException:
            await self.manager.stop()  # no orphaned enclave processes after a refused start
            await self._stop_store()
            raise
        self._runner = web.AppRunner(self.listener.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = GuardedSite(
            self._runner, self.config.host, self.config.port, self.connections, backlog=1024, reuse_address=True
        )
        await site.start()
        self.notifier.start()
        if self.connector is not None:
            self._chain = asyncio.create_task(self.connector.run(self._chain_stop), name="chain-connector")
        kme = self.config.manager.join or "its own key manager"
        log.info(
            "node serving worker %s on %s with %d enclave(s) provisioned by %s, data in %s",
            self.manager.worker_id,
            self.url,
            len(self.manager.enclaves),
            kme,
            self.config.data_dir,
        )

    def _connector(self, config: ChainConfig) -> Connector:
        """The chain connector (`adytum up --chain`); a contracts file it cannot use refuses the start."""
        from .chain.connector import Connector  # web3 is loaded only by a node that follows a chain

        return Connector(
            config,
            reader=self.reader,
            committer=self.committer,
            accept=self.api.accept,
            wait=self.manager.dispatch.wait,
            worker_id=self.manager.worker_id,
        )

    async def stop(self) -> None:
        if self._chain is not None:
            self._chain_stop.set()
            await asyncio.gather(self._chain, return_exceptions=True)
        if self._runner:
            await self._runner.cleanup()
            await self.notifier.stop()
        await self.manager.stop()
        await self._stop_store()

    async def _stop_store(self) -> None:
        if self._notifications is not None:
            await asyncio.to_thread(self._notifications.stop)
        await self.committer.stop()
        self.reader.close()
        self.committer.store.close()

    async def serve_forever(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()


def _endpoint(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"


def attestation_service(data: DataDir) -> AttestationService:
    """The host's half of the TEE choice: the same ADYTUM_TEE the enclaves read (`adytum.enclave.tee`).
    gramine-sgx: DCAP quotes published with the collateral in DATA_DIR/collateral; else simulated."""
    tee = os.environ.get("ADYTUM_TEE", "") or "simulated"
    if tee == "gramine-sgx":
        log.info("enclaves are attested by SGX DCAP; collateral is read from %s", data.collateral)
        return DcapAttestation(data.collateral)
    if tee != "simulated":
        raise StartRefused(f"ADYTUM_TEE={tee!r} is not a TEE adytum knows (known: simulated, gramine-sgx)")
    return SimulatedAttestation(data)


#: File descriptors kept for what is not a client connection: the store, enclave pipes, logs, the key manager.
_RESERVED_DESCRIPTORS = 128


def _connection_cap(wanted: int) -> int:
    """`wanted`, or less if the descriptor limit would not hold it: past that limit every accept fails."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or wanted + _RESERVED_DESCRIPTORS <= soft:
        return wanted
    cap = max(1, soft - _RESERVED_DESCRIPTORS)
    log.warning("max_connections %d is lowered to %d: the process may open %d files (ulimit -n)", wanted, cap, soft)
    return cap


def _node_id(data: DataDir) -> str:
    """This data directory's node name (host name and a random tag), made at its first start and kept: a
    restarted node takes back its own claims at once instead of waiting for its old lease to run out."""
    path = data.node_id_file
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    name = f"{socket.gethostname()}-{secrets.token_hex(4)}"
    path.write_text(name + "\n")
    path.chmod(0o600)
    return name


def _refuse_forgetting(data: DataDir, *, start_empty: bool) -> None:
    """A missing or empty store next to the worker's sealed keys would silently forget every order and receipt
    of that worker: refuse unless the operator said to start empty."""
    if start_empty or not data.kme_keys.exists():
        return
    try:
        size = data.store.stat().st_size
    except FileNotFoundError:
        size = None
    if size:
        return
    state = "is missing" if size is None else "is empty (0 bytes)"
    raise StartRefused(
        f"{data.store} {state} but {data.kme_keys} holds this worker's sealed keys: starting would forget every "
        "work order and receipt; restore the database, or pass --start-empty to start with an empty store"
    )
