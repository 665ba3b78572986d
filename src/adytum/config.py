"""A node's configuration, with every default written once: the CLI and the tests read them from here.

`NodeConfig` holds what the listener and store need and the `ManagerConfig` of its enclaves;
`NodeConfig.of(data_dir, **options)` routes flat options (as `adytum up` takes them) to whichever holds them.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PORT = 1947
DEFAULT_WORKER_NAME = "adytum-worker-1"


@functools.lru_cache(maxsize=64)
def worker_id_from_name(name: str) -> str:
    """Avalon's convention: the worker id is SHA-256 of its configured name."""
    return hashlib.sha256(name.encode()).hexdigest()


@dataclass
class ManagerConfig:
    data_dir: Path
    worker_name: str = DEFAULT_WORKER_NAME
    #: Work-order enclave processes (default: one per core; 0: a node that serves the API alone, on a
    #: store that other nodes with enclaves share).
    enclaves: int = field(default_factory=lambda: os.cpu_count() or 1)
    pipeline_depth: int = 4
    avalon_compat: bool = False
    order_timeout: float = 60.0
    max_attempts: int = 3
    organization_id: str = "00" * 32
    application_type_id: str = "00" * 32
    #: Enclave measurements this node may register (empty: any build that attests correctly).
    allowed_mr_enclaves: tuple[str, ...] = ()
    #: How long a published attestation report counts as fresh, in seconds: lookups hide the worker
    #: once it is older (requesters' SDKs refuse reports older than a day by default).
    attestation_lifetime: float = 24 * 3600.0
    #: How long a previous encryption key still decrypts orders after the rotation that replaced it, in
    #: seconds (None: one attestation lifetime, the longest a record that published it stays fresh; 0: none).
    key_history: float | None = None
    #: How often the report is renewed, in seconds; must be well inside the lifetime (default: a quarter of it).
    attestation_refresh: float | None = None
    #: Allow debug enclaves (never in production; simulated enclaves are not debug enclaves).
    allow_debug: bool = False
    #: TCB statuses this node accepts in its own enclaves' hardware evidence (DCAP spelling). Intel reports
    #: most SGX platforms as SWHardeningNeeded or worse; widening this is the operator's decision.
    accepted_tcb_statuses: tuple[str, ...] = ("UpToDate",)
    #: What starts an enclave process, given `-m adytum.enclave ...` (empty: this Python); on SGX,
    #: gramine/adytum-sgx-enclave, which runs the signed build of the role (docs/hardware.md).
    enclave_executable: str = ""
    #: Seconds one workload run may take inside the enclave, and the enclave's address space in MB;
    #: None: the enclave's own default (`adytum.enclave.budget.Budget`).
    time_budget: float | None = None
    memory_mb: int | None = None
    #: Times an order is run again because another order changed the same state first.
    max_conflicts: int = 100
    #: HOST:PORT of another node's key manager to take the worker's keys from (empty: run our own).
    join: str = ""
    #: What starts the key-manager build that sealed the worker's keys, when this build cannot unseal them (an
    #: upgrade of the framework): it hands them over to this build, which the policy must list (`adytum pool
    #: allow --key-manager`). Empty: no hand-over; a build that cannot unseal the keys stops the start.
    kme_predecessor: str = ""
    #: HOST:PORT on which our key manager provisions other nodes' work-order enclaves (empty: none).
    kme_listen: str = ""
    #: HOST:PORT of other nodes' key managers (their --kme-listen) that witness our key manager's counters, so
    #: that a rollback of this whole host is refused (empty: no anchor; the rollback cannot be detected).
    anchor_peers: tuple[str, ...] = ()
    #: Keep a receipt trail of every work order and the signed ledger of its events (off: for measuring
    #: the cost of receipts only).
    receipts: bool = True
    #: The ledger's tree heads are signed this often, in seconds, while leaves wait to be covered,
    #: or as soon as `ledger_batch` leaves are waiting.
    ledger_interval: float = 1.0
    ledger_batch: int = 1000
    #: Seconds a failed order's request body is kept after its answer (its row stays): junk is not kept.
    failed_retention: float = 600.0
    #: Seconds an answered order is kept (its result can be fetched) before it is pruned; receipts and the
    #: ledger stay. 0: kept for ever.
    answered_retention: float = 7 * 24 * 3600.0
    #: This node's name among the nodes sharing a store (empty: the one kept in the data directory).
    node_id: str = ""
    #: Seconds this node's claims on work orders outlive its last heartbeat (renewed every third of it):
    #: how long a dead node's orders wait before another node takes them.
    lease: float = 15.0

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        if self.enclaves < 0:
            raise ValueError("enclaves must not be negative")
        if self.lease <= 0:
            raise ValueError("lease must be positive")
        if self.answered_retention < 0:
            raise ValueError("answered_retention must not be negative")
        if self.attestation_refresh is None:
            self.attestation_refresh = self.attestation_lifetime / 4
        if not 0 < self.attestation_refresh < self.attestation_lifetime:
            raise ValueError("attestation_refresh must be positive and shorter than attestation_lifetime")
        if self.key_history is not None and self.key_history < 0:
            raise ValueError("key_history must not be negative")
        if self.ledger_interval <= 0 or self.ledger_batch < 1:
            raise ValueError("ledger_interval must be positive and ledger_batch at least 1")
        if self.failed_retention < 0:
            raise ValueError("failed_retention must not be negative")
        if self.join and self.kme_listen:
            raise ValueError("a node that joins another node's key manager has none to serve (kme_listen)")
        if self.join and self.kme_predecessor:
            raise ValueError(
                "a node that joins another node's key manager has no key manager to upgrade (kme_predecessor)"
            )
        if self.join and self.anchor_peers:
            raise ValueError("a node that joins another node's key manager has no counters to anchor (anchor_peers)")
        self.anchor_peers = tuple(self.anchor_peers)

    @property
    def worker_id(self) -> str:
        return worker_id_from_name(self.worker_name)

    @property
    def key_history_seconds(self) -> float:
        return self.attestation_lifetime if self.key_history is None else self.key_history

    @property
    def refresh_seconds(self) -> float:
        assert self.attestation_refresh is not None  # set by __post_init__
        return self.attestation_refresh


@dataclass(frozen=True)
class ChainConfig:
    """The node's chain connector (adytum.chain.connector): where the chain is and how to follow it."""

    #: The Ethereum JSON-RPC endpoint: http(s):// (a new-block filter is asked) or ws(s):// (newHeads pushed).
    url: str
    #: The contracts file `adytum chain deploy` printed (name, address, ABI of each contract).
    contracts: Path
    #: A file holding the hex private key the connector sends transactions with; None: the RPC node's first
    #: account, which a development chain unlocks.
    key_file: Path | None = None
    #: Blocks an order's block must have on top of it before it is taken (0: at once; a reorg is caught anyway).
    confirmations: int = 0
    #: Seconds between asks of the node's new-block filter; logs are read only when a block came.
    poll: float = 0.25
    #: Seconds between anchoring the ledger's newest signed tree head on chain (0: never).
    anchor_interval: float = 60.0
    #: The first block to read on a first start when the worker is already registered (default 0).
    from_block: int = 0


@dataclass
class NodeConfig:
    manager: ManagerConfig
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    #: The largest request body accepted, in bytes.
    max_body: int = 16 * 1024 * 1024
    #: Accepted but unanswered work orders before new ones get BUSY.
    max_pending: int = 10_000
    #: fsync every commit (off: faster, the last commits can be lost on power failure).
    durable: bool = True
    #: Seconds a client has to send a complete request (headers and body) once it starts one.
    read_timeout: float = 30.0
    #: Seconds an open connection may stay idle (or still be sending its headers) before it is closed.
    keepalive_timeout: float = 15.0
    #: Connections served at once (kept below the process's file-descriptor limit); more are answered 503.
    max_connections: int = 512
    #: Host names the API answers to besides localhost and IP addresses (DNS rebinding sends another name).
    allowed_hosts: tuple[str, ...] = ()
    #: A bearer token the API requires on every POST (empty: none; set it when listening beyond localhost).
    api_token: str = ""
    #: Hosts (HOST or HOST:PORT) an order's notifyUri may name; empty: any public address, never a private one.
    notify_allow: tuple[str, ...] = ()
    #: Seconds before a failed notification is sent again the first time (doubling after each failure).
    notify_retry: float = 1.0
    #: Start with a new, empty store even though the worker's sealed keys exist (the old store is lost or empty).
    start_empty: bool = False
    #: Where the store is: empty for the SQLite file in the data directory, or a PostgreSQL connection string
    #: (postgresql://...) that several nodes of one worker share.
    store: str = ""
    #: Take work orders from a WorkOrderRegistry contract too (`adytum up --chain`); None: HTTP only.
    chain: ChainConfig | None = None

    def __post_init__(self) -> None:
        if self.read_timeout <= 0 or self.keepalive_timeout <= 0 or self.max_connections < 1:
            raise ValueError("read_timeout and keepalive_timeout must be positive and max_connections at least 1")

    @property
    def data_dir(self) -> Path:
        return self.manager.data_dir

    @classmethod
    def of(cls, data_dir: Path | str, **options: Any) -> NodeConfig:
        """A config from flat options; None means "the default" (as argparse passes an option not given)."""
        options = {k: v for k, v in options.items() if v is not None}
        node_fields = {f.name for f in dataclasses.fields(cls)} - {"manager"}
        manager_fields = {f.name for f in dataclasses.fields(ManagerConfig)}
        unknown = set(options) - node_fields - manager_fields
        if unknown:
            raise TypeError(f"unknown node options: {', '.join(sorted(unknown))}")
        manager = ManagerConfig(data_dir=Path(data_dir), **{k: v for k, v in options.items() if k in manager_fields})
        return cls(manager=manager, **{k: v for k, v in options.items() if k in node_fields})


#: The defaults, for help texts.
DEFAULTS = NodeConfig.of("adytum-data")
