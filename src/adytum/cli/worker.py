"""`adytum worker`: the operator's registry changes, signed with the operator key.

The key is DATA_DIR/operator/operator-key.pem, made by `adytum init` or a node's first start;
the node accepts registry changes signed by it and nothing else.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..datadir import DataDir
from .options import Subparsers, add_data_dir, add_json, add_uri
from .output import console, emit_json, fail

#: What `set-status` takes, and the `WorkerStatus` member each name stands for.
STATUSES = {"active": "ACTIVE", "offline": "OFF_LINE", "decommissioned": "DECOMMISSIONED", "compromised": "COMPROMISED"}


def register(sub: Subparsers) -> None:
    w = sub.add_parser(
        "worker",
        help="operator actions: rotate a worker's encryption key, set its status",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Registry changes signed with the operator key (ACCESS_DENIED otherwise).",
        epilog="examples:\n  adytum worker rotate-key\n"
        "  adytum worker set-status offline --worker-id 0x1234...\n"
        "  adytum worker rotate-key --operator-key /secure/operator-key.pem --json\n"
        "  adytum worker rotate-key --signing                # a new signing key, handed over to",
    )
    w.add_argument(
        "action",
        choices=["rotate-key", "set-status"],
        help="rotate-key: a new encryption key made in the enclaves, re-attested and published "
        "(orders sent to the previous key still complete); set-status: active, offline, "
        "decommissioned or compromised (only active workers take work orders)",
    )
    w.add_argument("status", nargs="?", choices=sorted(STATUSES), help="with set-status: the new status")
    add_uri(w)
    w.add_argument(
        "--worker-id",
        help="hex worker id (default: the worker the node hosts)",
    )
    w.add_argument(
        "--signing",
        action="store_true",
        help="with rotate-key: a new signing key too; the old key signs a handover to it, which the record "
        "lists, so requesters who trusted the old key can follow (their receipts and heads still verify)",
    )
    add_data_dir(w, "where the operator key lives")
    w.add_argument(
        "--operator-key", type=Path, help="the operator key PEM (default DATA_DIR/operator/operator-key.pem)"
    )
    add_json(w)
    w.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from .. import operator
    from ..client import Client
    from ..protocol import EeaError, WorkerStatus

    if args.action == "set-status" and args.status is None:
        return fail("set-status needs a status: " + ", ".join(sorted(STATUSES)), as_json=args.json)
    try:
        key = operator.load_private(args.operator_key or DataDir(args.data_dir).operator_private_key)
    except operator.OperatorError as exc:
        return fail(str(exc), as_json=args.json)
    try:
        with Client(args.uri) as client:
            if args.action == "rotate-key":
                params: dict[str, object] = {"workerId": args.worker_id} if args.worker_id else {}  # default: hosted
                if args.signing:
                    params["signingKey"] = True
                result = client.operator_call("EncryptionKeyRotate", params, key)
                what = (
                    "signing key (handed over to by the old one) and encryption key"
                    if args.signing
                    else "encryption key"
                )
                message = f"worker {result['workerId']}: new {what} (nonce {result['encryptionKeyNonce']}) attested and published"
            else:
                worker_id = args.worker_id or client.hosted_worker_id()
                status = int(WorkerStatus[STATUSES[args.status]])
                client.operator_call("WorkerSetStatus", {"workerId": worker_id, "status": status}, key)
                result = {"workerId": worker_id, "status": status}
                message = f"worker {worker_id}: status {args.status}"
    except EeaError as exc:
        return fail(exc.message, as_json=args.json, code=exc.code)
    except OSError as exc:
        return fail(f"cannot reach {args.uri}: {exc}", as_json=args.json)
    if args.json:
        emit_json({"ok": True, **result})
    else:
        console.print(message, highlight=False)
    return 0
