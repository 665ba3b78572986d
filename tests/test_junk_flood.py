"""A flood of schema-valid junk (valid shape, nonsense crypto, ~1 MB each) at a real node whose enclave is
stopped: the pending orders wait as ids, so the node's memory grows by far less than the bytes sent; once the
enclave runs again every junk order gets an error answer, and its body is forgotten after the retention."""

from __future__ import annotations

import base64
import os
import signal
import sqlite3
import time
from pathlib import Path

from adytum.client import Client, Trust, build
from adytum.protocol import EeaError, Status, to_builtins
from test_crash import free_port, start_node, stop_node, wait_ready

ORDERS = 300
DATA_BYTES = 750_000  # ~1 MB of base64 per order


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def work_order_enclave(node_pid: int) -> int:
    """The pid of the node's one work-order enclave process (`--role wpe`)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == node_pid and b"adytum.enclave" in cmdline and b"wpe" in cmdline:
            return int(entry.name)
    raise AssertionError("the node has no work-order enclave process")


def junk(template: dict) -> dict:
    """A fresh order of the template's shape: new id and nonce, a random session key and random item data."""
    params = {**template}
    params["workOrderId"] = os.urandom(32).hex()
    params["requesterNonce"] = os.urandom(16).hex()
    params["encryptedSessionKey"] = os.urandom(len(template["encryptedSessionKey"]) // 2).hex()
    params["inData"] = [{**template["inData"][0], "data": base64.b64encode(os.urandom(DATA_BYTES)).decode()}]
    return params


def answer_code(client: Client, work_order_id: str, timeout: float = 180) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.call("WorkOrderGetResult", {"workOrderId": work_order_id})
            return 0
        except EeaError as exc:
            if exc.code != Status.PENDING:
                return exc.code
            assert time.monotonic() < deadline, f"{work_order_id} still pending"
            time.sleep(0.05)


def test_a_junk_flood_keeps_memory_bounded_and_is_answered_and_forgotten(tmp_path):
    port = free_port()
    uri = f"http://127.0.0.1:{port}/"
    log = open(tmp_path / "node.log", "ab")
    node = start_node(tmp_path, port, log, "--max-pending", str(10 * ORDERS), "--failed-retention", "0")
    enclave = None
    try:
        wait_ready(uri, node)
        trust = Trust.from_files([tmp_path / "devroot" / "root.pem"])
        with Client(uri, trust=trust) as client:
            template = to_builtins(build(client.worker(), "hello", [b"x"]).params)
            enclave = work_order_enclave(node.pid)
            before = rss_bytes(node.pid)
            os.kill(enclave, signal.SIGSTOP)
            sent, ids = 0, []
            for _ in range(ORDERS):
                params = junk(template)
                sent += len(params["inData"][0]["data"])
                try:
                    client.call("WorkOrderSubmit", params)
                except EeaError as exc:
                    assert exc.code == Status.PENDING, exc  # accepted: its shape is valid
                ids.append(params["workOrderId"])
            grown = rss_bytes(node.pid) - before
            db = sqlite3.connect(tmp_path / "adytum.sqlite3")
            waiting = db.execute("SELECT COUNT(*) FROM schedule").fetchone()[0]
            assert waiting >= ORDERS - 10, "the orders should be pending while the enclave is stopped"
            assert sent > 200 * 1024 * 1024
            assert grown < sent / 4, f"RSS grew by {grown} bytes for {sent} bytes of pending junk"

            os.kill(enclave, signal.SIGCONT)
            codes = [answer_code(client, wo) for wo in ids]
            assert len(codes) == ORDERS and all(code not in (0, Status.PENDING) for code in codes), set(codes)

        deadline = time.monotonic() + 60  # retention 0: the next retention run forgets every junk body
        while db.execute("SELECT COUNT(*) FROM work_orders WHERE length(params) > 0").fetchone()[0]:
            assert time.monotonic() < deadline, "failed orders kept their bodies past the retention"
            time.sleep(0.2)
        assert db.execute("SELECT COUNT(*) FROM work_orders").fetchone()[0] == ORDERS  # the rows stay
        db.close()
    finally:
        if enclave is not None:
            try:
                os.kill(enclave, signal.SIGCONT)
            except ProcessLookupError:
                pass
        stop_node(node)
        log.close()
