"""An enclave that cannot start (issue 19, item 2): one of two enclaves is killed and its interpreter pointed
at a missing file, so every respawn fails with the OSError a spawn meets (as EMFILE or a removed Python
would). Orders keep flowing to the other enclave and all complete; the failing one shows down in PoolStatus
and /metrics, each failed start is one ERROR line with its cause; once the cause is fixed it comes back.

Why `executable`, not EMFILE itself: exhausting descriptors would starve the test process and the other
enclave too; a missing interpreter fails the same `create_subprocess_exec` call with an OSError, and only
for the enclave under test."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
import urllib.request

import pytest

from adytum.client import Client, build, open_result
from adytum.crypto import sha256
from adytum.manager import enclave as enclave_module
from adytum.manager.enclave import EnclaveProcess
from adytum.manager.errors import SpawnFailed
from adytum.protocol import EeaError, Status, to_builtins
from support import LocalPool, running_node
from test_crash import fib_by_iteration, wait_for_result


def _until(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting until {what}"
        time.sleep(0.05)


def _enclave_up(url: str, name: str) -> float:
    text = urllib.request.urlopen(url + "metrics").read().decode()
    [line] = [x for x in text.splitlines() if x.startswith(f'adytum_enclave_up{{enclave="{name}"}}')]
    return float(line.split()[-1])


def _submit_all(client: Client, orders) -> None:
    for order in orders:
        try:
            client.call("WorkOrderSubmit", to_builtins(order.params))
        except EeaError as exc:
            assert exc.code == Status.PENDING, exc


def test_an_enclave_that_cannot_start_is_retried_shown_down_and_its_orders_go_elsewhere(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="adytum.manager")
    with running_node(tmp_path, enclaves=2) as n, Client(n.url, trust=n.trust) as client:
        worker = client.worker()
        healthy, broken = n.node.manager.enclaves
        assert isinstance(broken, EnclaveProcess)
        broken.executable = str(tmp_path / "no-such-python")
        orders = [build(worker, "fib", [b"20000"]) for _ in range(60)]
        _submit_all(client, orders[:20])
        os.kill(broken.pid, signal.SIGKILL)  # with orders queued and in flight on it
        _submit_all(client, orders[20:])

        expected = [fib_by_iteration(20000)]
        for order in orders:
            assert open_result(order, worker, wait_for_result(client, order)) == expected

        # The orders may all be answered by the healthy enclave before the broken one's first retry has failed.
        def failed_starts() -> list[logging.LogRecord]:
            return [r for r in caplog.records if r.levelno == logging.ERROR and broken.name in r.getMessage()]

        _until(lambda: bool(failed_starts()), "a failed restart of the broken enclave is logged")
        assert all("no-such-python" in r.getMessage() for r in failed_starts())
        assert all(r.exc_info is None for r in caplog.records if r.levelno >= logging.ERROR)  # no tracebacks
        assert not broken.alive and broken.restarts >= 1
        states = {e["name"]: e["state"] for e in client.call("PoolStatus", {})["enclaves"]}
        assert states == {healthy.name: "running", broken.name: "down"}
        assert (_enclave_up(n.url, healthy.name), _enclave_up(n.url, broken.name)) == (1, 0)
        assert n.node.reader.counts()["scheduled"] + n.node.reader.counts()["processing"] == 0  # none left behind

        broken.executable = sys.executable  # the cause is fixed: the next retry brings it back
        _until(lambda: broken.serving, "the enclave is back")
        states = {e["name"]: e["state"] for e in client.call("PoolStatus", {})["enclaves"]}
        assert states == {healthy.name: "running", broken.name: "running"}
        assert _enclave_up(n.url, broken.name) == 1
        assert client.run("hello", [b"back"]) == [b"Hello back"]


def test_orders_wait_while_no_enclave_can_start_and_run_when_one_does(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="adytum.manager")
    with running_node(tmp_path, max_attempts=1) as n, Client(n.url, trust=n.trust) as client:
        worker = client.worker()
        [enclave] = n.node.manager.enclaves
        enclave.executable = str(tmp_path / "no-such-python")
        os.kill(enclave.pid, signal.SIGKILL)
        _until(lambda: not enclave.alive, "the enclave is down")
        orders = [build(worker, "hello", [str(i).encode()]) for i in range(10)]
        _submit_all(client, orders)
        _until(
            lambda: sum(r.levelno == logging.ERROR for r in caplog.records) >= 3,
            "three starts have failed",
        )
        for order in orders:  # still waiting, not failed (max_attempts=1 would have failed an attempt)
            with_answer = None
            try:
                with_answer = client.call("WorkOrderGetResult", {"workOrderId": order.work_order_id})
            except EeaError as exc:
                assert exc.code == Status.PENDING, exc
            assert with_answer is None
        enclave.executable = sys.executable
        for i, order in enumerate(orders):
            assert open_result(order, worker, wait_for_result(client, order)) == [f"Hello {i}".encode()]


def test_restart_backoff_grows_while_failing_and_resets_after_the_enclave_served_a_while(tmp_path, monkeypatch):
    async def kill_and_restart(e: EnclaveProcess) -> None:
        os.kill(e.pid, signal.SIGKILL)
        await e.wait_exit()
        await e.ensure_running()

    async def main() -> list[int]:
        pool = LocalPool(tmp_path, sha256(b"spawn-failure-test").hex())
        await pool.kme.start()
        e = pool.wpe()
        await e.start()
        streaks = []
        await kill_and_restart(e)
        streaks.append(e.restart.streak)  # 1
        e.executable = str(tmp_path / "no-such-python")
        os.kill(e.pid, signal.SIGKILL)
        await e.wait_exit()
        for _ in range(2):
            with pytest.raises(SpawnFailed, match="could not be spawned"):
                await e.ensure_running()
        streaks.append(e.restart.streak)  # 3: each failed start doubles the next pause
        e.executable = sys.executable
        await e.ensure_running()
        streaks.append(e.restart.streak)  # 4, and e.restart.last_error is cleared
        assert e.serving and e.restart.last_error == ""
        monkeypatch.setattr(enclave_module, "STABLE_AFTER", 0.0)  # as if it had served long enough
        await kill_and_restart(e)
        streaks.append(e.restart.streak)  # 1 again: a new streak
        await e.stop()
        await pool.kme.stop()
        return streaks

    assert asyncio.run(main()) == [1, 3, 4, 1]
