"""Submit-to-result latency of asynchronous orders: the SDK waiting on the node's result stream (GET /results)
against the SDK polling WorkOrderGetResult (its backoff from 20 ms to 1 s), on one real node process.

Each order is submitted with no response timeout (the node answers PENDING at once) and then awaited with
`AsyncClient.result`, which verifies and decrypts it; the time from the submit to the verified outputs is one
sample. `--concurrency` requesters do this at once, alternating modes per round so both see the same load.

    .venv/bin/python bench/bench_push.py [--orders 400] [--concurrency 8] [--workload hello]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from adytum.cli.local_node import free_port, local_node
from adytum.client import AsyncClient, Trust
from adytum.datadir import DataDir


async def one(client: AsyncClient, worker, workload: str, poll: bool) -> float:
    client.streams = False if poll else None  # None: use the stream if the node offers it (it does)
    started = time.perf_counter()
    order, _ = await client.submit(worker, workload, [b"bench"])
    await client.result(order, worker)
    return time.perf_counter() - started


async def run(uri: str, trust: Trust, orders: int, concurrency: int, workload: str) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"stream": [], "poll": []}
    clients = [AsyncClient(uri, trust=trust) for _ in range(concurrency)]
    try:
        worker = await clients[0].worker()
        for c in clients[1:]:
            await c.worker()
        rounds = orders // concurrency
        for r in range(rounds):
            mode = "poll" if r % 2 else "stream"
            times = await asyncio.gather(*(one(c, worker, workload, mode == "poll") for c in clients))
            samples[mode].extend(times)
    finally:
        for c in clients:
            await c.close()
    return samples


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=400, help="orders in all, half per mode (default 400)")
    parser.add_argument("--concurrency", type=int, default=8, help="requesters at once (default 8)")
    parser.add_argument("--workload", default="hello")
    parser.add_argument("--enclaves", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        data = Path(d) / "node"
        DataDir(data).create()
        with local_node(data, free_port(), "--enclaves", str(args.enclaves)) as uri:
            trust = Trust.from_files([DataDir(data).platform_root])
            samples = asyncio.run(run(uri, trust, args.orders, args.concurrency, args.workload))
    print(f"{'mode':8} {'orders':>7} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for mode, values in samples.items():
        print(
            f"{mode:8} {len(values):7d} {pct(values, 50) * 1000:8.1f} {pct(values, 99) * 1000:8.1f} "
            f"{statistics.fmean(values) * 1000:8.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
