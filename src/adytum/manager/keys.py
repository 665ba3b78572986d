"""The worker's keys on the host side (`listener.ports.KeyOps`): rotate, refresh, renew, catch up.

Keys live only in enclaves: the host asks the key manager to rotate, has every serving enclave provisioned
again, and publishes the identity they then hold. A change of keys is one at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ..channel import Identity
from ..config import ManagerConfig
from .enclave import EnclaveProcess
from .errors import EnclaveDied, EnclaveStartError
from .pool import LocalKeyManager, RemoteKeyManager
from .publish import Publisher

log = logging.getLogger("adytum.manager")


class KeyRotation:
    def __init__(
        self,
        config: ManagerConfig,
        kme: LocalKeyManager | RemoteKeyManager,
        enclaves: list[EnclaveProcess],
        publisher: Publisher,
        provision: Callable[[EnclaveProcess], Awaitable[Identity]],
    ) -> None:
        self.config = config
        self.kme = kme
        self.enclaves = enclaves
        self.publisher = publisher
        self.provision = provision
        self._change = asyncio.Lock()
        self._catch_ups: set[asyncio.Task[None]] = set()

    @property
    def worker_id(self) -> str:
        return self.config.worker_id

    async def rotate(self, signing: bool = False) -> None:
        """A new worker encryption key at the key manager, provisioned to every enclave, re-attested and
        published. Orders already encrypted to a previous key still complete for `key_history_seconds` after
        its rotation; older keys are deleted. `signing`: a new signing key too, which the old one hands over
        to (the record carries the chain)."""
        self._refuse_without_enclaves()
        if not isinstance(self.kme, LocalKeyManager):
            raise EnclaveStartError(
                f"this node takes its keys from the key manager at {self.config.join}; "
                "rotate the key there (this node picks it up at its next refresh)"
            )
        async with self._change:
            await self.kme.rotate(self.config.key_history_seconds, new_signing=signing)
            ident = await self._reprovision()
            what = "signing and encryption keys" if signing else "encryption key"
            log.info("worker %s rotated (nonce %s)", what, ident.encryption_key_nonce)

    async def refresh(self) -> None:
        """Provision every enclave again (picking up keys rotated at the key manager), re-attest and
        publish a fresh record."""
        self._refuse_without_enclaves()
        async with self._change:
            try:
                await self._reprovision()
            except (EnclaveDied, EnclaveStartError) as exc:  # the enclaves keep the keys they hold
                held = self.publisher.identity
                if held is None or not any(e.serving for e in self.enclaves):
                    raise
                log.warning("could not provision the enclaves again (%s); re-attesting the keys they hold", exc)
                await self.publisher.publish(held)

    def _refuse_without_enclaves(self) -> None:
        if not self.enclaves:
            raise EnclaveStartError(
                "this node runs no enclaves (it serves the API on a shared store): ask a node of this worker "
                "that runs them"
            )

    async def renew_forever(self) -> None:
        """Refresh every `attestation_refresh` seconds, well inside the record's lifetime."""
        while True:
            await asyncio.sleep(self.config.refresh_seconds)
            try:
                await self.refresh()
                log.info("attestation report renewed")
            except Exception:
                log.exception("renewing the attestation report failed; the old one stays until it expires")

    def catch_up(self, ident: Identity) -> None:
        """On an enclave's admission: keys newer than the published ones (rotated at the key manager, e.g.
        by the node whose key manager this one joined) get provisioned to every enclave and published."""
        published = self.publisher.identity
        if published is None:
            return
        same = (ident.verifying_key, ident.encryption_key) == (published.verifying_key, published.encryption_key)
        if same or self._change.locked():
            return
        log.info(
            "an enclave holds a newer encryption key (nonce %s); re-provisioning the pool", ident.encryption_key_nonce
        )
        task = asyncio.create_task(self.refresh(), name="key-catch-up")
        self._catch_ups.add(task)
        task.add_done_callback(self._caught_up)

    def _caught_up(self, task: asyncio.Task[None]) -> None:
        self._catch_ups.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("catching up with the key manager's keys failed: %s", task.exception())

    async def stop(self) -> None:
        for task in list(self._catch_ups):
            task.cancel()
        await asyncio.gather(*self._catch_ups, return_exceptions=True)

    async def _reprovision(self) -> Identity:
        serving = [e for e in self.enclaves if e.serving]  # one starting is provisioned by its start
        if not serving:
            raise EnclaveDied("no enclave is running")
        identities = [await self.provision(e) for e in serving]  # the new key is held before it is published
        if any(
            (i.verifying_key, i.encryption_key) != (identities[0].verifying_key, identities[0].encryption_key)
            for i in identities
        ):
            raise EnclaveStartError("enclaves did not all take the key manager's current keys")
        await self.publisher.publish(identities[0])
        return identities[0]
