"""The enclave manager: runs the pool, registers the worker, dispatches work orders, recovers after a crash.

The pool is one key-manager enclave (here, or on another node with `join`) and `enclaves` work-order
enclaves it provisions; every start and restart of either is attested (see `pool`).

Work flows one way: the listener commits an order and calls `enqueue`; consumers (a few per enclave,
so each enclave always has the next order waiting) take it, mark it processing, run it in their
enclave and commit the response. Nothing polls: an empty queue is awaited. An order whose enclave
dies goes back to the queue; one that has killed its enclave `max_attempts` times gets an error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509

from ..attestation import SIMULATED_IAS, AttestationError, Policy, verify_worker_evidence
from ..config import ManagerConfig
from ..crypto import random_bytes
from ..enclave.channel import Identity
from ..enclave.service import PLATFORM_DIR
from ..protocol import Status
from ..store import GroupCommit, ItemWrite, Outcome, StateConflict, Store, WorkerRow
from .enclave import EnclaveDied, EnclaveProcess, EnclaveStartError
from .pool import (KeyManagerServer, LocalKeyManager, RemoteKeyManager, allow_build, local_build, policy_path,
                   provision)

if TYPE_CHECKING:
    from ..issuer.service import SimulatedAttestationService

log = logging.getLogger("adytum.manager")


class Manager:
    def __init__(self, config: ManagerConfig, reader: Store, committer: GroupCommit) -> None:
        self.config = config
        self.reader = reader
        self.committer = committer
        self.enclaves = [EnclaveProcess(f"enclave-{i}", config.data_dir, config.worker_id,
                                        avalon_compat=config.avalon_compat, timeout=config.order_timeout,
                                        provision=self._provision, admit=self._admit,
                                        read_state=reader.state_item,
                                        extra_args=("--time-budget", str(config.time_budget),
                                                    "--memory-mb", str(config.memory_mb)))
                         for i in range(config.enclaves)]
        self.kme: LocalKeyManager | RemoteKeyManager = RemoteKeyManager(config.join) if config.join else \
            LocalKeyManager(EnclaveProcess("kme", config.data_dir, config.worker_id, role="kme",
                                           admit=self._admit_key_manager), self._attest_quote)
        self.kme_server = KeyManagerServer(self.kme, config.kme_listen) \
            if config.kme_listen and isinstance(self.kme, LocalKeyManager) else None
        self.identity: Identity | None = None
        self.proof_data = ""
        self._attestation: SimulatedAttestationService | None = None
        self._trusted_roots: list[x509.Certificate] = []
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._inflight = 0
        self._attempts: dict[str, int] = defaultdict(int)
        self._conflicts: dict[str, int] = defaultdict(int)
        self._waiters: dict[str, list[asyncio.Future[Outcome]]] = defaultdict(list)
        self._tasks: list[asyncio.Task[None]] = []
        self._key_change = asyncio.Lock()
        self.completed = 0

    @property
    def worker_id(self) -> str:
        return self.config.worker_id

    @property
    def pending(self) -> int:
        """Accepted but not yet answered (queued plus in an enclave)."""
        return self._queue.qsize() + self._inflight

    async def start(self) -> None:
        # Imported here, not at the top: importing the manager must not load the report-signing service or
        # the development CA (node.py is to inject the attestation service).
        from ..issuer.devroot import init_dev_root
        from ..issuer.service import SimulatedAttestationService
        dev_root = init_dev_root(self.config.data_dir / PLATFORM_DIR)
        log.warning("SIMULATION: enclaves are attested by the development root %s, not by hardware; "
                    "requesters must trust it explicitly", dev_root.directory / "root.pem")
        self._attestation = SimulatedAttestationService(dev_root)
        self._trusted_roots = [dev_root.root_certificate]
        if isinstance(self.kme, LocalKeyManager):
            _refuse_pre_pool_keys(self.config.data_dir)
            if not policy_path(self.config.data_dir).exists():  # first start: this build is the worker's
                allow_build(self.config.data_dir, local_build(self.config.data_dir))
            await self.kme.start()
            self._tasks.append(asyncio.create_task(self._watch_key_manager(self.kme), name="kme-watch"))
        if self.kme_server:
            await self.kme_server.start()
        identities = await asyncio.gather(*(e.start() for e in self.enclaves))  # each provisioned and admitted
        if any(i.encryption_key != identities[0].encryption_key for i in identities):
            raise EnclaveStartError("enclaves of one worker disagree on its keys")
        await self._publish(identities[0])
        self._tasks.append(asyncio.create_task(self._refresh_attestation(), name="attestation-refresh"))
        requeued = await self.committer.run(Store.requeue_processing)
        backlog = self.reader.scheduled(self.worker_id)
        for item in backlog:
            self._queue.put_nowait(item)
        if backlog:
            log.info("recovered %d work orders (%d were in flight at the last stop)", len(backlog), requeued)
        for enclave in self.enclaves:
            for slot in range(self.config.pipeline_depth):
                self._tasks.append(asyncio.create_task(self._consume(enclave), name=f"{enclave.name}-{slot}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.kme_server:
            await self.kme_server.stop()
        await asyncio.gather(*(e.stop() for e in self.enclaves))
        if isinstance(self.kme, LocalKeyManager):
            await self.kme.stop()

    def enqueue(self, work_order_id: str, params: bytes) -> None:
        """Called once the order is durably stored."""
        self._queue.put_nowait((work_order_id, params))

    async def wait(self, work_order_id: str, timeout: float) -> Outcome | None:
        """The outcome, waiting up to `timeout` seconds for it; None if still pending.

        Call it before yielding to the event loop after `enqueue` (as the submit path does): an answer
        that arrives before the waiter is registered is not seen here (it is in the store)."""
        fut: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiters[work_order_id].append(fut)
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            return None
        finally:
            waiters = self._waiters.get(work_order_id)
            if waiters is not None:
                if fut in waiters:
                    waiters.remove(fut)
                if not waiters:
                    del self._waiters[work_order_id]

    # -- dispatch ----------------------------------------------------------------------------------

    async def _consume(self, enclave: EnclaveProcess) -> None:
        """Take the next order whenever this enclave has a free slot: the least loaded enclave takes the
        next order. A dead enclave is restarted (and provisioned) before it takes more, while live
        siblings take the queue; only when none is alive do orders wait for, and count, its restarts."""
        while True:
            if not enclave.alive and any(e.serving for e in self.enclaves):
                try:
                    await enclave.ensure_running()
                except (EnclaveDied, EnclaveStartError) as exc:
                    log.warning("%s stays out of service for now: %s", enclave.name, exc)
                    continue
            work_order_id, params = await self._queue.get()
            self._inflight += 1
            try:
                await self._dispatch(enclave, work_order_id, params)
            except asyncio.CancelledError:
                raise
            except Exception:  # keep serving; the order stays scheduled for the next start
                log.exception("dispatch of %s failed", work_order_id)
            finally:
                self._inflight -= 1

    async def _dispatch(self, enclave: EnclaveProcess, work_order_id: str, params: bytes) -> None:
        _ignore(self.committer.submit(Store.mark_processing, work_order_id))
        try:
            await enclave.ensure_running()
            reply = await enclave.process(params)
        except (EnclaveDied, EnclaveStartError) as exc:
            self._attempts[work_order_id] += 1
            if self._attempts[work_order_id] < self.config.max_attempts:
                log.warning("%s; work order %s goes back to the queue", exc, work_order_id)
                self._queue.put_nowait((work_order_id, params))
                return
            log.error("work order %s failed: its enclave died %d times", work_order_id,
                      self._attempts[work_order_id])
            await self._finish(work_order_id, Outcome(
                Status.FAILED, b"the enclave stopped while processing this work order, repeatedly"))
            return
        if reply.code != 0:
            await self._finish(work_order_id, Outcome(reply.code, reply.message.encode()))
        else:
            writes = tuple(ItemWrite(w.item_id, w.version, w.value) for w in reply.writes)
            try:
                await self._finish(work_order_id, Outcome(0, reply.result), writes)
            except StateConflict:
                await self._run_again(work_order_id, params, "the state this work order changes kept changing "
                                                             "under it; retry later")

    async def _run_again(self, work_order_id: str, params: bytes, reason: str) -> None:
        """Another order changed the same state first: run this one again on the state as it is now."""
        self._conflicts[work_order_id] += 1
        if self._conflicts[work_order_id] <= self.config.max_conflicts:
            self._queue.put_nowait((work_order_id, params))
        else:
            await self._finish(work_order_id, Outcome(Status.FAILED, reason.encode()))

    async def _finish(self, work_order_id: str, outcome: Outcome, writes: tuple[ItemWrite, ...] = ()) -> None:
        stored = await self.committer.run(Store.insert_response, work_order_id, outcome.code, outcome.body, writes)
        self._attempts.pop(work_order_id, None)
        self._conflicts.pop(work_order_id, None)
        if not stored:
            log.warning("work order %s was already answered; the second answer is dropped", work_order_id)
            return
        self.completed += 1
        for fut in self._waiters.pop(work_order_id, []):
            if not fut.done():
                fut.set_result(outcome)

    # -- attestation and registration ------------------------------------------------------------------

    def _attest(self, ident: Identity, registered: bool = True) -> str:
        """Have the (simulated) attestation service sign a report on the enclave's quote, and check it
        as a requester would before publishing it: the node never registers evidence it would refuse."""
        proof = self._attest_quote(ident.quote)
        allowed = self.config.allowed_mr_enclaves if registered else ()  # the allow-list is for what we register
        policy = Policy(mr_enclaves=frozenset(allowed), allow_debug=self.config.allow_debug)
        try:
            verify_worker_evidence(SIMULATED_IAS, proof, verifying_key=ident.verifying_key,
                                   encryption_key=ident.encryption_key, worker_id=ident.worker_id,
                                   policy=policy, at=datetime.now(timezone.utc), trusted_roots=self._trusted_roots)
        except AttestationError as exc:
            raise EnclaveStartError(f"enclave evidence refused by this node: {exc}") from exc
        return proof

    def _attest_quote(self, quote: bytes) -> str:
        """Evidence for a peer enclave: the attestation service's report on this enclave's quote."""
        assert self._attestation is not None, "Manager.start() creates the attestation service"
        return self._attestation.verify_quote(quote, nonce=random_bytes(16).hex()).to_proof_data()

    def _admit_key_manager(self, ident: Identity) -> None:
        """The key manager's evidence must verify under this node's policy (it is never registered)."""
        self._attest(ident, registered=False)

    async def _provision(self, enclave: EnclaveProcess) -> Identity:
        return await provision(enclave, self.kme, self._attest_quote)

    def _admit(self, ident: Identity) -> None:
        """Every work-order enclave start and restart: its evidence must verify and its keys be this
        worker's. Keys newer than the published ones (rotated at the key manager) get published."""
        self._attest(ident)
        if self.identity is None:
            return
        if ident.verifying_key != self.identity.verifying_key:
            raise EnclaveStartError("enclave holds another worker identity than the one published")
        if ident.encryption_key != self.identity.encryption_key and not self._key_change.locked():
            log.info("an enclave holds a newer encryption key (nonce %s); re-provisioning the pool",
                     ident.encryption_key_nonce)
            self._tasks.append(asyncio.create_task(self.refresh(), name="key-catch-up"))

    async def _publish(self, ident: Identity) -> None:
        """Attest `ident` and make it the worker's registered record, fresh for attestation_lifetime."""
        self.proof_data = self._attest(ident)
        self.identity = ident
        await self.committer.run(Store.put_worker, self._worker_row(ident))

    async def rotate_key(self) -> Identity:
        """A new worker encryption key at the key manager, provisioned to every enclave, re-attested and
        published. Orders already encrypted to the previous key still complete; the one before that is gone."""
        if not isinstance(self.kme, LocalKeyManager):
            raise EnclaveStartError(f"this node takes its keys from the key manager at {self.config.join}; "
                                    "rotate the key there (this node picks it up at its next refresh)")
        async with self._key_change:
            await self.kme.rotate()
            ident = await self._reprovision()
            log.info("worker encryption key rotated (nonce %s)", ident.encryption_key_nonce)
            return ident

    async def refresh(self) -> None:
        """Provision every enclave again (picking up keys rotated at the key manager), re-attest and
        publish a fresh record."""
        async with self._key_change:
            try:
                await self._reprovision()
            except (EnclaveDied, EnclaveStartError) as exc:  # the enclaves keep the keys they hold
                if self.identity is None or not any(e.serving for e in self.enclaves):
                    raise
                log.warning("could not provision the enclaves again (%s); re-attesting the keys they hold", exc)
                await self._publish(self.identity)

    async def _reprovision(self) -> Identity:
        serving = [e for e in self.enclaves if e.serving]  # one starting is provisioned by its start
        if not serving:
            raise EnclaveDied("no enclave is running")
        identities = [await self._provision(e) for e in serving]  # the new key is held before it is published
        if any(i.encryption_key != identities[0].encryption_key for i in identities):
            raise EnclaveStartError("enclaves did not all take the key manager's current keys")
        await self._publish(identities[0])
        return identities[0]

    async def _watch_key_manager(self, kme: LocalKeyManager) -> None:
        """Restart the key manager as soon as it dies: it unseals the same keys; enclaves keep serving."""
        while True:
            await kme.process.wait_exit()
            try:
                await kme.process.ensure_running()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep watching; ensure_running backs off between attempts
                log.error("the key manager did not come back: %s; retrying", exc)

    def pool_status(self) -> dict[str, object]:
        """The key manager and each work-order enclave: measurement, state and orders served."""
        return {
            "workerId": self.worker_id,
            "keyManager": self.kme.status(),
            "listening": self.kme_server.address if self.kme_server else "",
            "enclaves": [{"name": e.name, "role": "wpe", "pid": e.pid,
                          "state": "running" if e.serving else "starting" if e.alive else "down",
                          "mr_enclave": e.identity.mr_enclave if e.identity else "", "served": e.served,
                          "inflight": e.inflight, "restarts": e.restarts} for e in self.enclaves],
        }

    async def _refresh_attestation(self) -> None:
        while True:
            await asyncio.sleep(self.config.refresh_seconds)
            try:
                await self.refresh()
                log.info("attestation report renewed")
            except Exception:
                log.exception("renewing the attestation report failed; the old one stays until it expires")

    def worker_record(self, ident: Identity) -> dict[str, object]:
        """The EEA worker record (Avalon's shape, keys as PEM)."""
        return {
            "workerType": 1,
            "organizationId": self.config.organization_id,
            "applicationTypeId": self.config.application_type_id,
            "details": {
                "workOrderSyncUri": "", "workOrderAsyncUri": "", "workOrderPullUri": "",
                "workOrderNotifyUri": "", "receiptInvocationUri": "", "workOrderInvocationAddress": "",
                "receiptInvocationAddress": "", "fromAddress": "",
                "hashingAlgorithm": "SHA-256", "signingAlgorithm": "SECP256K1",
                "keyEncryptionAlgorithm": "RSA-OAEP-3072", "dataEncryptionAlgorithm": "AES-GCM-256",
                "workOrderPayloadFormats": "JSON-RPC",
                "workloads": ident.workloads,
                "workerTypeData": {
                    "verificationKey": ident.verifying_key,
                    "encryptionKey": ident.encryption_key,
                    "encryptionKeyNonce": ident.encryption_key_nonce,
                    "encryptionKeySignature": ident.encryption_key_signature,
                    "extendedMeasurements": [ident.mr_enclave, ident.mr_signer],
                    "proofDataType": SIMULATED_IAS,
                    "proofData": self.proof_data,
                },
            },
            "status": 1,
        }

    def _worker_row(self, ident: Identity) -> WorkerRow:
        return WorkerRow(self.worker_id, 1, self.config.organization_id, self.config.application_type_id,
                         1, json.dumps(self.worker_record(ident)), time.time() + self.config.attestation_lifetime)


def _refuse_pre_pool_keys(data_dir: Path) -> None:
    """Keys sealed by an enclave before pools existed cannot move to the key manager (sealing binds the
    old build): starting would silently make a new identity under the same worker id. Say so instead."""
    old, new = data_dir / "enclave" / "worker-keys.sealed", data_dir / "kme" / "worker-keys.sealed"
    if old.exists() and not new.exists():
        raise EnclaveStartError(f"{old} holds keys sealed by an enclave build from before key-manager pools; "
                                f"they cannot be migrated. Move {old.parent} aside to start this worker with new "
                                "keys (requesters must fetch the new record).")


def _ignore(fut: "asyncio.Future[object]") -> None:
    """A fire-and-forget transition: its failure is logged by the store, not raised here."""
    fut.add_done_callback(lambda f: f.cancelled() or f.exception())
