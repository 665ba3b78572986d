"""Soak benchmark: does a node's memory stay flat over a long run? A fresh local node (SQLite, `--enclaves`
work-order enclaves) serves N verified hello orders from C requesters; after every `--every` orders the
resident memory of the node's process and of each enclave is read from its /metrics
(`adytum_memory_rss_bytes`). It prints each reading and, per process, the change from the first reading (after
`--every` orders, once caches and pools are warm) to the last: bounded means within a few per cent.

    .venv/bin/python bench/bench_soak.py                       # 100,000 orders, a reading every 10,000
    .venv/bin/python bench/bench_soak.py -n 20000 --every 5000 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

from adytum.cli.bench import drive, process_metric
from adytum.cli.local_node import free_port, local_node
from adytum.client import Trust
from adytum.datadir import DataDir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100_000, help="work orders in all (default 100,000)")
    parser.add_argument("--every", type=int, default=10_000, help="orders between readings (default 10,000)")
    parser.add_argument("-c", type=int, default=32, help="concurrent requesters (default 32)")
    parser.add_argument("--enclaves", type=int, default=2, help="work-order enclaves (default 2)")
    parser.add_argument("--json", action="store_true", help="one JSON document at the end")
    args = parser.parse_args()
    if args.every <= 0 or args.n < args.every:
        parser.error("-n must be at least --every, and --every positive")
    data_dir = Path(tempfile.mkdtemp(prefix="adytum-soak-"))
    readings: list[dict[str, object]] = []
    with local_node(data_dir, free_port(), "--enclaves", str(args.enclaves), timeout=120) as uri:
        trust = Trust.from_files([DataDir(data_dir).platform_root])
        done = failed = 0
        while done < args.n:
            latencies, lost, elapsed = asyncio.run(drive([uri], trust, "hello", b"soak", args.every, args.c, None))
            done, failed = done + len(latencies) + lost, failed + lost
            rss = process_metric(uri, "adytum_memory_rss_bytes")
            reading = {"orders": done, "failed": failed, "per_second": round(len(latencies) / elapsed, 1)}
            reading |= {name: round(value / 2**20, 1) for name, value in sorted(rss.items())}
            readings.append(reading)
            if not args.json:
                print(
                    f"{done:>8,} orders  {reading['per_second']:>7,.0f}/s  "
                    + "  ".join(
                        f"{name} {mb:.1f} MB"
                        for name, mb in reading.items()
                        if name not in ("orders", "failed", "per_second")
                    ),
                    flush=True,
                )
    first, last = readings[0], readings[-1]
    change = {
        name: round((float(last[name]) - float(first[name])) / float(first[name]) * 100, 1)  # type: ignore[arg-type]
        for name in first
        if name not in ("orders", "failed", "per_second") and name in last
    }
    if args.json:
        print(json.dumps({"readings": readings, "change_percent": change}, indent=2))
    else:
        print(
            f"resident memory from {first['orders']:,} to {last['orders']:,} orders: "
            + ", ".join(f"{name} {pct:+.1f} %" for name, pct in change.items())
            + f"; {last['failed']} failed"
        )
    return 0 if not last["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
