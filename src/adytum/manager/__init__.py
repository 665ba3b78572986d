"""Host side of the enclaves: their processes, dispatch and crash recovery."""

from .enclave import EnclaveDied, EnclaveProcess, EnclaveStartError
from .manager import Manager, ManagerConfig, Outcome, worker_id_from_name

__all__ = ["EnclaveDied", "EnclaveProcess", "EnclaveStartError", "Manager", "ManagerConfig", "Outcome",
           "worker_id_from_name"]
