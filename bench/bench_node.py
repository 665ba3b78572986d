"""End-to-end benchmark: a real node process and `adytum bench` on the same machine.

Runs N hello orders with 32 concurrent requesters and then latency at concurrency 1, each time
printing throughput, p50/p95/p99 and the ratio to the enclave crypto bound measured in the same run.

    .venv/bin/python bench/bench_node.py [--orders 10000] [--enclaves N]
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--enclaves", type=int, default=None)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="adytum-bench-"))
    port = free_port()
    uri = f"http://127.0.0.1:{port}/"
    cmd = [sys.executable, "-m", "adytum", "up", "--port", str(port), "--data-dir", str(data), "--log-format", "text"]
    if args.enclaves:
        cmd += ["--enclaves", str(args.enclaves)]
    with open(data / "node.log", "wb") as log:
        node = subprocess.Popen(cmd, stdout=log, stderr=log)
    try:
        time.sleep(0.5)
        for _ in range(300):
            probe = subprocess.run([sys.executable, "-m", "adytum", "workers", "--uri", uri, "--json"],
                                   capture_output=True)
            if probe.returncode == 0:
                break
            time.sleep(0.2)
        bench = [sys.executable, "-m", "adytum", "bench", "--uri", uri, "--workload", "hello",
                 "--trust-root", str(data / "devroot" / "root.pem")]
        print(f"== throughput: {args.orders} orders, {args.concurrency} requesters", flush=True)
        subprocess.run(bench + ["-n", str(args.orders), "-c", str(args.concurrency)], check=False)
        print("== latency: 1000 orders, 1 requester", flush=True)
        subprocess.run(bench + ["-n", "1000", "-c", "1"], check=False)
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
