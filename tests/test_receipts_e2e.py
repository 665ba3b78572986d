"""Receipts end to end on a real node: the SDK's verified receipt, `adytum receipt get` then `receipt verify`
with no node, a tampered file refused, heads that extend each other, and a node with receipts off."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from adytum import Client
from adytum.protocol import EeaError, decode_result, response_hash
from adytum.protocol.receipts import ReceiptStatus
from support import running_node


def adytum(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "adytum", *args], capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL
    )


def test_a_work_order_has_a_receipt_a_requester_verifies_offline(tmp_path: Path) -> None:
    with running_node(tmp_path / "node") as n, Client(n.url, trust=n.trust) as client:
        worker = client.worker()
        order, result = client.submit(worker, "hello", [b"receipts"], wait_ms=30_000)
        assert client.result(order, worker, result=result) == [b"Hello receipts"]
        receipt = client.receipt(order.work_order_id)  # waits for a head that covers the order's events
        head_before = client.ledger_head()
        assert receipt.work_order_id == order.work_order_id.lower() and receipt.worker_id == worker.worker_id
        assert receipt.status == ReceiptStatus.COMPLETED and receipt.verdict is not None
        (update,) = receipt.updates
        assert update.updaterId == worker.worker_id
        assert base64.b64decode(update.updateData) == response_hash(decode_result(bytes(result)))

        document = tmp_path / "receipt.json"
        got = adytum(
            "receipt", "get", order.work_order_id, "--uri", n.url, "-o", str(document), "--trust-root", str(n.root_pem)
        )
        assert got.returncode == 0, got.stderr
        out = adytum("receipt", "verify", str(document), "--trust-root", str(n.root_pem), "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["ok"] is True

        tampered = json.loads(document.read_text())
        tampered["treeHead"]["rootHash"] = "00" * 32
        bad = tmp_path / "tampered.json"
        bad.write_text(json.dumps(tampered))
        out = adytum("receipt", "verify", str(bad), "--trust-root", str(n.root_pem))
        assert out.returncode == 1 and out.stderr.strip()

        client.run("hello", [b"more"])
        old, new = tmp_path / "old.json", tmp_path / "new.json"
        old.write_bytes(msgspec.json.encode(head_before))
        head = adytum("ledger", "head", "--uri", n.url, "-o", str(new))
        assert head.returncode == 0, head.stderr
        assert json.loads(new.read_text())["treeSize"] >= head_before.treeSize
        extends = adytum("ledger", "verify", str(old), str(new), "--uri", n.url)
        assert extends.returncode == 0, extends.stderr + extends.stdout


def test_receipts_off_keeps_no_trail_and_says_so(tmp_path: Path) -> None:
    with running_node(tmp_path, receipts=False) as n, Client(n.url, trust=n.trust) as client:
        worker = client.worker()
        order, result = client.submit(worker, "hello", [b"x"], wait_ms=30_000)
        assert client.result(order, worker, result=result) == [b"Hello x"]
        with pytest.raises(EeaError) as off:
            client.call("WorkOrderReceiptRetrieve", {"workOrderId": order.work_order_id})
        assert off.value.code == 2 and "receipts are off" in off.value.message
        assert n.node.reader.ledger_size() == 0
