"""`adytum demo`: a real node process, one verified work order per built-in workload, then stop."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..datadir import DataDir
from .options import Subparsers, add_json
from .output import console, emit_json, fail

#: One work order per built-in workload: (workload, its input items). The stateful ones keep their
#: state, encrypted, in the node's store between orders; orders are signed, since per-requester state
#: belongs to the requester's key.
EXAMPLES: list[tuple[str, list[str]]] = [
    ("hello", ["world"]),
    ("echo-result", ["adytum"]),
    ("fib", ["100"]),
    ("secure-transaction", ["1000 500 200 10"]),
    ("simple-wallet", ["deposit alice 100", "transfer alice bob 30"]),
    ("simple-wallet", ["balance bob"]),
    ("hospital-records", ["method=add_patient&id=P1&fname=Ada&lname=Lovelace&age=52&bp=128&chol=210"]),
    ("hospital-records", ["method=get_patient_score&id=P1"]),
    ("heart-disease-eval", ["63 1 1 145 233 1 2 150 0 2.3 3 0 6 0"]),
]


def register(sub: Subparsers) -> None:
    demo = sub.add_parser(
        "demo",
        help="start a node, run every built-in workload through the SDK, stop",
        description="Starts `adytum up` as a real process on a free port with a fresh data "
        "directory, submits one work order per built-in workload, prints each "
        "verified result and stops the node.",
    )
    demo.add_argument("--data-dir", type=Path, default=None, help="keep the node's data here (default: temporary)")
    demo.add_argument(
        "--chain",
        action="store_true",
        help="the EEA proxy model instead: deploy the contracts on a development chain, let the node follow them "
        "(`up --chain`), and submit every order through the WorkOrderRegistry (needs the `chain` extra)",
    )
    demo.add_argument(
        "--rpc",
        metavar="URL",
        help="with --chain: use this Ethereum JSON-RPC node (with an unlocked account, e.g. Ganache) instead of "
        "an in-process eth-tester chain",
    )
    add_json(demo)
    demo.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..client import UntrustedWorker
    from ..files import make_private_dir
    from ..protocol import EeaError
    from .local_node import free_port, local_node

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="adytum-demo-"))
    make_private_dir(data_dir)
    port = free_port()
    uri = f"http://127.0.0.1:{port}/"
    say = (lambda *a, **k: None) if args.json else console.print
    if args.chain:
        return _run_on_chain(args, data_dir, port, say)
    say(f"[bold]starting a node[/] on {uri} (simulated enclaves, SQLite store in {data_dir})")
    results: list[dict[str, Any]] = []
    try:
        with local_node(data_dir, port):
            _run_examples(uri, data_dir, say, results)
    except (RuntimeError, EeaError, OSError, UntrustedWorker) as exc:
        return fail(f"demo failed: {exc}", as_json=args.json)
    if args.json:
        emit_json({"ok": True, "uri": uri, "dataDir": str(data_dir), "results": results})
    else:
        say(f"[bold]node stopped[/]; its log is {data_dir / 'node.log'}")
    return 0


def _run_examples(uri: str, data_dir: Path, say: Callable[..., None], results: list[dict[str, Any]]) -> None:
    from ..client import Client, Trust
    from ..crypto import SigningKey

    root = DataDir(data_dir).platform_root
    say(
        f"[yellow]trusting the node's DEVELOPMENT attestation root {root} explicitly: simulated enclaves, "
        "no hardware protection[/]"
    )
    with Client(uri, trust=Trust.from_files([root]), signer=SigningKey()) as client:
        worker = client.worker()
        assert worker.verdict is not None
        say(
            f"worker {worker.worker_id[:16]}…: attestation verified ({worker.verdict.kind}, mr_enclave "
            f"{(worker.verdict.mr_enclave or b'').hex()[:16]}…), report data binds both keys and the worker id"
        )
        for workload, inputs in EXAMPLES:
            started = time.perf_counter()
            outputs = [o.decode() for o in client.run(workload, [i.encode() for i in inputs])]
            ms = (time.perf_counter() - started) * 1000
            results.append(
                {"workload": workload, "inputs": inputs, "outputs": outputs, "verified": True, "ms": round(ms, 1)}
            )
            say(f"  [green]✓ verified[/] {workload}({_items(inputs, 50)}) → {_items(outputs, 70)}  [dim]{ms:.1f} ms[/]")
        _redact_photo(client, data_dir, say, results)


def _items(items: list[str], width: int) -> str:
    """Each item quoted on its own, as `adytum submit --in-data` takes them (one flag per item)."""
    shown = ", ".join(repr(item if len(item) <= width else item[: width - 3] + "...") for item in items)
    return shown if len(items) == 1 else f"[{shown}]"


def _redact_photo(client: Any, data_dir: Path, say: Callable[..., None], results: list[dict[str, Any]]) -> None:
    """`redact-image` on the sample photograph shipped with the demo, when the vision extra is installed."""
    try:
        import cv2  # noqa: F401  (the node runs on this interpreter: it needs OpenCV too)
    except ImportError:
        say("  [dim]redact-image skipped: it needs OpenCV (pip install 'adytum\\[vision]')[/]")
        return
    photo = Path(__file__).with_name("samples") / "astronaut.jpg"
    started = time.perf_counter()
    redacted, report = client.run("redact-image", [photo.read_bytes()])
    ms = (time.perf_counter() - started) * 1000
    out = data_dir / "astronaut-redacted.jpg"
    out.write_bytes(redacted)
    faces = json.loads(report)["images"][0]["faces"]
    results.append(
        {
            "workload": "redact-image",
            "inputs": [str(photo)],
            "outputs": [str(out), report.decode()],
            "verified": True,
            "ms": round(ms, 1),
        }
    )
    say(
        f"  [green]✓ verified[/] redact-image({photo.name}, {photo.stat().st_size:,} bytes) → {len(faces)} face(s) "
        f"at {faces}, blurred in {out}  [dim]{ms:.1f} ms[/]"
    )


def _run_on_chain(args: argparse.Namespace, data_dir: Path, port: int, say: Callable[..., None]) -> int:
    """The proxy model end to end: contracts deployed, a node following them, every order through the chain."""
    import contextlib

    from ..client import UntrustedWorker, VerificationError
    from ..protocol import EeaError
    from .local_node import local_node

    try:
        from ..chain import ChainClient, ChainError, deploy, http
        from ..chain.devchain import serving
    except ImportError:
        return fail("demo --chain needs the `chain` extra: pip install 'adytum[chain]'", as_json=args.json)
    results: list[dict[str, Any]] = []
    try:
        with contextlib.ExitStack() as stack:
            rpc = args.rpc or stack.enter_context(serving())
            kind = "the JSON-RPC node" if args.rpc else "an in-process eth-tester chain (simulated, dev keys)"
            say(f"[bold]chain[/]: {kind} at {rpc}")
            w3 = http(rpc)
            accounts = w3.eth.accounts
            if len(accounts) < 2:
                return fail(f"{rpc} must unlock two accounts (the worker's and the requester's)", as_json=args.json)
            deployment = deploy(w3, accounts[0])
            contracts = data_dir / "contracts.json"
            contracts.write_text(json.dumps(deployment.to_json()))
            for c in deployment.contracts.values():
                say(f"  deployed {c.name} at {c.address}")
            say(f"[bold]starting a node[/] that follows them (simulated enclaves, data in {data_dir})")
            stack.enter_context(local_node(data_dir, port, "--chain", rpc, "--contracts", str(contracts)))
            root = DataDir(data_dir).platform_root
            say(f"[yellow]trusting the node's DEVELOPMENT attestation root {root}: simulated enclaves[/]")
            from ..client import Trust
            from ..crypto import SigningKey

            client = ChainClient(
                rpc, deployment, trust=Trust.from_files([root]), signer=SigningKey(), sender=accounts[1]
            )
            deadline = time.monotonic() + 60
            while not client.worker_ids():
                if time.monotonic() > deadline:
                    return fail("the node did not register its worker on chain", as_json=args.json)
                time.sleep(0.2)
            worker = client.worker()
            say(f"worker {worker.worker_id[:16]}… found in the WorkerRegistry; its evidence matches the hash there")
            for workload, inputs in EXAMPLES:
                started = time.perf_counter()
                order, block = client.submit(worker, workload, [i.encode() for i in inputs])
                outputs = [o.decode() for o in client.result(order, worker, timeout=60)]
                ms = (time.perf_counter() - started) * 1000
                results.append(
                    {"workload": workload, "inputs": inputs, "outputs": outputs, "verified": True, "ms": round(ms, 1)}
                )
                say(
                    f"  [green]✓ signature checked by the contract and here[/] {workload} → {_items(outputs, 60)}  "
                    f"[dim]submitted in block {block}, {ms:.0f} ms[/]"
                )
    except (RuntimeError, EeaError, OSError, UntrustedWorker, VerificationError, ChainError) as exc:
        return fail(f"demo failed: {exc}", as_json=args.json)
    if args.json:
        emit_json({"ok": True, "chain": True, "dataDir": str(data_dir), "results": results})
    else:
        say(f"[bold]node stopped[/]; its log is {data_dir / 'node.log'}")
    return 0
