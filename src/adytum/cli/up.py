"""`adytum up`: a long-running node until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

from ..config import DEFAULT_PORT, DEFAULT_WORKER_NAME, DEFAULTS, ChainConfig, NodeConfig
from .options import Subparsers, add_data_dir

#: Seconds a thread may hold the GIL while another waits for it (Python's default: 0.005).
SWITCH_INTERVAL = 0.0005


def register(sub: Subparsers) -> None:
    manager = DEFAULTS.manager
    up = sub.add_parser(
        "up",
        help="run a node: listener, store and enclaves, until Ctrl-C",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a node in the foreground. Enclaves are simulated (their own processes, "
        "sealed keys, no SGX) unless ADYTUM_TEE=gramine-sgx (docs/hardware.md). Work orders survive restarts: on start, orders that "
        "were in flight are processed again.",
        epilog="examples:\n  adytum up --port 1947 --data-dir /var/lib/adytum --enclaves 2\n"
        "  adytum up --store postgresql://adytum@db:5432/adytum --kme-listen 0.0.0.0:1948   # node A of several\n"
        "  adytum up --store postgresql://adytum@db:5432/adytum --join a.internal:1948      # node B, same worker\n"
        "(docs/deployment.md: several hosts on one PostgreSQL database)",
    )
    up.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"JSON-RPC port (default {DEFAULT_PORT}; 0 = any free)"
    )
    up.add_argument("--host", default=DEFAULTS.host, help=f"address to bind (default {DEFAULTS.host})")
    add_data_dir(up, "store, sealed keys and platform secret")
    up.add_argument(
        "--enclaves",
        type=int,
        default=None,
        help="work-order enclave processes serving the worker (default: one per core); a key-manager "
        "enclave seals the worker's keys and provisions each of them after mutual attestation. 0: serve "
        "the API alone on a --store that nodes with enclaves share (behind a load balancer)",
    )
    up.add_argument(
        "--store",
        metavar="URL",
        default=os.environ.get("ADYTUM_STORE", ""),
        help="where work orders, results, state and receipts are kept: a PostgreSQL connection string "
        "(postgresql://user@host:5432/db) that every node of the worker shares, each with its own --data-dir "
        "and --join to one key manager; default $ADYTUM_STORE, else the SQLite file in the data directory",
    )
    up.add_argument(
        "--lease",
        type=float,
        default=manager.lease,
        metavar="SECONDS",
        help="on a shared store: seconds after this node's last heartbeat (one every third of it) that its "
        f"claimed work orders pass to another node (default {manager.lease:g})",
    )
    up.add_argument(
        "--node-id",
        default=None,
        help="this node's name among those sharing a store (default: the one kept in DATA_DIR/node-id)",
    )
    up.add_argument(
        "--join",
        metavar="HOST:PORT",
        help="take the worker's keys from another node's key manager (started with --kme-listen) "
        "instead of running one here; use the same --worker-name",
    )
    up.add_argument(
        "--kme-listen",
        metavar="HOST:PORT",
        help="let work-order enclaves of other nodes (--join) be provisioned by this node's key "
        "manager over TCP (e.g. 0.0.0.0:1948); off by default",
    )
    up.add_argument(
        "--anchor-peer",
        metavar="HOST:PORT",
        action="append",
        default=[],
        help="another node's key-manager port (its --kme-listen) that witnesses this key manager's counters "
        "(repeat for several; a majority must acknowledge each change). Then a rollback of this whole host "
        "(its data directory restored from a copy) is refused at start; without any, it cannot be detected",
    )
    up.add_argument(
        "--worker-name",
        default=DEFAULT_WORKER_NAME,
        help=f"the worker's name; its id is SHA-256 of the name (default {DEFAULT_WORKER_NAME})",
    )
    up.add_argument(
        "--avalon-compat",
        action="store_true",
        help="also accept unmodified Avalon clients (OAEP-SHA1, one IV reused for every item). "
        "Weaker: use only for migration.",
    )
    up.add_argument(
        "--max-body",
        type=int,
        default=DEFAULTS.max_body,
        help=f"largest request accepted, in bytes (default {DEFAULTS.max_body / 2**20:g} MiB)",
    )
    up.add_argument(
        "--max-pending",
        type=int,
        default=DEFAULTS.max_pending,
        help=f"accepted but unanswered work orders before new ones get BUSY (default {DEFAULTS.max_pending})",
    )
    up.add_argument(
        "--read-timeout",
        type=float,
        default=DEFAULTS.read_timeout,
        metavar="SECONDS",
        help=f"seconds a client has to send a complete request once it starts one (default {DEFAULTS.read_timeout:g})",
    )
    up.add_argument(
        "--keepalive-timeout",
        type=float,
        default=DEFAULTS.keepalive_timeout,
        metavar="SECONDS",
        help=f"seconds a connection may stay idle before it is closed (default {DEFAULTS.keepalive_timeout:g})",
    )
    up.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULTS.max_connections,
        help="connections served at once; more are answered 503 and closed "
        f"(default {DEFAULTS.max_connections}, lowered to fit `ulimit -n`)",
    )
    up.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a Host name the API answers to besides localhost and IP addresses, e.g. the node's DNS name "
        "(repeatable); other names are refused, which stops DNS rebinding",
    )
    up.add_argument(
        "--api-token-file",
        metavar="FILE",
        help="require `Authorization: Bearer TOKEN` on every API request, TOKEN being this file's content "
        "(use it when --host listens beyond localhost)",
    )
    up.add_argument(
        "--allow-mrenclave",
        action="append",
        default=[],
        metavar="HEX",
        help="register only enclaves with this measurement (repeatable; default: any build that "
        "attests). See `adytum measure`.",
    )
    up.add_argument(
        "--attestation-lifetime",
        type=float,
        default=manager.attestation_lifetime,
        metavar="SECONDS",
        help="how long a published attestation report counts as fresh; lookups hide the worker "
        "after it, and the node renews it every quarter of it "
        f"(default {manager.attestation_lifetime:g})",
    )
    up.add_argument(
        "--failed-retention",
        type=float,
        default=manager.failed_retention,
        metavar="SECONDS",
        help="seconds the request body of a failed work order is kept after its answer; the order's record "
        f"stays (default {manager.failed_retention:g})",
    )
    up.add_argument(
        "--retention",
        type=float,
        default=manager.answered_retention,
        metavar="SECONDS",
        help="seconds an answered work order's result is kept for WorkOrderGetResult before it is pruned; "
        f"receipts and the ledger stay; 0 keeps results for ever (default {manager.answered_retention:g}, 7 days)",
    )
    up.add_argument(
        "--time-budget",
        type=float,
        default=None,
        help="seconds one workload run may take in its enclave before it fails "
        "(default: the enclave's own, shown by `python -m adytum.enclave --help`)",
    )
    up.add_argument(
        "--memory-mb",
        type=int,
        default=None,
        help="address space of each enclave process in MB; a workload past it fails (default: the enclave's own)",
    )
    up.add_argument(
        "--no-fsync",
        action="store_true",
        help="commit without fsync (faster; the last commits can be lost on power failure)",
    )
    up.add_argument(
        "--no-receipts",
        action="store_true",
        help="keep no receipts, ledger or tree heads: only for measuring what receipts cost (adytum bench "
        "--receipts-cost); the receipt methods then answer that receipts are off",
    )
    up.add_argument(
        "--start-empty",
        action="store_true",
        help="start with an empty store although the worker's sealed keys exist (the database is missing or "
        "empty); every earlier work order and receipt is forgotten",
    )
    up.add_argument(
        "--accept-tcb",
        action="append",
        default=[],
        metavar="STATUS",
        help="also accept this TCB status in the node's own SGX evidence (repeatable; default UpToDate only; "
        "e.g. SWHardeningNeeded, which Intel reports for most SGX platforms): see docs/hardware.md",
    )
    up.add_argument(
        "--enclave-executable",
        default=None,
        metavar="PATH",
        help="what starts each enclave process, called as Python would be (default: this Python); on SGX, "
        "gramine/adytum-sgx-enclave (docs/hardware.md)",
    )
    chain = up.add_argument_group(
        "chain (the EEA proxy model: work orders from a WorkOrderRegistry contract, results posted back)"
    )
    chain.add_argument(
        "--chain",
        metavar="URL",
        help="also take work orders from the contracts on this Ethereum JSON-RPC node, http(s):// or ws(s):// "
        "(Ganache, Hardhat, Geth, Besu, `adytum chain dev`); the worker is registered there and its results are "
        "posted back, signed; over ws:// new blocks are pushed (newHeads), over http:// a block filter is asked",
    )
    chain.add_argument(
        "--contracts", metavar="FILE", type=Path, help="with --chain: the file `adytum chain deploy` printed"
    )
    chain.add_argument(
        "--chain-key",
        metavar="FILE",
        type=Path,
        help="a file holding the hex private key the connector sends with (default: the RPC node's first "
        "unlocked account, as development chains have)",
    )
    chain.add_argument(
        "--chain-confirmations",
        type=int,
        default=0,
        metavar="N",
        help="blocks on top of an order's block before it is taken (default 0; a reorg is caught either way)",
    )
    chain.add_argument(
        "--chain-poll",
        type=float,
        default=0.25,
        metavar="SECONDS",
        help="over http://, how often the node's new-block filter is asked; logs are read only when a block came "
        "(default 0.25)",
    )
    chain.add_argument(
        "--chain-anchor-interval",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="anchor the ledger's newest signed tree head on chain this often (default 60; 0 = never)",
    )
    chain.add_argument(
        "--chain-from-block",
        type=int,
        default=0,
        metavar="N",
        help="on a first start for a worker registered already, read orders from this block on (default 0)",
    )
    up.add_argument("--log-format", choices=["json", "text"], default="json", help="log line format")
    up.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from .. import logs
    from ..errors import AdytumError

    logs.setup(args.log_format)
    from ..attestation.policy import ALL_STATUSES

    try:
        api_token = _read_token(args.api_token_file) if args.api_token_file else ""
        unknown = sorted(set(args.accept_tcb) - ALL_STATUSES)
        if unknown:
            raise ValueError(
                f"--accept-tcb {unknown[0]} is not a TCB status (known: {', '.join(sorted(ALL_STATUSES))})"
            )
    except (OSError, ValueError) as exc:
        logging.getLogger("adytum.node").error("the node cannot start: %s", exc)
        return 1
    if (args.chain is None) != (args.contracts is None):
        logging.getLogger("adytum.node").error("the node cannot start: --chain and --contracts go together")
        return 1
    chain = (
        ChainConfig(
            args.chain,
            args.contracts,
            key_file=args.chain_key,
            confirmations=args.chain_confirmations,
            poll=args.chain_poll,
            anchor_interval=args.chain_anchor_interval,
            from_block=args.chain_from_block,
        )
        if args.chain
        else None
    )
    config = NodeConfig.of(
        args.data_dir,
        host=args.host,
        port=args.port,
        max_body=args.max_body,
        max_pending=args.max_pending,
        read_timeout=args.read_timeout,
        keepalive_timeout=args.keepalive_timeout,
        max_connections=args.max_connections,
        allowed_hosts=tuple(args.allow_host),
        api_token=api_token,
        durable=not args.no_fsync,
        receipts=not args.no_receipts,
        worker_name=args.worker_name,
        enclaves=args.enclaves,
        avalon_compat=args.avalon_compat,
        allowed_mr_enclaves=tuple(args.allow_mrenclave),
        time_budget=args.time_budget,
        memory_mb=args.memory_mb,
        attestation_lifetime=args.attestation_lifetime,
        failed_retention=args.failed_retention,
        answered_retention=args.retention,
        store=args.store,
        lease=args.lease,
        node_id=args.node_id,
        join=args.join,
        kme_listen=args.kme_listen,
        anchor_peers=tuple(args.anchor_peer),
        start_empty=args.start_empty or None,
        enclave_executable=args.enclave_executable,
        accepted_tcb_statuses=("UpToDate", *args.accept_tcb) if args.accept_tcb else None,
        chain=chain,
    )
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    # The store's writer thread holds the GIL in bursts; each time the event loop gives the GIL up for a
    # system call (a socket send, a store read) it waited up to the default 5 ms to get it back. Measured:
    # docs/performance.md.
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        return asyncio.run(_serve(config))
    except ImportError as exc:
        logging.getLogger("adytum.node").error("the node cannot start: %s (pip install 'adytum[chain]')", exc)
        return 1
    except (AdytumError, OSError, ValueError) as exc:  # a refused start is one line, never a traceback
        logging.getLogger("adytum.node").error("the node cannot start: %s", exc)
        return 1


def _read_token(path: str) -> str:
    token = Path(path).read_text().strip()
    if not token or any(c.isspace() for c in token):
        raise ValueError(f"{path}: the API token file must hold one token (no spaces)")
    return token


async def _serve(config: NodeConfig) -> int:
    from ..node import Node

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    node = Node(config)
    await node.serve_forever(stop)
    return 0
