"""`adytum pool`: see the key manager and work-order enclaves; allow an upgraded build; trust another host.

`status` asks a running node (PoolStatus). `allow` and `trust` edit the data directory of the node that
runs the key manager; both take effect at the next handshake, without a restart.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..datadir import DataDir, PolicyError
from .options import Subparsers, add_data_dir, add_json, add_uri
from .output import console, emit_json, fail


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "pool",
        help="the worker's key manager and enclaves: status, allow a build, trust a host",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="One key-manager enclave seals the worker's keys and provisions them to every "
        "work-order enclave (here and on nodes that --join it) after both sides "
        "attest. It provisions only work-order enclave builds its policy lists: "
        "the build of the node's first start, plus those added with `allow`.",
        epilog="examples:\n  adytum pool                         # status of the node at --uri\n"
        "  adytum pool allow 9f2c...e1 --data-dir adytum-data   # let an upgraded build in\n"
        "  adytum pool allow 4b7a...0c --key-manager --data-dir adytum-data   # a new key-manager build\n"
        "  adytum pool trust other/devroot/root.pem --data-dir adytum-data\n"
        "  adytum up --join kme-host:1948 --data-dir other     # a second node, same worker",
    )
    p.add_argument(
        "action",
        nargs="?",
        choices=["status", "allow", "trust"],
        default="status",
        help="status (default): each enclave's measurement, state and orders served; allow: add a "
        "work-order enclave measurement to the key manager's policy; trust: accept attestation "
        "from another host's development root (simulation only)",
    )
    p.add_argument("value", nargs="?", help="allow: the mr_enclave hex (see `adytum measure`); trust: a root PEM")
    p.add_argument(
        "--key-manager",
        action="store_true",
        help="allow: the build is a new key-manager build (`adytum measure --no-plugins` of the new installation) "
        "to which the running key manager may hand the worker's keys (`adytum up --kme-predecessor`)",
    )
    add_uri(p)
    add_data_dir(p, "allow/trust: the node's data directory")
    add_json(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "status":
        return _status(args)
    if not args.value:
        return fail(f"`adytum pool {args.action}` needs a value (see --help)", as_json=args.json)
    try:
        done = (
            _allow(args.data_dir, args.value, args.key_manager)
            if args.action == "allow"
            else trust_root(args.data_dir, Path(args.value))
        )
    except (OSError, ValueError, PolicyError) as exc:
        return fail(str(exc), as_json=args.json)
    if args.json:
        emit_json({"ok": True, **done})
    else:
        console.print(done["message"], highlight=False)
    return 0


def _allow(data_dir: Path, mr_enclave: str, key_manager: bool = False) -> dict[str, Any]:
    listed = DataDir(data_dir).allow_build(mr_enclave, key_manager=key_manager)
    path = DataDir(data_dir).policy
    if key_manager:
        return {
            "policy": str(path),
            "kme_mr_enclaves": listed,
            "message": f"the key manager in {data_dir} now hands the worker's keys to key-manager build(s) "
            f"{', '.join(listed)} (listed in {path}) when one starts with `adytum up --kme-predecessor`",
        }
    return {
        "policy": str(path),
        "wpe_mr_enclaves": listed,
        "message": f"the key manager in {data_dir} now provisions work-order enclaves of "
        f"{len(listed)} build(s), listed in {path}: {', '.join(listed)}",
    }


def trust_root(data_dir: Path, root: Path) -> dict[str, Any]:
    """`pool trust`: the data directory's enclaves accept peer evidence under `root` (a copy is kept)."""
    from cryptography import x509

    from ..crypto import sha256
    from ..files import write_atomic

    pem = root.read_bytes()
    cert = x509.load_pem_x509_certificate(pem)  # ValueError if it is not one
    target = DataDir(data_dir).trusted_roots / f"{sha256(pem).hex()[:16]}.pem"
    write_atomic(target, pem)
    return {
        "root": str(target),
        "subject": cert.subject.rfc4514_string(),
        "message": f"enclaves of {data_dir} now accept peer evidence under {cert.subject.rfc4514_string()} "
        f"(copied to {target})",
    }


def _status(args: argparse.Namespace) -> int:
    from ..client import Client
    from ..protocol import EeaError

    try:
        with Client(args.uri) as client:
            status = client.call("PoolStatus", {})
    except EeaError as exc:
        return fail(exc.message, as_json=args.json, code=exc.code)
    except OSError as exc:
        return fail(f"cannot reach {args.uri}: {exc}", as_json=args.json)
    if args.json:
        emit_json(status)
        return 0
    from rich.table import Table

    kme = status["keyManager"]
    table = Table(title=f"worker {status['workerId']}", title_justify="left")
    for column in ("enclave", "role", "state", "pid", "mr_enclave", "served", "in flight", "restarts"):
        table.add_column(column, justify="right" if column in ("served", "in flight", "restarts", "pid") else "left")
    where = "" if kme["location"] == "local" else f" @ {kme['location']}"
    table.add_row(
        f"{kme['name']}{where}",
        "key manager",
        kme["state"],
        str(kme["pid"] or "-"),
        _short(kme["mr_enclave"]),
        f"{kme['provisioned']} provisioned",
        "-",
        str(kme["restarts"]),
    )
    for e in status["enclaves"]:
        table.add_row(
            e["name"],
            "work orders",
            e["state"],
            str(e["pid"] or "-"),
            _short(e["mr_enclave"]),
            str(e["served"]),
            str(e["inflight"]),
            str(e["restarts"]),
        )
    console.print(table)
    if kme.get("anchor"):
        console.print(f"counters anchor: {kme['anchor']}", markup=False, highlight=False, soft_wrap=True)
    if status.get("listening"):
        console.print(f"key manager accepts other nodes' enclaves on {status['listening']}")
    return 0


def _short(mr_enclave: str) -> str:
    return f"{mr_enclave[:12]}…" if mr_enclave else "-"
