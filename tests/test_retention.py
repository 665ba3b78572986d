"""Retention on a running node: an answered order's result is pruned after `--retention`, GetResult says so
with its reason, a replay of the order is still refused, and its receipt still verifies."""

import time

import pytest

from adytum.client import Client, build, open_result
from adytum.protocol import EeaError, Status, to_builtins
from support import running_node


def test_answered_results_are_pruned_and_say_so(tmp_path):
    with running_node(tmp_path, answered_retention=1.0) as n, Client(n.url, trust=n.trust) as client:
        worker = client.worker()
        order = build(worker, "hello", [b"kept a second"])
        with pytest.raises(EeaError) as pending:
            client.call("WorkOrderSubmit", to_builtins(order.params))
        assert pending.value.code == Status.PENDING
        deadline = time.monotonic() + 60
        while True:
            try:
                result = client.call("WorkOrderGetResult", {"workOrderId": order.work_order_id})
            except EeaError as exc:
                if exc.code == Status.PENDING:
                    continue
                raise
            assert open_result(order, worker, result) == [b"Hello kept a second"]
            break
        while True:  # the retention task runs every second
            assert time.monotonic() < deadline, "the answered order was never pruned"
            try:
                client.call("WorkOrderGetResult", {"workOrderId": order.work_order_id})
            except EeaError as exc:
                assert exc.code == Status.INVALID_PARAMETER and "pruned" in exc.message, exc
                break
            time.sleep(0.2)
        with pytest.raises(EeaError, match="already used"):
            client.call("WorkOrderSubmit", to_builtins(order.params))  # the receipt keeps its id taken
        assert client.receipt(order.work_order_id).status_name == "COMPLETED"
