"""`adytum submit`: one work order, printed only once the worker's attestation and signature verify."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from .options import Subparsers, add_json, add_suite, add_trust, add_uri, trust_from_args
from .output import console, emit_json, fail

if TYPE_CHECKING:
    from ..client import Trust, WorkerInfo
    from ..crypto import SigningKey


def register(sub: Subparsers) -> None:
    submit = sub.add_parser(
        "submit",
        help="send one work order and print its verified output",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Encrypt inputs to the worker's key, submit, wait, verify the worker's "
        "signature and decrypt. Nothing is printed unless the signature verifies.",
        epilog="examples:\n  adytum submit --workload hello --in-data world\n"
        "  adytum submit --workload fib --in-data 100 --json\n"
        "  adytum submit --workload hello --in-data world --suite mlkem-x25519   # post-quantum key exchange\n"
        "  adytum submit --workload simple-wallet --in-data 'deposit alice 10' "
        "--requester-key ~/.adytum/me.pem\n"
        "  adytum submit --workload simple-wallet --in-data 'withdraw alice 3' "
        "--requester-key ~/.adytum/me.pem --strict\n"
        "  adytum submit --workload redact-image --in-file photo.jpg --out-file redacted.jpg",
    )
    add_uri(submit)
    submit.add_argument("--workload", required=True, help="workload name, e.g. hello, echo-result, fib")
    submit.add_argument(
        "--in-data", action=_Input, dest="inputs", metavar="TEXT", help="an input item, as text (repeat for several)"
    )
    submit.add_argument(
        "--in-file",
        action=_Input,
        dest="inputs",
        metavar="FILE",
        help="an input item, the bytes of FILE (e.g. a photograph); items keep the order given",
    )
    submit.add_argument(
        "--out-file",
        action="append",
        default=[],
        metavar="FILE",
        help="write output item 0 to the first FILE, item 1 to the second, ...; the rest are printed",
    )
    submit.add_argument("--worker-id", help="hex worker id (default: an active worker this node serves)")
    add_trust(submit)
    add_suite(submit)
    submit.add_argument("--sign", action="store_true", help="sign the request with a fresh requester key")
    submit.add_argument(
        "--requester-key",
        metavar="PEM",
        help="sign with this secp256k1 key, made there if missing: per-requester state "
        "(e.g. simple-wallet balances) belongs to it across orders",
    )
    submit.add_argument(
        "--strict",
        action="store_true",
        help="strict ordering (an EEA extension; needs --requester-key): the order carries the key's next "
        "sequence number, kept in PEM.sequence, and the worker refuses it out of order, twice or after a gap",
    )
    submit.add_argument(
        "--sequence",
        type=int,
        metavar="N",
        help="with --strict: use this sequence number instead of the next one in PEM.sequence "
        "(a refusal names the number the worker expects)",
    )
    submit.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the result")
    submit.add_argument(
        "--chain",
        metavar="URL",
        help="submit through the WorkOrderRegistry on this Ethereum JSON-RPC node instead of a node's API; the "
        "result is taken from the completion event (which the contract accepted only signed by the worker)",
    )
    submit.add_argument("--contracts", metavar="FILE", help="with --chain: the file `adytum chain deploy` printed")
    submit.add_argument(
        "--chain-key",
        metavar="FILE",
        help="with --chain: a file holding the hex private key to send from (default: the RPC node's first account)",
    )
    add_json(submit)
    submit.set_defaults(run=run)


class _Input(argparse.Action):
    """--in-data and --in-file append to one list, so that items keep the order they were given in."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, value: object, *_: object
    ) -> None:
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest) or []), (self.option_strings[0], value)])


def _read_inputs(args: argparse.Namespace) -> list[bytes]:
    return [Path(v).read_bytes() if option == "--in-file" else v.encode() for option, v in args.inputs]


def run(args: argparse.Namespace) -> int:
    from ..client import Client, UntrustedWorker, VerificationError
    from ..protocol import EeaError

    if not args.inputs:
        return fail("give at least one input item: --in-data TEXT or --in-file FILE", as_json=args.json)
    try:
        args.items = _read_inputs(args)
    except OSError as exc:
        return fail(f"--in-file: {exc.filename}: {exc.strerror}", as_json=args.json)
    if (args.strict or args.sequence is not None) and args.requester_key is None:
        return fail("--strict needs --requester-key: the sequence belongs to the key that signs", as_json=args.json)
    if args.sequence is not None and args.sequence < 1:
        return fail("--sequence must be 1 or more", as_json=args.json)
    try:
        signer = _signer(args)
        sequence = _next_sequence(args) if args.strict or args.sequence is not None else 0
    except (OSError, ValueError) as exc:
        return fail(f"requester key: {exc}", as_json=args.json)
    try:
        trust = trust_from_args(args)
    except (OSError, ValueError) as exc:
        return fail(f"trust root: {exc}", as_json=args.json)
    if args.chain or args.contracts:
        return _run_on_chain(args, trust, signer)
    try:
        with Client(args.uri, trust=trust, signer=signer, suite=args.suite) as client:
            worker = client.worker(args.worker_id)
            outputs = client.run(
                args.workload,
                args.items,
                worker_id=worker.worker_id,
                timeout=args.timeout,
                sequence=sequence,
            )
    except EeaError as exc:
        if sequence and "requesterSequence" not in exc.message:
            _used_sequence(args, sequence)  # the worker ran it (and it failed): its number is spent
        return fail(exc.message, as_json=args.json, code=exc.code)
    except (UntrustedWorker, VerificationError) as exc:
        return fail(f"refused: {exc}", as_json=args.json)
    except OSError as exc:
        return fail(f"cannot reach {args.uri}: {exc}", as_json=args.json)
    if sequence:
        _used_sequence(args, sequence)
    return _print(args, outputs, _simulated(worker), sequence)


def _print(args: argparse.Namespace, outputs: list[bytes], simulated: bool, sequence: int | None = None) -> int:
    from ..files import write_atomic

    files = args.out_file[: len(outputs)]
    try:
        for path, data in zip(files, outputs, strict=False):
            write_atomic(Path(path), data)
    except OSError as exc:
        return fail(f"--out-file: {exc.filename}: {exc.strerror}", as_json=args.json)
    texts = [_text(o) for o in outputs[len(files) :]]
    if args.json:
        extra = {"sequence": sequence} if sequence else {}
        written = {"written": files} if files else {}
        emit_json(
            {
                "ok": True,
                "verified": True,
                "simulated": simulated,
                "workload": args.workload,
                "outputs": texts,
                **written,
                **extra,
            }
        )
    else:
        for text in texts:
            console.print(text, markup=False, highlight=False, soft_wrap=True)  # outputs are data: never wrapped
    return 0


def _run_on_chain(args: argparse.Namespace, trust: Trust, signer: SigningKey | None) -> int:
    from ..client import UntrustedWorker, VerificationError
    from ..protocol import EeaError

    if not (args.chain and args.contracts):
        return fail("--chain and --contracts go together", as_json=args.json)
    try:
        from ..chain import ChainClient, ChainError
    except ImportError:
        return fail("--chain needs the `chain` extra: pip install 'adytum[chain]'", as_json=args.json)
    try:
        key = Path(args.chain_key).read_text().strip() if args.chain_key else None
        client = ChainClient(args.chain, args.contracts, trust=trust, signer=signer, key=key, suite=args.suite)
        worker = client.worker(args.worker_id)
        outputs = client.run(args.workload, args.items, worker_id=worker.worker_id, timeout=args.timeout)
    except EeaError as exc:
        return fail(exc.message, as_json=args.json, code=exc.code)
    except (UntrustedWorker, VerificationError) as exc:
        return fail(f"refused: {exc}", as_json=args.json)
    except ChainError as exc:
        return fail(str(exc), as_json=args.json)
    except Exception as exc:  # web3's errors (an RPC node down or erring): one line, never a traceback
        return fail(f"cannot submit through {args.chain}: {exc}", as_json=args.json)
    return _print(args, outputs, _simulated(worker))


def _text(output: bytes) -> str:
    try:
        return output.decode()
    except UnicodeDecodeError:
        return f"<{len(output):,} bytes that are not text: write them to a file with --out-file>"


def _simulated(worker: WorkerInfo) -> bool:
    """Whether the worker's attestation is the simulated format: no hardware vouches for it."""
    return worker.verdict is not None and worker.verdict.kind == "simulated"


def _signer(args: argparse.Namespace) -> SigningKey | None:
    """The requester key: loaded from --requester-key (made there on first use), or fresh with --sign."""
    from ..crypto import SigningKey
    from ..files import write_atomic

    if args.requester_key is not None:
        path = Path(args.requester_key).expanduser()
        if not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(path, SigningKey().private_pem().encode(), exclusive=True, mode=0o600)
        return SigningKey.from_pem(path.read_text())
    return SigningKey() if args.sign else None


def _sequence_file(args: argparse.Namespace) -> Path:
    return Path(args.requester_key + ".sequence").expanduser()


def _next_sequence(args: argparse.Namespace) -> int:
    """--sequence, or one more than the last number this key used (PEM.sequence; none yet: 1)."""
    if args.sequence is not None:
        return int(args.sequence)
    path = _sequence_file(args)
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return 1
    if not text.isdigit():
        raise ValueError(f"{path} should hold the last sequence number used, not {text[:40]!r}")
    return int(text) + 1


def _used_sequence(args: argparse.Namespace, sequence: int) -> None:
    from ..files import write_atomic

    write_atomic(_sequence_file(args), f"{sequence}\n".encode(), mode=0o600)
