"""`adytum chain`: deploy the EEA contracts, list the workers they register, serve a development chain."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .options import Subparsers, add_json
from .output import console, emit_json, fail

CHAIN_EXTRA = "the chain commands need the `chain` extra: pip install 'adytum[chain]'"


def register(sub: Subparsers) -> None:
    chain = sub.add_parser(
        "chain",
        help="the EEA proxy model on Ethereum: deploy the contracts, list workers, run a dev chain",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Work orders through Ethereum contracts (WorkerRegistry, WorkOrderRegistry, "
        "WorkOrderReceiptRegistry, WorkerRegistryList). A node follows them with `adytum up --chain URL "
        "--contracts FILE`; a requester submits with `adytum submit --chain URL --contracts FILE`.",
        epilog="example:\n  adytum chain dev --port 8545 &                       # a development chain (eth-tester)\n"
        "  adytum chain deploy --rpc http://127.0.0.1:8545 > contracts.json\n"
        "  adytum up --chain http://127.0.0.1:8545 --contracts contracts.json &\n"
        "  adytum chain workers --rpc http://127.0.0.1:8545 --contracts contracts.json\n"
        "  adytum submit --chain http://127.0.0.1:8545 --contracts contracts.json --workload hello --in-data x",
    )
    actions = chain.add_subparsers(dest="chain_action", metavar="ACTION", required=True)

    deploy = actions.add_parser(
        "deploy",
        help="deploy the four contracts; prints the contracts file (JSON: name, address, ABI of each)",
        description="Deploy the contracts as built from this repository's sources (artifacts.json) and print, "
        "on stdout, the JSON list of each contract's name, address and ABI: the file --contracts takes.",
    )
    deploy.add_argument("--rpc", required=True, help="the Ethereum JSON-RPC endpoint, e.g. http://127.0.0.1:8545")
    add_key(deploy, "deploy from")

    workers = actions.add_parser(
        "workers",
        help="list the workers registered on chain (every page of workerLookUp)",
        description="Every worker of the WorkerRegistry with its status, signer (the address of its "
        "verification key) and the SHA-256 of its attestation evidence.",
    )
    workers.add_argument("--rpc", required=True, help="the Ethereum JSON-RPC endpoint")
    workers.add_argument("--contracts", required=True, type=Path, help="the file `adytum chain deploy` printed")
    add_json(workers)

    dev = actions.add_parser(
        "dev",
        help="serve a development chain (eth-tester, py-evm) over JSON-RPC until Ctrl-C",
        description="An in-process EVM with ten unlocked, funded accounts, one block per transaction. "
        "For development and demos only: its keys are public.",
    )
    dev.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    dev.add_argument("--port", type=int, default=8545, help="port (default 8545; 0 = any free)")
    chain.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return {"deploy": run_deploy, "workers": run_workers, "dev": run_dev}[args.chain_action](args)


def add_key(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--key-file",
        metavar="FILE",
        help=f"a file holding the hex private key of the account to {what} (default: the RPC node's first "
        "unlocked account, as development chains have)",
    )


def read_key(path: str | None) -> str | None:
    return Path(path).read_text().strip() if path else None


def run_deploy(args: argparse.Namespace) -> int:
    try:
        from ..chain import ChainError, deploy, http
    except ImportError:
        return fail(CHAIN_EXTRA, as_json=False)
    try:
        w3 = http(args.rpc)
        key = read_key(args.key_file)
        if key is not None:
            from eth_account import Account
            from web3.middleware import SignAndSendRawMiddlewareBuilder

            account = Account.from_key(key)
            w3.middleware_onion.inject(SignAndSendRawMiddlewareBuilder.build(account), layer=0)
            sender = account.address
        else:
            accounts = w3.eth.accounts
            if not accounts:
                return fail(f"{args.rpc} unlocks no account: pass --key-file", as_json=False)
            sender = accounts[0]
        deployment = deploy(w3, sender)
    except ChainError as exc:
        return fail(str(exc), as_json=False)
    except (OSError, ValueError) as exc:
        return fail(f"cannot deploy through {args.rpc}: {exc}", as_json=False)
    except Exception as exc:  # web3's own errors (RPC refusals) have no common base with the above
        return fail(f"cannot deploy through {args.rpc}: {exc}", as_json=False)
    json.dump(deployment.to_json(), sys.stdout)
    sys.stdout.write("\n")
    for c in deployment.contracts.values():
        print(f"{c.name} at {c.address}", file=sys.stderr)
    return 0


def run_workers(args: argparse.Namespace) -> int:
    try:
        from ..chain import ChainClient, ChainError
    except ImportError:
        return fail(CHAIN_EXTRA, as_json=args.json)
    try:
        client = ChainClient(args.rpc, args.contracts)
        entries: list[dict[str, Any]] = [client.worker_entry(w) for w in client.worker_ids()]
    except ChainError as exc:
        return fail(str(exc), as_json=args.json)
    except Exception as exc:  # an RPC node that is down or errs: one line, never a traceback
        return fail(f"cannot read the registry through {args.rpc}: {exc}", as_json=args.json)
    for e in entries:
        e.pop("details")
    if args.json:
        emit_json({"totalCount": len(entries), "workers": entries})
        return 0
    console.print(f"{len(entries)} worker(s) in the WorkerRegistry at {args.rpc}")
    for e in entries:
        console.print(
            f"  {e['workerId']}  status {e['status']}  signer {e['signer']}  evidence sha256 {e['evidenceHash'][:16]}…",
            markup=False,
            highlight=False,
        )
    return 0


def run_dev(args: argparse.Namespace) -> int:
    import signal
    import threading

    try:
        from ..chain.devchain import serving
    except ImportError:
        return fail(CHAIN_EXTRA, as_json=False)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        with serving(args.host, args.port) as url:
            print(f"development chain (eth-tester, simulated, dev keys) on {url}", file=sys.stderr, flush=True)
            stop.wait()
    except OSError as exc:
        return fail(f"cannot serve on {args.host}:{args.port}: {exc}", as_json=False)
    return 0
