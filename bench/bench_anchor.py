"""What the peer anchor costs: throughput of state-changing orders with the key manager's counters anchored to
a witness node on loopback (`adytum up --anchor-peer`), against the same kind of node without an anchor, in one run.

Every order is a signed simple-wallet deposit (one state write: the key manager checks and seals its versions,
and with the anchor has the witness acknowledge them, before the order answers). C requesters, each with its
own key, so that their balances are distinct items. Fresh nodes, run without, with, with, without (a drift of
the machine's speed falls on both sides alike); the ratio is of the mean throughputs. Simulation mode: the
enclaves are processes, the witness is another node on this machine.

    .venv/bin/python bench/bench_anchor.py [--orders 1000] [--concurrency 16] [--enclaves 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from adytum import crypto
from adytum.cli import main as cli
from adytum.cli.local_node import free_port, local_node
from adytum.client import AsyncClient, Trust
from adytum.datadir import DataDir
from adytum.issuer.devroot import init_dev_root


async def drive(uri: str, trust: Trust, orders: int, concurrency: int) -> tuple[int, int, float]:
    """(completed, failed, seconds) for `orders` deposits by `concurrency` requesters."""
    issued = done = failed = 0

    async def requester() -> None:
        nonlocal issued, done, failed
        async with AsyncClient(uri, trust=trust, signer=crypto.SigningKey()) as client:
            worker = await client.worker()
            while issued < orders:
                issued += 1
                try:
                    await client.run("simple-wallet", [b"deposit acct 1"], worker_id=worker.worker_id)
                    done += 1
                except Exception as exc:  # counted and shown: a benchmark reports failures, it does not hide them
                    failed += 1
                    print(f"  failed: {exc}", file=sys.stderr)

    started = time.perf_counter()
    await asyncio.gather(*(requester() for _ in range(concurrency)))
    return done, failed, time.perf_counter() - started


def measure(anchored: bool, witness: str, witness_root: Path, args: argparse.Namespace) -> dict[str, object]:
    node_dir = Path(tempfile.mkdtemp(prefix="adytum-bench-anchor-"))
    options = ["--enclaves", str(args.enclaves)]
    if anchored:
        init_dev_root(node_dir / "devroot")
        assert cli(["pool", "trust", str(witness_root), "--data-dir", str(node_dir), "--json"]) == 0
        options += ["--anchor-peer", witness]
    with local_node(node_dir, free_port(), *options, timeout=120) as uri:
        trust = Trust.from_files([DataDir(node_dir).platform_root])
        done, failed, seconds = asyncio.run(drive(uri, trust, args.orders, args.concurrency))
    rate = done / seconds if seconds else 0.0
    label = "anchored to a witness" if anchored else "no anchor"
    print(f"  {label:22} {done} deposits in {seconds:.2f} s: {rate:,.1f}/s ({failed} failed)", flush=True)
    return {"anchored": anchored, "orders": done, "failed": failed, "seconds": round(seconds, 3), "per_second": rate}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--enclaves", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    witness_dir = Path(tempfile.mkdtemp(prefix="adytum-bench-witness-"))
    witness = f"127.0.0.1:{free_port()}"
    print(
        f"== state-changing orders (simulation): {args.orders} deposits, {args.concurrency} requesters, "
        f"{args.enclaves} enclaves; witness node at {witness}",
        flush=True,
    )
    with local_node(witness_dir, free_port(), "--enclaves", "1", "--kme-listen", witness, "--worker-name", "witness"):
        root = DataDir(witness_dir).platform_root
        runs = [measure(anchored, witness, root, args) for anchored in (False, True, True, False)]
    on = statistics.fmean(float(r["per_second"]) for r in runs if r["anchored"])  # type: ignore[arg-type]
    off = statistics.fmean(float(r["per_second"]) for r in runs if not r["anchored"])  # type: ignore[arg-type]
    ratio = on / off if off else float("nan")
    print(f"== with the peer anchor: {ratio:.2f}x the throughput without ({on:,.1f}/s against {off:,.1f}/s)")
    if args.json:
        print(json.dumps({"runs": runs, "anchored_ratio": round(ratio, 3)}))
    return 0 if all(r["failed"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
