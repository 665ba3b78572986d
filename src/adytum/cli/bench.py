"""`adytum bench`: throughput and latency of verified work orders, against a running node or against
fresh local nodes with 1, 2, ... work-order enclaves (`--enclaves 1,2`) to show how the pool scales.

The yardstick is measured in the same run: the enclave's own processing of a work order (the session-key
unwrap of the suite in use, RSA-OAEP or HPKE, then ECDSA verify and sign, AES-GCM, hashing), in-process with
no I/O, times the cores. Nothing that serves work orders can beat it on this machine, so `ratio` says how
much the node adds. `--suite rsa,hpke` measures each suite in turn, each against its own bound.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..datadir import DataDir
from .options import SUITE_NAMES, Subparsers, add_json, add_trust, add_uri, trust_from_args
from .output import console, emit_json, fail

if TYPE_CHECKING:
    from rich.progress import Progress

    from ..client import Trust


def register(sub: Subparsers) -> None:
    bench = sub.add_parser(
        "bench",
        help="drive a running node and report throughput and latency",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="C concurrent requesters each build, submit, wait for, verify and decrypt "
        "work orders until N are done. Prints verified work orders/s, latency "
        "percentiles, and the ratio to the worker-side crypto bound measured in "
        "this run on this machine.",
        epilog="examples:\n"
        "  adytum bench --uri http://localhost:1947 -n 10000 -c 32 --workload hello\n"
        "  adytum bench --enclaves 1,2 -n 5000        # fresh local nodes: 1, then 2 enclaves\n"
        "  adytum bench --enclaves 2 --receipts-cost   # the same node with and without receipts\n"
        "  adytum bench --enclaves 2 --suite rsa,hpke,mlkem-x25519   # each key-encryption suite in turn\n"
        "  adytum bench --store postgresql://postgres@127.0.0.1:5432/test --nodes 1,2   # nodes on one database",
    )
    add_uri(bench)
    add_trust(bench)
    bench.add_argument("-n", type=int, default=2000, help="work orders to complete (default 2000)")
    bench.add_argument("-c", type=int, default=32, help="concurrent requesters (default 32)")
    bench.add_argument("--workload", default="hello", help="workload (default hello)")
    bench.add_argument("--in-data", default="world", help="the input of every order")
    bench.add_argument("--worker-id", help="with --uri: hex worker id (default: the worker the node hosts)")
    bench.add_argument(
        "--suite",
        default="rsa",
        metavar="NAME[,NAME...]",
        help=f"how orders wrap their session key: {', '.join(SUITE_NAMES)} (default rsa, the EEA's); several, "
        "comma-separated, are measured one after the other on the same node, each with its own crypto bound, "
        "and compared with the first",
    )
    bench.add_argument(
        "--bound-samples",
        type=int,
        default=300,
        help="work orders processed in-process to measure the crypto bound (default 300)",
    )
    bench.add_argument(
        "--enclaves",
        metavar="N,M,...",
        help="instead of --uri, start a fresh local node with N work-order enclaves, measure it, "
        "stop it; then M; and print how throughput scales (e.g. --enclaves 1,2)",
    )
    bench.add_argument(
        "--receipts-cost",
        action="store_true",
        help="with --enclaves: run each pool size four times, with receipts (the default), then twice with a "
        "node started --no-receipts, then with receipts again, and print the ratio of the mean throughputs: "
        "what the receipt ledger costs",
    )
    bench.add_argument(
        "--nodes",
        metavar="N,M,...",
        help="instead of --uri, start N fresh local nodes of one worker on one PostgreSQL database (--store; "
        "the first runs the key manager, the others join it), spread the requesters over them, measure, stop "
        "them; then M; and print the ratio (e.g. --nodes 1,2). Each node runs --enclaves of its own (default 1)",
    )
    bench.add_argument(
        "--store",
        metavar="URL",
        help="with --nodes: the PostgreSQL server; each run makes a database of its own there and drops it after",
    )
    add_json(bench)
    bench.set_defaults(run=run)


@dataclass
class Report:
    uri: str
    enclaves: int | None  # per node
    nodes: int | None  # None: one node, not on a shared store this command made
    receipts: bool | None  # None: a node this command did not start
    workload: str
    orders: int
    concurrency: int
    failed: int
    seconds: float
    per_second: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    bound_us_per_order: float
    cores: int
    bound_per_second: float
    ratio_to_bound: float
    #: CPU time per verified order, in µs, as the node's /metrics and this process count it: the node's own
    #: process, its enclave processes, and the requesters here (None: the node does not report it).
    cpu_us_node: float | None = None
    cpu_us_enclaves: float | None = None
    cpu_us_requesters: float | None = None
    #: What the worker's attestation is: "simulated" (no hardware protection), or the hardware's format.
    attestation: str = ""
    suite: str = "rsa"  # the key-encryption suite (an `adytum.client.SUITES` name) of every order and of the bound


def crypto_bound(samples: int, workload: str, data: bytes, suite: str = "rsa") -> float:
    """Microseconds the enclave spends on one work order wrapped in `suite`, measured in-process."""
    from ..client import WorkerInfo, build
    from ..crypto import sha256
    from ..enclave.keys import WorkerKeys
    from ..enclave.processor import WorkOrderProcessor
    from ..protocol import encode
    from ..workloads import load_workloads

    keys = WorkerKeys.generate(sha256(b"bench").hex())
    proc = WorkOrderProcessor(keys, load_workloads())
    info = WorkerInfo(
        keys.worker_id, keys.verifying_key, keys.encryption_key, keys.encryption_key_signature, hpke_keys=keys.hpke_keys
    )
    orders = [encode(build(info, workload, [data], suite=suite).params) for _ in range(samples)]
    started = time.perf_counter()
    for raw in orders:
        proc.process(raw)
    return (time.perf_counter() - started) / samples * 1e6


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


async def drive(
    uris: list[str],
    trust: Trust,
    workload: str,
    data: bytes,
    n: int,
    concurrency: int,
    progress: Progress | None,
    worker_id: str | None = None,
    suite: str = "rsa",
) -> tuple[list[float], int, float]:
    """Requester i sends to node i mod len(uris), each order built, submitted, waited for, verified, decrypted."""
    from ..client import AsyncClient
    from ..client.workorder import choose_suite
    from ..protocol import EeaError

    latencies: list[float] = []
    failed = 0
    issued = 0
    task = progress.add_task("work orders", total=n) if progress else None
    clients = [AsyncClient(uri, trust=trust, suite=suite) for uri in uris]
    try:
        worker = await clients[0].worker(worker_id)
        choose_suite(worker, suite)  # a suite the worker does not offer: say so once, not once per order

        async def requester(i: int) -> None:
            nonlocal issued, failed
            client = clients[i % len(clients)]
            while issued < n:
                issued += 1
                t0 = time.perf_counter()
                try:
                    order, result = await client.submit(worker, workload, [data], wait_ms=60_000)
                    await client.result(order, worker, result=result)
                    latencies.append(time.perf_counter() - t0)
                except (EeaError, OSError, ValueError):
                    failed += 1
                if progress is not None and task is not None:
                    progress.advance(task)

        started = time.perf_counter()
        await asyncio.gather(*(requester(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        for client in clients:
            await client.close()
    return latencies, failed, elapsed


def measure_node(
    args: argparse.Namespace,
    uris: list[str],
    trust: Trust,
    enclaves: int | None,
    data: bytes,
    bound_us: float,
    receipts: bool | None = None,
    nodes: int | None = None,
    suite: str = "rsa",
) -> Report:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    attestation = evidence_kind(uris[0], trust, args.worker_id)
    cpu_before, requesters_before = [node_cpu(uri) for uri in uris], own_cpu()
    if args.json:
        latencies, failed, elapsed = asyncio.run(
            drive(uris, trust, args.workload, data, args.n, args.c, None, args.worker_id, suite)
        )
    else:
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            latencies, failed, elapsed = asyncio.run(
                drive(uris, trust, args.workload, data, args.n, args.c, progress, args.worker_id, suite)
            )
    requesters_cpu = own_cpu() - requesters_before
    spent = cpu_spent(cpu_before, [node_cpu(uri) for uri in uris])
    latencies.sort()
    ok = len(latencies)
    cores = os.cpu_count() or 1
    bound = cores * 1e6 / bound_us
    rate = ok / elapsed if elapsed else 0.0
    report = Report(
        uris[0],
        enclaves,
        nodes,
        receipts,
        args.workload,
        ok,
        args.c,
        failed,
        round(elapsed, 3),
        round(rate, 1),
        round(percentile(latencies, 50) * 1e3, 2),
        round(percentile(latencies, 95) * 1e3, 2),
        round(percentile(latencies, 99) * 1e3, 2),
        round(bound_us, 1),
        cores,
        round(bound, 1),
        round(rate / bound, 3),
        cpu_us_node=per_order(spent[0], ok),
        cpu_us_enclaves=per_order(spent[1], ok),
        cpu_us_requesters=per_order(requesters_cpu, ok),
        attestation=attestation,
        suite=suite,
    )
    if not args.json:
        kind = f"{attestation} " if attestation else ""
        pool = f" ({enclaves} {kind}work-order enclave{'s' if enclaves != 1 else ''})" if enclaves else ""
        pool = pool or (f" ({attestation} worker)" if attestation else "")
        if nodes:
            pool = f" ({nodes} node{'s' if nodes != 1 else ''} on one PostgreSQL database, {enclaves} enclave(s) each)"
        pool += {None: "", True: ", receipts on", False: ", receipts OFF (measurement only)"}[receipts]
        console.print(
            f"[bold]{ok}[/] verified {args.workload} work orders ({suite} suite) in {elapsed:.2f} s with {args.c} "
            f"requesters{pool} ({failed} failed)"
        )
        console.print(f"  throughput  [bold]{rate:,.0f}[/] work orders/s")
        if latencies:
            console.print(
                f"  latency     p50 {report.p50_ms} ms   p95 {report.p95_ms} ms   p99 {report.p99_ms} ms"
                f"   (mean {statistics.fmean(latencies) * 1e3:.2f} ms)"
            )
        console.print(
            f"  crypto bound {bound_us:.0f} µs per {suite} order in the enclave × {cores} cores = "
            f"{bound:,.0f}/s → ratio [bold]{rate / bound:.2f}[/]"
        )
        if report.cpu_us_node is not None and report.cpu_us_enclaves is not None and report.cpu_us_requesters:
            total = report.cpu_us_node + report.cpu_us_enclaves + report.cpu_us_requesters
            console.print(
                f"  CPU per order node {report.cpu_us_node:.0f} µs + enclaves {report.cpu_us_enclaves:.0f} µs + "
                f"requesters {report.cpu_us_requesters:.0f} µs = {total:,.0f} µs → at most "
                f"{cores * 1e6 / total:,.0f}/s on {cores} cores if nothing else ran"
            )
    return report


def evidence_kind(uri: str, trust: Trust, worker_id: str | None = None) -> str:
    """The kind of the worker's attestation ("simulated", ...), as the requesters will verify it."""
    from ..client import Client

    with Client(uri, trust=trust) as client:
        verdict = client.worker(worker_id).verdict
    return verdict.kind if verdict else ""


def per_order(seconds: float | None, orders: int) -> float | None:
    return round(seconds / orders * 1e6, 1) if orders and seconds is not None else None


def measure_stage(args: argparse.Namespace, enclaves: int, data: bytes, suite: str = "rsa") -> float:
    """The enclave stage alone with `enclaves` enclaves (`adytum.cli.stage`), on min(N, 3000) orders in `suite`."""
    from .stage import stage_throughput

    if not args.json:
        console.print(f"measuring the enclave stage alone with {enclaves} enclave(s) ({suite} suite)…")
    return asyncio.run(stage_throughput(enclaves, min(args.n, 3000), args.workload, data, suite))


def own_cpu() -> float:
    """CPU seconds of this process (the requesters): user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def node_cpu(uri: str) -> dict[str, float]:
    """The node's CPU seconds by process ({} if it does not say)."""
    return process_metric(uri, "adytum_cpu_seconds_total")


def process_metric(uri: str, metric: str) -> dict[str, float]:
    """A per-process metric of the node's /metrics (`adytum_cpu_seconds_total`, `adytum_memory_rss_bytes`), by
    process: node, enclave-0, ..., kme ({} if the node does not report it)."""
    try:
        with urllib.request.urlopen(urllib.parse.urljoin(uri, "/metrics"), timeout=10) as resp:
            text = resp.read().decode()
    except (OSError, ValueError):
        return {}
    found = {}
    prefix = metric + '{process="'
    for line in text.splitlines():
        if line.startswith(prefix):
            name, _, value = line.removeprefix(prefix).partition('"} ')
            found[name] = float(value)
    return found


def cpu_spent(before: list[dict[str, float]], after: list[dict[str, float]]) -> tuple[float | None, float | None]:
    """CPU seconds the nodes' processes and their work-order enclaves spent between two readings (a process
    that restarted meanwhile counts from its start); None where a node did not report it."""
    if not all(after):
        return None, None
    node = enclaves = 0.0
    for was, now in zip(before, after, strict=True):
        for name, seconds in now.items():
            spent = seconds - was.get(name, 0.0) if seconds >= was.get(name, 0.0) else seconds
            if name == "node":
                node += spent
            elif name != "kme":
                enclaves += spent
    return node, enclaves


def run(args: argparse.Namespace) -> int:
    from ..client import SUITES, Trust, UntrustedWorker
    from ..crypto import KeySuite, hpke_suites
    from ..protocol import EeaError
    from .local_node import free_port, local_node

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    data = args.in_data.encode()
    suites = [name.strip() for name in args.suite.split(",")]
    if not all(name in SUITE_NAMES for name in suites) or len(set(suites)) != len(suites):
        return fail(
            f"--suite takes names among {', '.join(SUITE_NAMES)}, each once (got {args.suite!r})", as_json=args.json
        )
    unserved = [name for name in suites if SUITES[name] not in (KeySuite.RSA_OAEP_3072, *hpke_suites())]
    if unserved:
        return fail(f"this machine's OpenSSL cannot serve --suite {', '.join(unserved)} (no ML-KEM)", as_json=args.json)
    counts, node_counts = _counts(args.enclaves), _counts(args.nodes)
    for option, given, parsed in (("--enclaves", args.enclaves, counts), ("--nodes", args.nodes, node_counts)):
        if parsed is None:
            return fail(f"{option} takes counts like 1,2 (got {given!r})", as_json=args.json)
    assert counts is not None and node_counts is not None
    if args.receipts_cost and not counts:
        return fail("--receipts-cost starts its own nodes: give --enclaves too (e.g. --enclaves 2)", as_json=args.json)
    if args.worker_id and (counts or node_counts):
        return fail(
            "--worker-id goes with --uri: the nodes --enclaves and --nodes start host workers of their own",
            as_json=args.json,
        )
    if node_counts and not args.store:
        return fail("--nodes runs the nodes on one PostgreSQL database: give --store URL too", as_json=args.json)
    if not args.json:
        console.print(f"measuring the enclave's crypto bound ({args.bound_samples} orders in-process per suite)…")
    bounds = {suite: crypto_bound(args.bound_samples, args.workload, data, suite) for suite in suites}
    reports: list[Report] = []
    try:
        if node_counts:
            per_node = counts[0] if counts else 1
            for k in node_counts:
                if not args.json:
                    console.print(
                        f"[bold]starting {k} local node(s) on one PostgreSQL database, {per_node} enclave(s) each[/]"
                    )
                with local_cluster(args.store, k, per_node) as (uris, trust):
                    for suite in suites:
                        reports.append(
                            measure_node(args, uris, trust, per_node, data, bounds[suite], nodes=k, suite=suite)
                        )
            counts = []
        elif not counts:
            trust = trust_from_args(args)
            for suite in suites:
                reports.append(measure_node(args, [args.uri], trust, None, data, bounds[suite], suite=suite))
        for n in counts:
            # on, off, off, on: a drift of the machine's speed during the runs falls on both sides alike
            for receipts in (True, False, False, True) if args.receipts_cost else (True,):
                if not args.json:
                    off = "" if receipts else ", receipts off"
                    console.print(f"[bold]starting a local node with {n} work-order enclave(s){off}[/]")
                node_dir = Path(tempfile.mkdtemp(prefix=f"adytum-bench-{n}-"))
                options = ("--enclaves", str(n)) if receipts else ("--enclaves", str(n), "--no-receipts")
                with local_node(node_dir, free_port(), *options, timeout=120) as uri:
                    trust = Trust.from_files([DataDir(node_dir).platform_root])
                    for suite in suites:
                        reports.append(measure_node(args, [uri], trust, n, data, bounds[suite], receipts, suite=suite))
        stages = (
            {n: measure_stage(args, n, data, suites[0]) for n in counts}
            if len(counts) > 1 and not args.receipts_cost
            else {}
        )
    except (OSError, ValueError, RuntimeError, EeaError, UntrustedWorker) as exc:
        return fail(f"cannot drive the node: {exc}", as_json=args.json)
    by_suite = _suite_ratios(reports, suites)
    reports_first = [r for r in reports if r.suite == suites[0]]  # scaling and receipt costs: one suite's runs
    with_receipts = [r for r in reports_first if r.receipts is not False]
    scaling = (
        round(with_receipts[-1].per_second / with_receipts[0].per_second, 2)
        if len(with_receipts) > 1 and with_receipts[0].per_second
        else None
    )
    costs = _receipt_costs(reports_first) if args.receipts_cost else {}
    if args.json:
        summary: dict[str, object] = {"runs": [asdict(r) for r in reports], "scaling": scaling}
        if len(stages) > 1:
            summary["enclave_stage"] = {str(n): round(rate, 1) for n, rate in stages.items()}
            summary["enclave_stage_scaling"] = round(stages[counts[-1]] / stages[counts[0]], 2)
        if costs:
            summary["receipts_ratio"] = costs
        if by_suite:
            summary["suite_ratio"] = by_suite
        emit_json(asdict(reports[0]) if not counts and not node_counts and len(suites) == 1 else summary)
    for suite, ratio in by_suite.items():
        if not args.json:
            console.print(
                f"[bold]suites[/]: {suite} serves {ratio:.2f}× the work orders/s of {suites[0]} on the same node"
            )
    for size, ratio in costs.items():
        if not args.json:
            console.print(
                f"[bold]receipts[/] with {size} enclave(s): throughput with receipts is {ratio:.2f}× the same "
                "node's without them"
            )
    if scaling is not None and node_counts and not args.json:
        console.print(
            f"[bold]scaling[/]: {node_counts[-1]} nodes on one database serve {scaling:.2f}× the work orders/s of "
            f"{node_counts[0]} on {os.cpu_count()} cores (nodes, enclaves, PostgreSQL and requesters share them)"
        )
    elif scaling is not None and not args.json:
        console.print(
            f"[bold]scaling[/]: {counts[-1]} enclaves serve {scaling:.2f}× the work orders/s of "
            f"{counts[0]} on {os.cpu_count()} cores (the listener, store and requesters share them)"
        )
        if len(stages) > 1:
            console.print(
                f"[bold]enclave stage[/] alone: {counts[-1]} enclaves process {stages[counts[-1]] / stages[counts[0]]:.2f}× "
                f"the orders/s of {counts[0]} ("
                + ", ".join(f"{n}: {rate:,.0f}/s" for n, rate in stages.items())
                + "; orders built beforehand, fed through the enclaves' channel, no HTTP or store)"
            )
    return 0 if all(r.failed == 0 for r in reports) else 1


def _counts(text: str | None) -> list[int] | None:
    """ "1,2" -> [1, 2]; [] when the option was not given; None when it is not a list of counts of 1 or more."""
    if not text:
        return []
    try:
        counts = [int(n) for n in text.split(",")]
    except ValueError:
        return None
    return counts if all(n >= 1 for n in counts) else None


@contextmanager
def local_cluster(server: str, nodes: int, enclaves: int) -> Iterator[tuple[list[str], Trust]]:
    """`nodes` fresh local nodes of one worker on a new database of the PostgreSQL server at `server`: the first
    runs the key manager for the others (--kme-listen / --join), each trusts the others' development roots.
    Yields their URIs and a Trust of all their roots; stops them and drops the database."""
    import uuid
    from contextlib import ExitStack

    import psycopg
    from psycopg.conninfo import make_conninfo

    from ..client import Trust
    from ..issuer.devroot import init_dev_root
    from .local_node import free_port, local_node
    from .pool import trust_root

    name = f"adytum_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    store = make_conninfo(server, dbname=name)
    base = Path(tempfile.mkdtemp(prefix="adytum-bench-nodes-"))
    dirs = [DataDir(base / f"node-{i}") for i in range(nodes)]
    try:
        for d in dirs:
            init_dev_root(d.platform)
        for d in dirs:
            for other in dirs:
                if other is not d:
                    trust_root(d.path, other.platform_root)
        kme = f"127.0.0.1:{free_port()}"
        with ExitStack() as stack:
            uris = []
            for i, d in enumerate(dirs):
                role = ("--kme-listen", kme) if i == 0 else ("--join", kme)
                options = ("--store", store, "--enclaves", str(enclaves), *role)
                uris.append(stack.enter_context(local_node(d.path, free_port(), *options, timeout=120)))
            yield uris, Trust.from_files([d.platform_root for d in dirs])
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _suite_ratios(reports: list[Report], suites: list[str]) -> dict[str, float]:
    """Suite -> its throughput / the first suite's on the same node (the mean over the nodes measured): each
    node's reports are one per suite, in `suites` order."""
    runs = [reports[i : i + len(suites)] for i in range(0, len(reports), len(suites))]
    ratios = {}
    for k, suite in enumerate(suites[1:], start=1):
        each = [run[k].per_second / run[0].per_second for run in runs if len(run) == len(suites) and run[0].per_second]
        if each:
            ratios[suite] = round(statistics.fmean(each), 3)
    return ratios


def _receipt_costs(reports: list[Report]) -> dict[str, float]:
    """Pool size -> throughput with receipts / without (the mean of each side), from --receipts-cost's runs."""
    costs = {}
    for size in {r.enclaves for r in reports}:
        on = [r.per_second for r in reports if r.enclaves == size and r.receipts]
        off = [r.per_second for r in reports if r.enclaves == size and r.receipts is False]
        if on and off and sum(off):
            costs[str(size)] = round(statistics.fmean(on) / statistics.fmean(off), 3)
    return costs
