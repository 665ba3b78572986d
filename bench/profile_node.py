"""Where a node's CPU goes under load, by stage, in µs per work order.

Starts a fresh local node (SQLite, `--enclaves`), drives it with `adytum bench` (C requesters, N orders) and
meanwhile samples the node process with py-spy (`--gil`: only the thread holding the GIL, so waiting is not
counted). Each sample is put in the first stage its stack passes through; the shares are scaled by the node's
CPU per order that the bench measured from the node's own /metrics. The enclaves' and requesters' CPU per order
are the bench's figures too.

    pip install 'adytum[profile]'     # py-spy
    .venv/bin/python bench/profile_node.py [-n 20000] [-c 32] [--enclaves 2] [--raw node.txt]

py-spy needs permission to read another process's memory (root, or kernel.yama.ptrace_scope=0).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from adytum.cli.local_node import free_port, local_node
from adytum.client import Client
from adytum.datadir import DataDir

#: A sample belongs to the first of these its stack passes through (outermost first), else to "event loop".
STAGES = (
    ("store writer thread (transitions, commits)", ("GroupCommit._run",)),
    ("tree heads (ledger signer)", ("HeadSigner.",)),
    ("claims", ("Dispatcher._feed", "Dispatcher._claim")),
    ("dispatch, enclave channel, answers", ("Dispatcher._consume", "EnclaveLink.", "SubprocessStreamProtocol")),
    ("JSON-RPC handler: decode, validate, store, wait", ("Api.",)),
    ("HTTP: parse, middleware, respond (aiohttp)", ("RequestHandler.", "Listener.", "Connection.")),
)


def stage_of(stack: str) -> str:
    for name, markers in STAGES:
        if any(marker in stack for marker in markers):
            return name
    return "event loop and the rest"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=20_000, help="work orders (default 20,000)")
    parser.add_argument("-c", type=int, default=32, help="concurrent requesters (default 32)")
    parser.add_argument("--enclaves", type=int, default=2, help="work-order enclaves (default 2)")
    parser.add_argument("--raw", type=Path, help="keep py-spy's raw samples here")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("py-spy is not installed: pip install 'adytum[profile]'", file=sys.stderr)
        return 2
    directory = Path(tempfile.mkdtemp(prefix="adytum-profile-"))
    (directory / "node").mkdir(mode=0o700)
    raw = args.raw or directory / "samples.txt"
    with local_node(directory / "node", free_port(), "--enclaves", str(args.enclaves), timeout=120) as uri:
        pid = _node_pid(uri)
        bench = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "adytum",
                "bench",
                "--uri",
                uri,
                "-n",
                str(args.n),
                "-c",
                str(args.c),
                "--json",
                "--trust-root",
                str(DataDir(directory / "node").platform_root),
                "--bound-samples",
                "300",
            ],
            stdout=subprocess.PIPE,
        )
        spy_run = subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--gil",
                "--nonblocking",
                "--rate",
                "500",
                "--format",
                "raw",
                "--output",
                str(raw),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        out, _ = bench.communicate()
        spy_run.send_signal(2)  # SIGINT: py-spy writes what it sampled and exits
        spy_run.wait(timeout=60)
    report = json.loads(out)
    samples: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples[stage_of(stack)] += int(count)
    total = sum(samples.values()) or 1
    node_us = report["cpu_us_node"]
    print(
        f"{report['orders']} {report['workload']} orders, {args.c} requesters, {args.enclaves} {report['attestation']} "
        f"enclaves: {report['per_second']:,.0f}/s; CPU per order: node {node_us:.0f} µs, enclaves "
        f"{report['cpu_us_enclaves']:.0f} µs, requesters {report['cpu_us_requesters']:.0f} µs; "
        f"crypto bound {report['bound_us_per_order']:.0f} µs"
    )
    print(f"the node's {node_us:.0f} µs per order by stage ({total} samples holding the GIL):")
    for name, count in samples.most_common():
        print(f"  {count / total * node_us:6.0f} µs  {count / total:5.1%}  {name}")
    return 0


def _node_pid(uri: str) -> int:
    """The node's pid: the parent of its first enclave, as PoolStatus names it."""
    with Client(uri) as client:
        enclave = client.call("PoolStatus", {})["enclaves"][0]["pid"]
    return int(Path(f"/proc/{enclave}/stat").read_text().rsplit(")", 1)[1].split()[1])


if __name__ == "__main__":
    sys.exit(main())
