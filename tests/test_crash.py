"""SIGKILL the node while it serves a stream of orders; after a restart every acknowledged order has
exactly one verified result, and every order the store accepted is answered."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time

from adytum.client import Client, Trust, build, open_result
from adytum.protocol import EeaError, Status, to_builtins


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_node(data_dir, port, log, *options: str):
    """`adytum up` as its own process (one enclave unless `options` say otherwise), its output to `log` (a file,
    or subprocess.PIPE to read it)."""
    command = [sys.executable, "-m", "adytum", "up", "--port", str(port), "--data-dir", str(data_dir)]
    command += ["--enclaves", "1", "--log-format", "text", *options]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def stop_node(node: subprocess.Popen) -> None:
    node.send_signal(signal.SIGTERM)
    try:
        node.wait(20)
    except subprocess.TimeoutExpired:
        node.kill()


def submit_until_killed(client, worker, n, fib_of, node, kill_at, before=None):
    """Submit `n` fib orders one by one and SIGKILL `node` after order `kill_at` (calling `before(client)` after
    order `kill_at // 2`). Returns (acknowledged, uncertain): uncertain is the order the kill cut off, if any,
    which the node may or may not have accepted."""
    acknowledged, uncertain = [], []
    for i in range(n):
        order = build(worker, "fib", [fib_of])
        try:
            client.call("WorkOrderSubmit", to_builtins(order.params))
        except EeaError as exc:
            assert exc.code == Status.PENDING, exc
            acknowledged.append(order)
        except OSError:
            uncertain.append(order)
            break
        if before is not None and i == kill_at // 2:
            before(client)
        if i == kill_at:
            os.kill(node.pid, signal.SIGKILL)  # mid-stream, with orders queued and in flight
    return acknowledged, uncertain


def wait_ready(uri: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "node exited during start"
        try:
            with Client(uri) as c:
                if c.call("WorkerLookUp", {})["ids"]:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("node did not come up")


def fib_by_iteration(n: int) -> bytes:
    """An oracle independent of the workload's fast doubling."""
    sys.set_int_max_str_digits(0)
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return str(a).encode()


def wait_for_result(client: Client, order, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.call("WorkOrderGetResult", {"workOrderId": order.work_order_id})
        except EeaError as exc:
            assert exc.code == Status.PENDING and time.monotonic() < deadline, exc
            time.sleep(0.05)


def test_sigkill_loses_nothing_and_answers_once(tmp_path):
    expected = fib_by_iteration(30000)
    port = free_port()
    uri = f"http://127.0.0.1:{port}/"
    log = open(tmp_path / "node.log", "ab")
    node = start_node(tmp_path, port, log)
    try:
        wait_ready(uri, node)
        trust = Trust.from_files([tmp_path / "devroot" / "root.pem"])
        with Client(uri, trust=trust) as client:
            worker = client.worker()
            acknowledged, uncertain = submit_until_killed(client, worker, 400, b"30000", node, kill_at=150)
        node.wait(10)
        assert len(acknowledged) >= 100

        db = sqlite3.connect(tmp_path / "adytum.sqlite3")
        answered_before = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        unanswered_before = db.execute("SELECT COUNT(*) FROM schedule").fetchone()[0]
        assert unanswered_before > 0, "the kill came too late to test recovery"

        node = start_node(tmp_path, port, log)
        wait_ready(uri, node)
        with Client(uri, trust=trust) as client:
            assert client.worker().verifying_key == worker.verifying_key  # same keys after restart
            for order in acknowledged:
                assert open_result(order, worker, wait_for_result(client, order)) == [expected]

        accepted = db.execute("SELECT COUNT(*) FROM work_orders").fetchone()[0]
        answered = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        failures = db.execute("SELECT COUNT(*) FROM responses WHERE code != 0").fetchone()[0]
        assert db.execute("SELECT COUNT(*) FROM schedule").fetchone()[0] == 0
        assert accepted == answered and failures == 0
        assert accepted in (len(acknowledged), len(acknowledged) + len(uncertain))
        assert answered > answered_before
        dupes = db.execute(
            "SELECT work_order_id, COUNT(*) FROM responses GROUP BY work_order_id HAVING COUNT(*) > 1"
        ).fetchall()
        assert dupes == []
    finally:
        stop_node(node)
        log.close()


def test_enclave_killed_under_load_loses_nothing(tmp_path):
    from support import running_node

    expected = fib_by_iteration(20000)
    with running_node(tmp_path) as n, Client(n.url, trust=n.trust) as client:
        worker = client.worker()
        orders = [build(worker, "fib", [b"20000"]) for _ in range(60)]
        for i, order in enumerate(orders):
            try:
                client.call("WorkOrderSubmit", to_builtins(order.params))
            except EeaError as exc:
                assert exc.code == Status.PENDING
            if i == 20:
                os.kill(n.node.manager.enclaves[0].pid, signal.SIGKILL)
        for order in orders:
            assert open_result(order, worker, wait_for_result(client, order)) == [expected]
        assert n.node.manager.enclaves[0].restarts >= 1
