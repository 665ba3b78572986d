"""Host side of the enclaves: their processes, dispatch and crash recovery."""

from .enclave import EnclaveDied, EnclaveProcess, EnclaveStartError
from ..config import ManagerConfig, worker_id_from_name
from ..store import Outcome
from .manager import Manager

__all__ = ["EnclaveDied", "EnclaveProcess", "EnclaveStartError", "Manager", "ManagerConfig", "Outcome",
           "worker_id_from_name"]
