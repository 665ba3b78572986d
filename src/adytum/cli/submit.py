"""`adytum submit`: one work order, printed only once the worker's attestation and signature verify."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import crypto
from ..client import Client, UntrustedWorker, VerificationError
from ..files import write_atomic
from ..protocol import EeaError
from . import trust_from_args
from .output import console, emit_json, fail


def run_submit(args: argparse.Namespace) -> int:
    try:
        signer = _signer(args)
    except (OSError, ValueError) as exc:
        return fail(f"requester key: {exc}", as_json=args.json)
    try:
        trust = trust_from_args(args)
    except (OSError, ValueError) as exc:
        return fail(f"trust root: {exc}", as_json=args.json)
    try:
        with Client(args.uri, trust=trust, signer=signer) as client:
            outputs = client.run(args.workload, [d.encode() for d in args.in_data], worker_id=args.worker_id,
                                 timeout=args.timeout)
    except EeaError as exc:
        return fail(exc.message, as_json=args.json, code=exc.code)
    except (UntrustedWorker, VerificationError) as exc:
        return fail(f"refused: {exc}", as_json=args.json)
    except OSError as exc:
        return fail(f"cannot reach {args.uri}: {exc}", as_json=args.json)
    texts = [o.decode(errors="replace") for o in outputs]
    if args.json:
        emit_json({"ok": True, "verified": True, "workload": args.workload, "outputs": texts})
    else:
        for text in texts:
            console.print(text, markup=False, highlight=False)
    return 0


def _signer(args: argparse.Namespace) -> crypto.SigningKey | None:
    """The requester key: loaded from --requester-key (made there on first use), or fresh with --sign."""
    if args.requester_key is not None:
        path = Path(args.requester_key)
        if not path.exists():
            write_atomic(path, crypto.SigningKey().private_pem().encode(), exclusive=True, mode=0o600)
        return crypto.SigningKey.from_pem(path.read_text())
    return crypto.SigningKey() if args.sign else None
