"""adytum: a trusted compute framework for EEA Off-Chain Trusted Compute v1.1 work orders.

    from adytum import Client, Trust
    with Client("http://localhost:1947/", trust=Trust.from_files(["adytum-data/devroot/root.pem"])) as client:
        outputs = client.run("hello", [b"world"])

The names a requester or a workload author needs are importable from here; each is imported from its
module on first use rather than with the package, because the enclave processes (`python -m adytum.enclave`)
import this package too and must not load the SDK or aiohttp. Type checkers read the imports below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import (
        AsyncClient,
        Client,
        NodeUnreachable,
        PendingOrder,
        Trust,
        UntrustedWorker,
        VerificationError,
        WorkerInfo,
    )
    from .errors import AdytumError
    from .protocol import EeaError, Status
    from .workloads import Context, Workload, WorkloadError

__version__ = "0.1.0"

__all__ = [
    "AdytumError",
    "AsyncClient",
    "Client",
    "Context",
    "EeaError",
    "NodeUnreachable",
    "PendingOrder",
    "Status",
    "Trust",
    "UntrustedWorker",
    "VerificationError",
    "WorkerInfo",
    "Workload",
    "WorkloadError",
]

#: The module each public name is defined in (or re-exported from).
_HOMES: dict[str, str] = {
    "AdytumError": "adytum.errors",
    "AsyncClient": "adytum.client",
    "Client": "adytum.client",
    "NodeUnreachable": "adytum.client",
    "PendingOrder": "adytum.client",
    "Trust": "adytum.client",
    "UntrustedWorker": "adytum.client",
    "VerificationError": "adytum.client",
    "WorkerInfo": "adytum.client",
    "EeaError": "adytum.protocol",
    "Status": "adytum.protocol",
    "Context": "adytum.workloads",
    "Workload": "adytum.workloads",
    "WorkloadError": "adytum.workloads",
}


def __getattr__(name: str) -> Any:
    """PEP 562: import a public name's module when the name is first asked for."""
    home = _HOMES.get(name)
    if home is None:  # also how `from adytum import crypto` falls through to importing the submodule
        raise AttributeError(f"module 'adytum' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
