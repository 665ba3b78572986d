"""End-to-end benchmark: real node processes driven by `adytum bench` on the same machine.

Throughput of N hello orders with 32 concurrent requesters against fresh nodes with 1 and then 2
work-order enclaves (one run, so the scaling is comparable), then latency at concurrency 1. Each prints
throughput, p50/p95/p99 and the ratio to the enclave crypto bound measured in the same run.

    .venv/bin/python bench/bench_node.py [--orders 10000] [--enclaves 1,2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--enclaves", default="1,2", help="pool sizes to compare (default 1,2)")
    args = parser.parse_args()
    bench = [sys.executable, "-m", "adytum", "bench", "--workload", "hello"]
    print(f"== throughput: {args.orders} orders, {args.concurrency} requesters, enclaves {args.enclaves}", flush=True)
    first = subprocess.run(bench + ["--enclaves", args.enclaves, "-n", str(args.orders), "-c", str(args.concurrency)])
    largest = args.enclaves.split(",")[-1]
    print(f"== latency: 1000 orders, 1 requester, {largest} enclaves", flush=True)
    second = subprocess.run(bench + ["--enclaves", largest, "-n", "1000", "-c", "1"])
    return first.returncode or second.returncode


if __name__ == "__main__":
    sys.exit(main())
