"""The SDK across node restarts (issue 19, item 6): requesters keep calling `AsyncClient.run` with wallet
deposits while the node process is killed (SIGKILL) and stopped (SIGTERM) and started again. Every `run()`
returns a verified result, no deposit is lost and none runs twice: each balance equals its requester's
deposit count, and each work order has one response. Counts only, never timings."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import subprocess

from adytum import crypto
from adytum.client import AsyncClient, Trust
from test_crash import free_port, start_node, wait_ready

REQUESTERS = 4
DEPOSITS = 25  # per requester, one unit each


async def _requester(client: AsyncClient, account: str, done: list[int]) -> list[bytes]:
    answers = []
    for _ in range(DEPOSITS):
        [answer] = await client.run("simple-wallet", [f"deposit {account} 1".encode()], timeout=180)
        answers.append(answer)
        done[0] += 1
    return answers


def _stop(node: subprocess.Popen, how: signal.Signals) -> None:
    os.kill(node.pid, how)
    try:
        node.wait(30)
    except subprocess.TimeoutExpired:
        node.kill()
        node.wait()


def test_run_survives_node_restarts_without_losing_or_repeating_an_order(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="adytum.client")
    port = free_port()
    uri = f"http://127.0.0.1:{port}/"
    log = open(tmp_path / "node.log", "ab")
    nodes = [start_node(tmp_path, port, log)]
    try:
        wait_ready(uri, nodes[-1])
        trust = Trust.from_files([tmp_path / "devroot" / "root.pem"])
        signer = crypto.SigningKey()  # one requester key: all deposits land in one requester's sealed state

        async def main() -> tuple[list[list[bytes]], list[str]]:
            done = [0]
            clients = [AsyncClient(uri, trust=trust, signer=signer) for _ in range(REQUESTERS)]
            for c in clients:
                await c.worker()  # verified once, before the restarts
            accounts = [f"acct-{i}" for i in range(REQUESTERS)]
            runs = [asyncio.create_task(_requester(c, a, done)) for c, a in zip(clients, accounts, strict=True)]
            total = REQUESTERS * DEPOSITS
            for how, at in ((signal.SIGKILL, total // 4), (signal.SIGTERM, total // 2)):
                while done[0] < at:
                    await asyncio.sleep(0.01)
                assert not any(r.done() for r in runs), "a requester finished before the restart"
                await asyncio.to_thread(_stop, nodes[-1], how)  # mid-stream: orders held, queued, in flight
                nodes.append(start_node(tmp_path, port, log))
            answers = await asyncio.gather(*runs)
            balances = [(await clients[0].run("simple-wallet", [f"balance {a}".encode()]))[0] for a in accounts]
            for c in clients:
                await c.close()
            return answers, [b.decode() for b in balances]

        answers, balances = asyncio.run(main())

        assert [len(a) for a in answers] == [DEPOSITS] * REQUESTERS  # every run() returned a verified result
        for i, acct_answers in enumerate(answers):
            # each deposit saw the balance one higher than the one before: none lost, none applied twice
            assert acct_answers == [f"WALLET RESULT: acct-{i}::{n}".encode() for n in range(1, DEPOSITS + 1)]
        assert balances == [f"WALLET RESULT: acct-{i}::{DEPOSITS}" for i in range(REQUESTERS)]

        retried = {r.getMessage().split(":")[0] for r in caplog.records if r.name == "adytum.client"}
        assert retried, "no run() met the restarts: the test did not test recovery"

        db = sqlite3.connect(tmp_path / "adytum.sqlite3")
        accepted = db.execute("SELECT COUNT(*) FROM work_orders").fetchone()[0]
        answered = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        failures = db.execute("SELECT COUNT(*) FROM responses WHERE code != 0").fetchone()[0]
        dupes = db.execute("SELECT work_order_id FROM responses GROUP BY work_order_id HAVING COUNT(*) > 1").fetchall()
        total_orders = REQUESTERS * DEPOSITS + REQUESTERS  # the deposits and the balance checks
        assert (accepted, answered, failures, dupes) == (total_orders, total_orders, 0, [])
    finally:
        for node in nodes:
            if node.poll() is None:
                _stop(node, signal.SIGTERM)
        log.close()
