"""`adytum`: run a node, send work orders, inspect workers, measure throughput."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import DEFAULT_PORT

if TYPE_CHECKING:
    from ..client import Trust

DEFAULT_URI = f"http://localhost:{DEFAULT_PORT}/"

EPILOG = """\
quick start:
  adytum up                                   # a node on :1947 with simulated enclaves, data in ./adytum-data
  export ADYTUM_TRUST_ROOT=adytum-data/devroot/root.pem    # trust that node's development attestation root
  adytum submit --workload hello --in-data world
  adytum workers
  adytum pool                                 # the key manager and each enclave: measurement, state, orders
  adytum bench --enclaves 1,2                 # throughput of a fresh node with 1, then 2 enclaves

Every command that prints takes --json for scripts. `adytum COMMAND --help` explains each one.
"""


def _add_uri(p: argparse.ArgumentParser) -> None:
    p.add_argument("--uri", default=DEFAULT_URI, help=f"the node's JSON-RPC address (default {DEFAULT_URI})")


def _add_trust(p: argparse.ArgumentParser) -> None:
    env = [f for f in os.environ.get("ADYTUM_TRUST_ROOT", "").split(os.pathsep) if f]
    p.add_argument("--trust-root", action="append", default=env, metavar="PEM",
                   help="trust simulated attestation signed by this root certificate (repeatable; default "
                        "$ADYTUM_TRUST_ROOT). A development node's root is DATA_DIR/devroot/root.pem. Hardware "
                        "evidence is checked against Intel's roots, built in.")
    p.add_argument("--allow-mrenclave", action="append", default=[], metavar="HEX",
                   help="accept only workers whose enclave measures this (repeatable; see `adytum measure`)")
    p.add_argument("--allow-debug", action="store_true", help="accept debug enclaves (never in production)")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="adytum", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="adytum runs confidential work orders (EEA Off-Chain Trusted Compute v1.1) in enclaves: "
                    "inputs are encrypted end to end to a worker key, results come back signed.")
    sub = root.add_subparsers(dest="command", metavar="COMMAND", required=True)

    up = sub.add_parser("up", help="run a node: listener, store and enclaves, until Ctrl-C",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Run a node in the foreground. Enclaves are simulated (their own processes, "
                                    "sealed keys, no SGX). Work orders survive restarts: on start, orders that "
                                    "were in flight are processed again.",
                        epilog="example:\n  adytum up --port 1947 --data-dir /var/lib/adytum --enclaves 2")
    up.add_argument("--port", type=int, default=DEFAULT_PORT, help="JSON-RPC port (default 1947; 0 = any free)")
    up.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    up.add_argument("--data-dir", type=Path, default=Path("adytum-data"),
                    help="store, sealed keys and platform secret (default ./adytum-data)")
    up.add_argument("--enclaves", type=int, default=None,
                    help="work-order enclave processes serving the worker (default: one per core); a key-manager "
                         "enclave seals the worker's keys and provisions each of them after mutual attestation")
    up.add_argument("--join", metavar="HOST:PORT",
                    help="take the worker's keys from another node's key manager (started with --kme-listen) "
                         "instead of running one here; use the same --worker-name")
    up.add_argument("--kme-listen", metavar="HOST:PORT",
                    help="let work-order enclaves of other nodes (--join) be provisioned by this node's key "
                         "manager over TCP (e.g. 0.0.0.0:1948); off by default")
    up.add_argument("--worker-name", default="adytum-worker-1",
                    help="the worker's name; its id is SHA-256 of the name (default adytum-worker-1)")
    up.add_argument("--avalon-compat", action="store_true",
                    help="also accept unmodified Avalon clients (OAEP-SHA1, one IV reused for every item). "
                         "Weaker: use only for migration.")
    up.add_argument("--max-body", type=int, default=4 * 1024 * 1024,
                    help="largest request accepted, in bytes (default 4 MiB)")
    up.add_argument("--max-pending", type=int, default=10_000,
                    help="accepted but unanswered work orders before new ones get BUSY (default 10000)")
    up.add_argument("--allow-mrenclave", action="append", default=[], metavar="HEX",
                    help="register only enclaves with this measurement (repeatable; default: any build that "
                         "attests). See `adytum measure`.")
    up.add_argument("--attestation-lifetime", type=float, default=24 * 3600.0, metavar="SECONDS",
                    help="how long a published attestation report counts as fresh; lookups hide the worker "
                         "after it, and the node renews it every quarter of it (default 86400)")
    up.add_argument("--time-budget", type=float, default=30.0,
                    help="seconds one workload run may take in its enclave before it fails (default 30)")
    up.add_argument("--memory-mb", type=int, default=2048,
                    help="address space of each enclave process in MB; a workload past it fails (default 2048)")
    up.add_argument("--no-fsync", action="store_true",
                    help="commit without fsync (faster; the last commits can be lost on power failure)")
    up.add_argument("--log-format", choices=["json", "text"], default="json", help="log line format")

    submit = sub.add_parser("submit", help="send one work order and print its verified output",
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            description="Encrypt inputs to the worker's key, submit, wait, verify the worker's "
                                        "signature and decrypt. Nothing is printed unless the signature verifies.",
                            epilog="examples:\n  adytum submit --workload hello --in-data world\n"
                                   "  adytum submit --workload fib --in-data 100 --json\n"
                                   "  adytum submit --workload simple-wallet --in-data 'deposit alice 10' "
                                   "--requester-key me.pem")
    _add_uri(submit)
    submit.add_argument("--workload", required=True, help="workload name, e.g. hello, echo-result, fib")
    submit.add_argument("--in-data", action="append", required=True,
                        help="an input item (repeat for several)")
    submit.add_argument("--worker-id", help="hex worker id (default: the first worker the node lists)")
    _add_trust(submit)
    submit.add_argument("--sign", action="store_true", help="sign the request with a fresh requester key")
    submit.add_argument("--requester-key", metavar="PEM",
                        help="sign with this secp256k1 key, made there if missing: per-requester state "
                             "(e.g. simple-wallet balances) belongs to it across orders")
    submit.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the result")
    submit.add_argument("--json", action="store_true", help="machine-readable output")

    workers = sub.add_parser("workers", help="list the node's workers, or show one",
                             description="List workers (WorkerLookUp), or `workers show ID` for one record "
                                         "with its keys checked.")
    _add_uri(workers)
    workers.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    workers.add_argument("worker_id", nargs="?", help="with `show`: the worker id")
    _add_trust(workers)
    workers.add_argument("--json", action="store_true", help="machine-readable output")

    bench = sub.add_parser("bench", help="drive a running node and report throughput and latency",
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           description="C concurrent requesters each build, submit, wait for, verify and decrypt "
                                       "work orders until N are done. Prints verified work orders/s, latency "
                                       "percentiles, and the ratio to the worker-side crypto bound measured in "
                                       "this run on this machine.",
                           epilog="examples:\n  adytum bench --uri http://localhost:1947 -n 10000 -c 32 --workload hello\n"
                                  "  adytum bench --enclaves 1,2 -n 5000        # fresh local nodes: 1, then 2 enclaves")
    _add_uri(bench)
    _add_trust(bench)
    bench.add_argument("-n", type=int, default=2000, help="work orders to complete (default 2000)")
    bench.add_argument("-c", type=int, default=32, help="concurrent requesters (default 32)")
    bench.add_argument("--workload", default="hello", help="workload (default hello)")
    bench.add_argument("--in-data", default="world", help="the input of every order")
    bench.add_argument("--bound-samples", type=int, default=300,
                       help="work orders processed in-process to measure the crypto bound (default 300)")
    bench.add_argument("--enclaves", metavar="N,M,...",
                       help="instead of --uri, start a fresh local node with N work-order enclaves, measure it, "
                            "stop it; then M; and print how throughput scales (e.g. --enclaves 1,2)")
    bench.add_argument("--json", action="store_true", help="machine-readable output")

    demo = sub.add_parser("demo", help="start a node, run every built-in workload through the SDK, stop",
                          description="Starts `adytum up` as a real process on a free port with a fresh data "
                                      "directory, submits one work order per built-in workload, prints each "
                                      "verified result and stops the node.")
    demo.add_argument("--data-dir", type=Path, default=None, help="keep the node's data here (default: temporary)")
    demo.add_argument("--json", action="store_true", help="machine-readable output")

    from .worker import add_command as add_worker
    add_worker(sub, _add_uri)

    from .attestation import add_commands as add_verify
    from .measure import add_commands as add_measure
    add_verify(sub)
    add_measure(sub)
    from .workloads import add_command as add_workloads
    add_workloads(sub)
    from .pool import add_command as add_pool
    add_pool(sub, _add_uri)
    return root


def trust_from_args(args: argparse.Namespace) -> "Trust":
    from ..client import Trust
    return Trust.from_files(args.trust_root, mr_enclaves=args.allow_mrenclave, allow_debug=args.allow_debug)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "up":
        from .up import run_up
        return run_up(args)
    if args.command == "submit":
        from .submit import run_submit
        return run_submit(args)
    if args.command == "workers":
        from .workers import run_workers
        return run_workers(args)
    if args.command == "bench":
        from .bench import run_bench
        return run_bench(args)
    if args.command == "worker":
        from .worker import run_worker
        return run_worker(args)
    if args.command == "pool":
        from .pool import run_pool
        return run_pool(args)
    if args.command == "demo":
        from .demo import run_demo
        return run_demo(args)
    handler = getattr(args, "handler", None) or getattr(args, "func", None)
    if handler is not None:  # commands registered by subpackages (attestation)
        return int(handler(args) or 0)
    raise SystemExit(f"unknown command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
