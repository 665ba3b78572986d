"""`adytum ledger`: the node's signed tree head, and the check that a newer head extends an older one."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from .options import Subparsers, add_json, add_uri
from .output import console, emit_json, fail

if TYPE_CHECKING:
    from ..client import Client
    from ..protocol.receipts import TreeHead

T = TypeVar("T")

DESCRIPTION = """\
The receipt ledger is an append-only Merkle log (RFC 9162) of every receipt event of the node. The worker's
enclave signs its tree heads (size, root, time) with the worker's attested verification key. Keep a head
now (`ledger head -o FILE`), fetch another later, and `ledger verify OLD NEW` proves the later tree extends
the earlier one: nothing kept was rewritten or dropped. A head says nothing about a fork the host shows
someone else; comparing heads across requesters does (docs/receipts.md)."""

EPILOG = """\
examples:
  adytum ledger head -o head-monday.json
  adytum ledger head -o head-friday.json
  adytum ledger verify head-monday.json head-friday.json            # the proof from the node at --uri
  adytum ledger verify old.json new.json --proof proof.json --verifying-key worker.pem   # offline

exit status: 0 when NEW extends OLD, 1 otherwise (the message names what failed)."""


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "ledger",
        help="the receipt ledger: the signed tree head, and that a new head extends an old one",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    head = actions.add_parser(
        "head",
        help="print (and keep) the node's latest signed tree head",
        description="LedgerHead. The signature is checked against the worker's published verification key "
        "(`adytum workers show` checks that key's attestation).",
    )
    head.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the head here (JSON)")
    add_uri(head)
    add_json(head)
    verify = actions.add_parser(
        "verify",
        help="check that the tree of head NEW extends the tree of head OLD",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Both heads' signatures (by the worker's key: from --verifying-key, else from the node's "
        "worker record) and the RFC 9162 consistency proof between them (from --proof, else from the node).",
        epilog="exit status: 0 when NEW extends OLD, 1 otherwise.",
    )
    verify.add_argument("old", type=Path, metavar="OLD", help="the earlier head (`ledger head -o FILE`)")
    verify.add_argument("new", type=Path, metavar="NEW", help="the later head")
    verify.add_argument(
        "--proof", type=Path, metavar="FILE", help="a LedgerConsistencyProof result (JSON): no node needed"
    )
    verify.add_argument(
        "--verifying-key",
        type=Path,
        metavar="PEM",
        help="the worker's verification key (default: from the node's worker record; with --proof and "
        "without this, signatures are not checked and the output says so)",
    )
    add_uri(verify)
    add_json(verify)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import AdytumError
    from ..protocol import EeaError

    try:
        return _head(args) if args.action == "head" else _verify(args)
    except EeaError as exc:
        return fail(exc.message, as_json=args.json, code=exc.code)
    except OSError as exc:
        return fail(str(exc), as_json=args.json)
    except (AdytumError, ValueError) as exc:
        return fail(str(exc), as_json=args.json)


def _published_key(client: Client, worker_id: str) -> tuple[str, ...]:
    """The worker's verification key and its earlier ones along the record's handovers (heads signed before
    a signing-key rotation verify under the key of their time)."""
    from ..client import WorkerInfo

    return WorkerInfo.from_record(worker_id, client.call("WorkerRetrieve", {"workerId": worker_id})).verifying_keys


def _head(args: argparse.Namespace) -> int:
    import msgspec

    from ..client import Client
    from ..files import write_atomic
    from ..ledger.verify import verify_tree_head

    with Client(args.uri) as client:
        head = client.ledger_head()
        verify_tree_head(head, _published_key(client, head.workerId))
    if args.output:
        write_atomic(args.output, msgspec.json.format(msgspec.json.encode(head), indent=2) + b"\n", mode=0o644)
    if args.json:
        emit_json({"ok": True, "treeHead": msgspec.to_builtins(head)})
        return 0
    console.print(_describe(head), highlight=False, soft_wrap=True)
    console.print("  signed by the worker's published verification key", highlight=False)
    if args.output:
        console.print(f"  saved to {args.output}", highlight=False, soft_wrap=True)
    return 0


def _verify(args: argparse.Namespace) -> int:
    import msgspec

    from ..client import Client
    from ..ledger.verify import hashes_from_hex, verify_heads_consistent, verify_tree_head
    from ..protocol.receipts import ConsistencyProof

    old, new = _load_head(args.old), _load_head(args.new)
    key: str | tuple[str, ...] | None = args.verifying_key.read_text() if args.verifying_key else None
    if args.proof:
        proof = _load(args.proof, ConsistencyProof)
        if (proof.firstSize, proof.secondSize) != (old.treeSize, new.treeSize):
            return fail(
                f"{args.proof} proves {proof.firstSize} -> {proof.secondSize} leaves, not "
                f"{old.treeSize} -> {new.treeSize}",
                as_json=args.json,
            )
    else:
        with Client(args.uri) as client:
            proof = client.ledger_consistency(old.treeSize, new.treeSize)
            key = key or _published_key(client, new.workerId)
    if key is not None:
        verify_tree_head(old, key)
        verify_tree_head(new, key)
    verify_heads_consistent(old, new, hashes_from_hex(proof.path, "the consistency proof"))
    signatures = "checked" if key is not None else "not checked (no --verifying-key)"
    if args.json:
        emit_json(
            {
                "ok": True,
                "oldSize": old.treeSize,
                "newSize": new.treeSize,
                "signaturesChecked": key is not None,
                "proof": msgspec.to_builtins(proof),
            }
        )
        return 0
    console.print(
        f"[green]consistent[/]: the tree of {new.treeSize} leaves extends the tree of {old.treeSize}; "
        f"head signatures {signatures}",
        highlight=False,
        soft_wrap=True,
    )
    return 0


def _load_head(path: Path) -> TreeHead:
    from ..protocol.receipts import TreeHead

    return _load(path, TreeHead)


def _load(path: Path, kind: type[T]) -> T:
    import msgspec

    try:
        return msgspec.json.decode(path.read_bytes(), type=kind)
    except ValueError as exc:  # msgspec's errors, and bytes that are not UTF-8
        raise ValueError(f"{path} is not a {kind.__name__}: {exc}") from None


def _describe(head: TreeHead) -> str:
    when = datetime.fromtimestamp(head.timestamp / 1000, UTC).isoformat(timespec="seconds")
    return f"ledger of worker {head.workerId}: {head.treeSize} leaves, root {head.rootHash}, signed {when}"
