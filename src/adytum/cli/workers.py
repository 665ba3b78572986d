"""`adytum workers`: list workers, or show one with its keys and attestation checked, in words."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from .options import Subparsers, add_json, add_trust, add_uri, trust_from_args
from .output import console, emit_json, fail

if TYPE_CHECKING:
    from ..client import Trust


def register(sub: Subparsers) -> None:
    workers = sub.add_parser(
        "workers",
        help="list the node's workers, or show one",
        description="List workers (WorkerLookUp), or `workers show ID` for one record with its keys checked.",
    )
    add_uri(workers)
    workers.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    workers.add_argument("worker_id", nargs="?", help="with `show`: the worker id (default: the one the node hosts)")
    add_trust(workers)
    add_json(workers)
    workers.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..client import Client
    from ..protocol import EeaError

    try:
        trust = trust_from_args(args)
    except (OSError, ValueError) as exc:
        return fail(f"trust root: {exc}", as_json=args.json)
    try:
        with Client(args.uri, trust=trust) as client:
            if args.action == "show":
                worker_id = args.worker_id or client.hosted_worker_id()
                record = client.call("WorkerRetrieve", {"workerId": worker_id})
                return _show(worker_id, record, trust, args.json)
            found = client.call("WorkerLookUp", {})
    except EeaError as exc:
        return fail(exc.message, as_json=args.json, code=exc.code)
    except OSError as exc:
        return fail(f"cannot reach {args.uri}: {exc}", as_json=args.json)
    if args.json:
        emit_json(found)
    else:
        console.print(f"{found['totalCount']} worker(s) at {args.uri}")
        for worker_id in found["ids"]:
            console.print(f"  {worker_id}")
    return 0


def _show(worker_id: str, record: dict[str, Any], trust: Trust, as_json: bool) -> int:
    from ..client import UntrustedWorker, WorkerInfo

    try:
        info = WorkerInfo.verified(worker_id, record, trust)
        verdict, problem = info.verdict, ""
    except UntrustedWorker as exc:
        verdict, problem = None, str(exc)
    if as_json:
        emit_json(
            {
                "workerId": worker_id,
                "trusted": verdict is not None,
                "problem": problem,
                "verdict": verdict.to_json() if verdict else None,
                "record": record,
            }
        )
        return 0 if verdict else 1
    console.print(f"worker {worker_id}")
    console.print(f"  status {record.get('status')}, workloads: {', '.join(record['details'].get('workloads', []))}")
    if verdict is None:
        console.print(f"  [bold red]NOT TRUSTED[/]: {problem}", highlight=False)
        return 1
    console.print(
        "  [green]trusted[/]: encryption key signed by the verification key; attestation verified and "
        "binding its keys and the worker id"
    )
    console.print(f"  key encryption: {', '.join(info.suites)}", highlight=False)
    console.print(verdict.describe(), markup=False, highlight=False)
    _show_history(record["details"]["workerTypeData"])
    return 0


def _show_history(data: dict[str, Any]) -> None:
    """The encryption key history: the current key, then each previous one that still decrypts orders."""
    from datetime import UTC, datetime

    from ..crypto import sha256

    def when(seconds: float) -> str:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    def fingerprint(pem: str) -> str:
        return sha256(pem.encode()).hex()[:16]

    handovers = data.get("signingKeyHandovers", [])
    if handovers:
        console.print(f"  signing key: handed over {len(handovers)} time(s), each handover signed by the key before")
        for step in handovers:
            console.print(f"    {fingerprint(step['previousKey'])} -> {fingerprint(step['nextKey'])}", highlight=False)
    previous = data.get("previousEncryptionKeys", [])
    console.print(f"  encryption keys: the current one and {len(previous)} previous (as the node states them)")
    console.print(f"    current   {fingerprint(data['encryptionKey'])}  nonce {data['encryptionKeyNonce']}")
    for key in previous:
        console.print(
            f"    previous  {fingerprint(key['encryptionKey'])}  nonce {key['encryptionKeyNonce'] or '-'}  "
            f"retired {when(key['retiredAt'])}, decrypts until {when(key['servesUntil'])}",
            highlight=False,
        )
