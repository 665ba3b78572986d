"""`adytum receipt`: fetch a work order's receipt trail as a self-contained document, or verify one offline."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .options import Subparsers, add_json, add_trust, add_uri, trust_from_args
from .output import console, emit_json, fail

if TYPE_CHECKING:
    from ..client import VerifiedReceipt
    from ..protocol.receipts import ReceiptDocument

DESCRIPTION = """\
Every work order has a receipt trail: the receipt made when the node accepted it (or the requester's own),
then the updates, the worker's signed in its enclave when the order completes or fails. Each event is a leaf
of the node's append-only Merkle ledger (RFC 9162), whose tree heads the worker's enclave signs with its
attested key. A receipt document holds the trail, each event's inclusion proof, a signed head and the
worker's attested record: `receipt verify` checks it with no node reachable. See docs/receipts.md."""

EPILOG = """\
examples:
  adytum receipt get 4f3a...c1 -o receipt.json          # fetch, verify and keep the document
  adytum receipt verify receipt.json --trust-root adytum-data/devroot/root.pem
  adytum receipt verify receipt.json --allow-mrenclave 9f2c...e1 --json
  adytum receipt verify old-receipt.json --at head      # judge the attestation as of the head's signing

exit status: 0 when the document verifies, 1 otherwise (the message names what failed)."""


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "receipt",
        help="a work order's receipt trail: get it as a document, verify one offline",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    get = actions.add_parser(
        "get",
        help="fetch a work order's receipt document from the node and verify it",
        description="WorkOrderReceiptDocument: the node waits (a few seconds at most) for a signed head that "
        "covers the order's events, then sends the document. It is verified here like `receipt verify` does.",
    )
    get.add_argument("work_order_id", metavar="WO_ID", help="the work order id (hex)")
    get.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the document here (JSON)")
    add_uri(get)
    add_trust(get)
    add_json(get)
    verify = actions.add_parser(
        "verify",
        help="verify a receipt document offline (no node needed)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Checks, in order: the worker record's keys and attestation against the trust roots and "
        "measurements given; the tree head's signature by the attested verification key; every event's "
        "inclusion in that head, that it is of this order, its signature, and the updates numbered 1..n.",
        epilog="exit status: 0 when the document verifies, 1 otherwise (the message names what failed).",
    )
    verify.add_argument("file", type=Path, metavar="FILE", help="a receipt document (`receipt get -o FILE`)")
    add_trust(verify)
    verify.add_argument(
        "--at",
        default="now",
        metavar="TIME",
        help="judge the worker's attestation as of TIME: `now` (default), `head` (when the tree head was "
        "signed: for a receipt kept longer than an attestation report's maximum age, one day) or ISO 8601",
    )
    add_json(verify)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return _get(args) if args.action == "get" else _verify(args)


def _verify(args: argparse.Namespace) -> int:
    import msgspec

    from ..client import verify_receipt_document
    from ..errors import AdytumError
    from ..protocol.receipts import ReceiptDocument

    try:
        trust = trust_from_args(args)
    except (OSError, ValueError) as exc:
        return fail(f"trust root: {exc}", as_json=args.json)
    try:
        doc = msgspec.json.decode(args.file.read_bytes(), type=ReceiptDocument)
    except OSError as exc:
        return fail(f"cannot read {args.file}: {exc}", as_json=args.json)
    except ValueError as exc:  # msgspec's errors, and bytes that are not UTF-8
        return fail(f"{args.file} is not a receipt document: {exc}", as_json=args.json)
    try:
        at = _moment(args.at, doc)
    except ValueError as exc:
        return fail(str(exc), as_json=args.json)
    try:
        receipt = verify_receipt_document(doc, trust, at=at)
    except AdytumError as exc:
        return fail(f"{args.file} does not verify: {exc}", as_json=args.json)
    _report(receipt, args.json, f"{args.file}: verified")
    return 0


def _get(args: argparse.Namespace) -> int:
    import msgspec

    from ..client import Client, verify_receipt_document
    from ..errors import AdytumError
    from ..files import write_atomic
    from ..protocol import EeaError

    try:
        trust = trust_from_args(args)
    except (OSError, ValueError) as exc:
        return fail(f"trust root: {exc}", as_json=args.json)
    try:
        with Client(args.uri, trust=trust) as client:
            doc = client.receipt_document(args.work_order_id)
    except EeaError as exc:
        return fail(exc.message, as_json=args.json, code=exc.code)
    except OSError as exc:
        return fail(f"cannot reach {args.uri}: {exc}", as_json=args.json)
    saved = ""
    if args.output:
        try:
            write_atomic(args.output, msgspec.json.format(msgspec.json.encode(doc), indent=2) + b"\n", mode=0o644)
        except OSError as exc:
            return fail(f"cannot write {args.output}: {exc}", as_json=args.json)
        saved = f" (saved as received to {args.output})"
    try:
        receipt = verify_receipt_document(doc, trust)
    except AdytumError as exc:
        return fail(f"the node's receipt document does not verify: {exc}{saved}", as_json=args.json)
    if args.json and not args.output:
        emit_json({"ok": True, "receipt": receipt.to_json(), "document": msgspec.to_builtins(doc)})
        return 0
    _report(receipt, args.json, f"verified{saved}" if saved else "verified (keep it with -o FILE)")
    return 0


def _moment(text: str, doc: ReceiptDocument) -> datetime | None:
    if text == "now":
        return None
    if text == "head":
        return datetime.fromtimestamp(doc.treeHead.timestamp / 1000, UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--at takes `now`, `head` or an ISO 8601 time, not {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _report(receipt: VerifiedReceipt, as_json: bool, headline: str) -> None:
    if as_json:
        emit_json({"ok": True, "receipt": receipt.to_json()})
        return
    console.print(f"[green]{headline}[/]", highlight=False, soft_wrap=True)
    console.print(receipt.describe(), markup=False, highlight=False, soft_wrap=True)
