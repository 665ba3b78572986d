"""Store-only benchmark: how many work orders per second the store itself sustains, with no enclave, listener or
network client in the way, so that it can be compared with what a node serves.

Each order goes through the node's own three transitions, through `GroupCommit` as in a node: accepted (with
the node's receipt and its ledger leaf), claimed, answered (with the worker's receipt update and its leaf).
`--writers W` runs W of these pipelines at once, each with its own connection, as W nodes on one database
would. With `--soak N`, N orders run through one pipeline while answered orders are pruned as they go
(retention 0 s, receipts off unless `--receipts`; the store reclaimed every 5,000 orders, as a node's retention
does once a minute), and the database size is printed as it goes: bounded means the size stops growing.

    .venv/bin/python bench/bench_store.py --store sqlite            # a SQLite file in a temporary directory
    .venv/bin/python bench/bench_store.py --store postgresql://postgres@127.0.0.1:5432/test --writers 1,2
    .venv/bin/python bench/bench_store.py --store postgresql://postgres@127.0.0.1:5432/test --soak 100000

A PostgreSQL URL names the server: the benchmark makes a database of its own there and drops it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from adytum.store import GroupCommit, NewOrder, NewReceipt, NewReceiptUpdate, Store, is_server_store, open_store

WORKER = "ab" * 32
PARAMS = b'{"jsonrpc":"2.0","method":"WorkOrderSubmit","params":{}}' + b" " * 1900  # a hello order's size


@contextmanager
def scratch_store(target: str):
    """A fresh, migrated store: a SQLite file, or a new database on the PostgreSQL server at `target`."""
    if not is_server_store(target):
        with tempfile.TemporaryDirectory() as d:
            yield str(Path(d) / "bench.sqlite3")
        return
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = f"adytum_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(target, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield make_conninfo(**{**conninfo_to_dict(target), "dbname": name})
    finally:
        with psycopg.connect(target, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def receipt_json(wo: str, worker: str = WORKER) -> str:
    return json.dumps(
        {
            "workOrderId": wo,
            "workerServiceId": worker,
            "workerId": worker,
            "requesterId": "cd" * 32,
            "receiptCreateStatus": 0,
            "workOrderRequestHash": "aGFzaA==",
            "requesterGeneratedNonce": "01",
            "requesterSignature": "",
            "signatureRules": "SHA-256/secp256k1",
            "receiptVerificationKey": "",
        }
    )


def update_json(wo: str, worker: str = WORKER) -> str:
    return json.dumps(
        {"workOrderId": wo, "updaterId": worker, "updateType": 1, "updateData": "ZGF0YQ==", "updateSignature": "c2ln"}
    )


async def pipeline(
    target: str, node: str, n: int, receipts: bool, concurrency: int, on_done=None, worker: str = WORKER
) -> float:
    """Run `n` orders as a node does: `concurrency` requesters accept orders one after another; a dispatcher
    claims what is scheduled (up to 64 at a time) and answers each. Seconds taken. (Each pipeline's orders are
    for a worker of its own, so that it answers exactly its own `n`; they share the tables, indexes and the
    ledger, whose numbering lock every answer with a receipt takes.)"""
    store = open_store(target, durable=True)
    committer = GroupCommit(store)
    committer.start()
    issued = answered = 0
    woken, finished = asyncio.Event(), asyncio.Event()
    answering: set[asyncio.Task] = set()

    async def requester() -> None:
        nonlocal issued
        while issued < n:
            issued += 1
            wo = uuid.uuid4().hex * 2
            receipt = (
                NewReceipt(wo, worker, worker, "cd" * 32, 0, "node", receipt_json(wo, worker)) if receipts else None
            )
            await committer.run(Store.insert_order, NewOrder(wo, worker, "cd" * 32, wo[:32], PARAMS, receipt))
            woken.set()

    async def answer(wo: str) -> None:
        nonlocal answered
        update = NewReceiptUpdate(wo, worker, 1, "worker", update_json(wo, worker)) if receipts else None
        await committer.run(Store.insert_response, wo, 0, b'{"result":"ok"}', (), update, node)
        answered += 1
        if on_done is not None:
            await on_done(committer)
        if answered == n:
            finished.set()

    async def dispatcher() -> None:
        while True:
            await woken.wait()
            woken.clear()
            while True:
                ids, _ = await committer.run(Store.claim, worker, node, 64)
                for wo in ids:
                    task = asyncio.create_task(answer(wo))
                    answering.add(task)
                    task.add_done_callback(answering.discard)
                if len(ids) < 64:
                    break

    started = time.perf_counter()
    claims = asyncio.create_task(dispatcher())
    await asyncio.gather(*(requester() for _ in range(concurrency)))
    await finished.wait()
    elapsed = time.perf_counter() - started
    claims.cancel()
    await committer.stop()
    store.close()
    return elapsed


def throughput(target: str, writers: int, n: int, receipts: bool, concurrency: int) -> dict[str, float]:
    """`writers` pipelines at once (threads, each its own event loop and connections), n orders in all."""
    times: list[float] = []

    def run(i: int) -> None:
        worker = f"{i:02x}" * 32
        times.append(asyncio.run(pipeline(target, f"bench-{i}", n // writers, receipts, concurrency, worker=worker)))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(writers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return {"writers": writers, "orders": n, "seconds": round(elapsed, 2), "per_second": round(n / elapsed, 1)}


def size_of(target: str) -> int:
    if not is_server_store(target):
        return sum(p.stat().st_size for p in Path(target).parent.glob(Path(target).name + "*"))
    import psycopg

    with psycopg.connect(target) as db:
        return int(db.execute("SELECT pg_database_size(current_database())").fetchone()[0])


def soak(target: str, n: int, receipts: bool, every: int) -> list[dict[str, float]]:
    """n orders, pruned as they are answered (retention 0), with the size every `every` orders."""
    samples: list[dict[str, float]] = []
    done = 0

    async def prune(committer: GroupCommit) -> None:
        nonlocal done
        done += 1
        mine = done  # others go on counting while this one awaits
        if mine % 500 == 0:
            await committer.run(Store.prune_answered, time.time(), 1000)
        if mine % 5000 == 0:  # as the node's retention does once a minute
            await asyncio.to_thread(committer.store.reclaim)
        if mine % every == 0:
            size = await asyncio.to_thread(size_of, target)
            samples.append({"orders": mine, "mb": round(size / 1e6, 2)})
            print(f"  {mine:>8} orders  {size / 1e6:8.2f} MB", flush=True)

    asyncio.run(pipeline(target, "soak", n, receipts, 16, on_done=prune))
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default="sqlite", help="'sqlite', or a PostgreSQL server's URL")
    parser.add_argument("-n", type=int, default=20_000, help="orders per measurement (default 20000)")
    parser.add_argument("--writers", default="1,2", help="pipelines at once, as nodes on one database (default 1,2)")
    parser.add_argument("-c", type=int, default=32, help="orders in flight per pipeline (default 32)")
    parser.add_argument("--no-receipts", action="store_true", help="orders without receipts or ledger leaves")
    parser.add_argument("--soak", type=int, default=0, metavar="N", help="instead: N orders, pruned as they go")
    parser.add_argument("--receipts", action="store_true", help="with --soak: keep receipts (the ledger grows)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    target = "" if args.store == "sqlite" else args.store
    with scratch_store(target) as store:
        s = open_store(store)
        s.migrate()
        s.close()
        kind = "PostgreSQL" if is_server_store(store) else "SQLite"
        if args.soak:
            print(f"== soak: {args.soak} orders on {kind}, answered orders pruned as they go", flush=True)
            samples = soak(store, args.soak, args.receipts, max(1, args.soak // 10))
            if args.json:
                print(json.dumps({"store": kind, "soak": samples}))
            return 0
        results = []
        for writers in (int(w) for w in args.writers.split(",")):
            r = throughput(store, writers, args.n, not args.no_receipts, args.c)
            results.append(r)
            print(
                f"{kind}: {r['orders']} orders (accept + claim + answer"
                f"{', receipts on' if not args.no_receipts else ''}) by {writers} writer(s) "
                f"in {r['seconds']} s: {r['per_second']:,.0f} orders/s",
                flush=True,
            )
        if args.json:
            print(json.dumps({"store": kind, "cores": os.cpu_count(), "runs": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
