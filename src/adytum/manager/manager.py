"""The enclave manager: runs the pool, registers the worker, dispatches work orders, recovers after a crash.

The pool is one key-manager enclave (here, or on another node with `join`) and `enclaves` work-order
enclaves it provisions; every start and restart of either is attested (see `pool`). `Manager` composes
the concerns, each its own module: `dispatch` (orders from the store to the enclaves: `Dispatch`),
`publish` (attest and publish the worker record), `retention` (failed orders' bodies forgotten), `keys` (rotate, refresh: `KeyOps`), `status`
(`PoolView`) and `ledger` (the receipt ledger's signed heads: `Ledger`; None with receipts off). The
attestation service is injected: the manager never loads an issuer.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from ..channel import Identity
from ..config import ManagerConfig
from ..datadir import DataDir
from ..store import GroupCommit, Store
from ..workloads.registry import measure_work_order_build
from .anchor import PeerAnchor
from .dispatch import Dispatcher
from .enclave import EnclaveProcess
from .errors import EnclaveStartError
from .evidence import AttestationService
from .keys import KeyRotation
from .ledger import HeadSigner, StoredHeads
from .pool import KeyManagerServer, LocalKeyManager, RemoteKeyManager, provision
from .publish import Publisher
from .retention import Retention
from .status import PoolStatusView

log = logging.getLogger("adytum.manager")


class Manager:
    def __init__(
        self, config: ManagerConfig, reader: Store, committer: GroupCommit, attestation: AttestationService
    ) -> None:
        self.config = config
        self.data = DataDir(config.data_dir)
        self.attestation = attestation
        self.publisher = Publisher(config, attestation, committer)
        self.enclaves = [
            EnclaveProcess(
                f"enclave-{i}",
                config.data_dir,
                config.worker_id,
                avalon_compat=config.avalon_compat,
                timeout=config.order_timeout,
                provision=self._provision,
                admit=self.admit,
                read_state=reader.state_item,
                counters=self._counters,
                extra_args=_budget_args(config),
                executable=config.enclave_executable or sys.executable,
            )
            for i in range(config.enclaves)
        ]
        self.kme: LocalKeyManager | RemoteKeyManager = (
            RemoteKeyManager(config.join)
            if config.join
            else LocalKeyManager(
                EnclaveProcess(
                    "kme",
                    config.data_dir,
                    config.worker_id,
                    role="kme",
                    admit=self.publisher.admit_key_manager,
                    executable=config.enclave_executable or sys.executable,
                ),
                attestation,
                PeerAnchor(config.anchor_peers) if config.anchor_peers else None,
            )
        )
        self.kme_server = (
            KeyManagerServer(self.kme, config.kme_listen)
            if config.kme_listen and isinstance(self.kme, LocalKeyManager)
            else None
        )
        self.ledger = (
            HeadSigner(config, reader, committer, self.enclaves) if config.receipts and self.enclaves else None
        )
        #: The `Ledger` port: this node's signer, or (no enclaves here) the heads other nodes store.
        self.heads: HeadSigner | StoredHeads | None = self.ledger or (StoredHeads(reader) if config.receipts else None)
        self.dispatch = Dispatcher(config, reader, committer, self.enclaves, self.ledger)
        self.keys = KeyRotation(config, self.kme, self.enclaves, self.publisher, self._provision)
        self.retention = Retention(committer, config.failed_retention, config.answered_retention)
        self.status = PoolStatusView(config.worker_id, self.kme, self.kme_server, self.enclaves)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def worker_id(self) -> str:
        return self.config.worker_id

    async def start(self) -> None:
        """The pool, then dispatch. A node without enclaves runs no pool: it serves the API on a shared store
        (its dispatcher only waits for answers, and beats so that dead nodes' claims pass on)."""
        if self.enclaves:
            await self._start_pool()
        await self.dispatch.start()
        self._tasks.append(asyncio.create_task(self.retention.run_forever(), name="retention"))
        if self.ledger is not None:
            await self.ledger.start()

    async def _start_pool(self) -> None:
        if isinstance(self.kme, LocalKeyManager):
            _refuse_pre_pool_keys(self.data)
            if not self.data.policy.exists():  # first start: this build is the worker's
                self.data.allow_build(measure_work_order_build(self.data.path).mr_enclave.hex())
            self.data.allowed_builds()  # a malformed policy stops the start, naming the file
            if self.config.kme_predecessor:
                await self._succeed(self.kme)
            else:
                await self.kme.start()
            self._tasks.append(asyncio.create_task(self.kme.process.keep_alive(), name="kme-watch"))
        else:
            self._tasks.append(asyncio.create_task(self.kme.watch(), name="kme-probe"))
        if self.kme_server:
            await self.kme_server.start()
        identities = await asyncio.gather(*(e.start() for e in self.enclaves))  # each provisioned and admitted
        if any(i.encryption_key != identities[0].encryption_key for i in identities):
            raise EnclaveStartError("enclaves of one worker disagree on its keys")
        await self.publisher.publish(identities[0])  # with the evidence of its admission
        for enclave in self.enclaves:  # a dead enclave comes back at once, not when an order needs it
            self._tasks.append(asyncio.create_task(enclave.keep_alive(), name=f"{enclave.name}-watch"))
        self._tasks.append(asyncio.create_task(self.keys.renew_forever(), name="attestation-refresh"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.ledger is not None:
            await self.ledger.stop()
        await self.dispatch.stop()
        await self.keys.stop()
        if self.kme_server:
            await self.kme_server.stop()
        await asyncio.gather(*(e.stop() for e in self.enclaves))
        if isinstance(self.kme, LocalKeyManager) and self.enclaves:
            await self.kme.stop()
            if isinstance(self.kme.anchor, PeerAnchor):
                await self.kme.anchor.close()

    def admit(self, ident: Identity) -> None:
        """Every work-order enclave start and restart: its evidence must verify and its keys be this
        worker's. Keys newer than the published ones (rotated at the key manager) get published."""
        self.publisher.admit(ident)
        self.keys.catch_up(ident)

    async def _succeed(self, kme: LocalKeyManager) -> None:
        """Start the key manager so that, if its build cannot unseal the worker's keys, the build that sealed
        them (`kme_predecessor`) hands them over first; later restarts are plain ones."""
        process = kme.process
        plain = process.extra_args
        process.provision, process.extra_args = self._take_over, (*plain, "--succeed")
        try:
            await kme.start()
        finally:
            process.provision, process.extra_args = None, plain

    async def _take_over(self, successor: EnclaveProcess) -> Identity:
        first = await successor.provision_step()
        if isinstance(first, Identity):  # this build holds the keys already (an upgrade done before)
            return first
        assert isinstance(self.kme, LocalKeyManager)
        log.info(
            "this key-manager build cannot unseal the worker's keys: taking them from %s", self.config.kme_predecessor
        )
        predecessor = LocalKeyManager(
            EnclaveProcess(
                "kme-predecessor",
                self.config.data_dir,
                self.config.worker_id,
                role="kme",
                admit=self.publisher.admit_key_manager,
                executable=self.config.kme_predecessor,
            ),
            self.attestation,
            self.kme.anchor,
        )
        await predecessor.start()
        try:
            return await provision(successor, predecessor, self.attestation, offer=first)
        finally:
            await predecessor.stop()

    async def _provision(self, enclave: EnclaveProcess) -> Identity:
        return await provision(enclave, self.kme, self.attestation)

    async def _counters(self, body: bytes) -> bytes:
        return await self.kme.counters(body)


def _refuse_pre_pool_keys(data: DataDir) -> None:
    """Keys sealed by an enclave before pools existed cannot move to the key manager (sealing binds the
    old build): starting would silently make a new identity under the same worker id. Say so instead."""
    old = data.pre_pool_keys
    if old.exists() and not data.kme_keys.exists():
        raise EnclaveStartError(
            f"{old} holds keys sealed by an enclave build from before key-manager pools; "
            f"they cannot be migrated. Move {old.parent} aside to start this worker with new "
            "keys (requesters must fetch the new record)."
        )


def _budget_args(config: ManagerConfig) -> tuple[str, ...]:
    """The enclave's budget options the operator set; the enclave keeps its own defaults for the others."""
    args: tuple[str, ...] = ()
    if config.time_budget is not None:
        args += ("--time-budget", str(config.time_budget))
    if config.memory_mb is not None:
        args += ("--memory-mb", str(config.memory_mb))
    return args
