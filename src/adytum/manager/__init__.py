"""Host side of the enclaves: their processes, the pool, dispatch, attest-and-publish, keys, status."""

from .enclave import EnclaveProcess
from .errors import EnclaveDied, EnclaveStartError, HeadRefused, ProvisioningRefused
from .evidence import AttestationService
from .manager import Manager

__all__ = [
    "AttestationService",
    "EnclaveDied",
    "EnclaveProcess",
    "EnclaveStartError",
    "HeadRefused",
    "Manager",
    "ProvisioningRefused",
]
