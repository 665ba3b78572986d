"""The pool as the node sees it (`listener.ports.PoolView`): what `PoolStatus`, `adytum pool` and /metrics show."""

from __future__ import annotations

from ..protocol import EnclaveStatus, PoolStatus
from .enclave import EnclaveProcess
from .pool import KeyManagerServer, LocalKeyManager, RemoteKeyManager


class PoolStatusView:
    def __init__(
        self,
        worker_id: str,
        kme: LocalKeyManager | RemoteKeyManager,
        server: KeyManagerServer | None,
        enclaves: list[EnclaveProcess],
    ) -> None:
        self.worker_id = worker_id
        self.kme = kme
        self.server = server
        self.enclaves = enclaves

    def pool_status(self) -> PoolStatus:
        """The key manager and each work-order enclave: measurement, state and orders served."""
        return PoolStatus(
            worker_id=self.worker_id,
            key_manager=self.kme.status(),
            listening=self.server.address if self.server else "",
            enclaves=[_enclave(e) for e in self.enclaves],
        )


def _enclave(e: EnclaveProcess) -> EnclaveStatus:
    return EnclaveStatus(
        name=e.name,
        role="wpe",
        pid=e.pid,
        state="running" if e.serving else "starting" if e.alive else "down",
        mr_enclave=e.identity.mr_enclave if e.identity else "",
        served=e.served,
        inflight=e.inflight,
        restarts=e.restarts,
    )
