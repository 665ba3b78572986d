"""`PoolStatus` (an adytum extension): the worker's key manager and work-order enclaves as the node sees them."""

from __future__ import annotations

import msgspec


class KeyManagerStatus(msgspec.Struct):
    name: str
    role: str  # "kme"
    location: str  # "local", or HOST:PORT of another node's key manager
    state: str  # running, starting, down; for a remote one: reachable, unreachable, not contacted yet
    pid: int | None = None
    mr_enclave: str = ""
    restarts: int = 0
    provisioned: int = 0  # work-order enclaves it provisioned (or, joined: this node's enclaves it provisioned)
    anchor: str = ""  # where its counters are anchored off the host, or that a whole-host rollback goes unseen


class EnclaveStatus(msgspec.Struct):
    name: str
    role: str  # "wpe"
    state: str  # running (provisioned and admitted), starting, down
    pid: int | None = None
    mr_enclave: str = ""
    served: int = 0
    inflight: int = 0
    restarts: int = 0


class PoolStatus(msgspec.Struct, rename={"worker_id": "workerId", "key_manager": "keyManager"}):
    worker_id: str
    key_manager: KeyManagerStatus
    enclaves: list[EnclaveStatus]
    listening: str = ""  # HOST:PORT on which the key manager serves other nodes, if it does
