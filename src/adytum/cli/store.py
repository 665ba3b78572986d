"""`adytum store`: the store's schema version, brought up to date on request (nodes also do it at start)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .options import Subparsers, add_data_dir, add_json
from .output import console, emit_json, fail

EPILOG = """\
examples:
  adytum store migrate --store postgresql://adytum@db.internal:5432/adytum
  adytum store status --data-dir /var/lib/adytum --json

Every node migrates its store when it starts; several nodes starting at once on one PostgreSQL database take
turns (an advisory lock), and all but the first find nothing left to do. `migrate` does the same by hand,
before a rolling upgrade for instance."""


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "store",
        help="the store's schema: its version, and migrating it to this release's",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The store holds work orders, results, workload state, worker records, receipts and the "
        "ledger: SQLite in the data directory by default, or a PostgreSQL database shared by several nodes.",
        epilog=EPILOG,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (
        ("migrate", "apply the schema versions this release has and the store lacks"),
        ("status", "print the store's schema version and what it holds"),
    ):
        action = actions.add_parser(name, help=text, description=text)
        action.add_argument(
            "--store",
            metavar="URL",
            default=os.environ.get("ADYTUM_STORE", ""),
            help="a PostgreSQL connection string (default $ADYTUM_STORE, else the data directory's SQLite file)",
        )
        add_data_dir(action, "its SQLite store, when no --store is given")
        add_json(action)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..datadir import DataDir
    from ..errors import AdytumError
    from ..store import is_server_store, open_store
    from ..store.schema import LATEST

    target = args.store if is_server_store(args.store) else str(DataDir(args.data_dir).store)
    if not is_server_store(target) and args.action == "status" and not Path(target).exists():
        return fail(f"there is no store at {target} (a node makes it at its first start)", as_json=args.json)
    try:
        store = open_store(target)
        try:
            applied = store.migrate() if args.action == "migrate" else []
            version = store.schema_version()
            counts = store.counts() if args.action == "status" and version else {}
        finally:
            store.close()
    except AdytumError as exc:
        return fail(str(exc), as_json=args.json)
    report = {"store": store.describe(), "schema_version": version, "latest": LATEST, "applied": applied, **counts}
    if args.json:
        emit_json(report)
    elif args.action == "migrate":
        done = f"applied version(s) {', '.join(map(str, applied))}" if applied else "already current"
        console.print(f"{store.describe()}: schema version {version} ({done})")
    else:
        behind = "" if version == LATEST else f" [yellow](this release's is {LATEST}: run `adytum store migrate`)[/]"
        console.print(f"{store.describe()}: schema version {version}{behind}")
        for key, n in counts.items():
            console.print(f"  {key:<11} {n}")
    return 0
