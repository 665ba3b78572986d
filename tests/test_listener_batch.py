"""JSON-RPC 2.0 batches (§6) and notifications (§4.1) over real HTTP: every entry answered on its own, in
its own id, one bad entry never breaking the others; limits on entries and bytes."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

from adytum.client import Client, build, open_result
from adytum.protocol import RpcCode, Status, decode_result, to_builtins
from adytum.protocol.limits import MAX_BATCH
from support import running_node


def post(url: str, body: bytes) -> tuple[int, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    conn.request("POST", "/", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def call(method: str, params: object, rpc_id: object = None) -> dict:
    entry = {"jsonrpc": "2.0", "method": method, "params": params}
    return entry if rpc_id is None else {**entry, "id": rpc_id}


def batch(url: str, entries: list) -> tuple[int, list]:
    status, data = post(url, json.dumps(entries).encode())
    return status, json.loads(data) if data else []


def test_a_batch_answers_each_entry_by_its_id_and_bad_entries_alone(node):
    with Client(node.url, trust=node.trust) as client:
        worker = client.worker()
    orders = [build(worker, "hello", [name.encode()], response_timeout_ms=30_000) for name in ("one", "two")]
    status, answers = batch(
        node.url,
        [
            call("WorkOrderSubmit", to_builtins(orders[0].params), "order-1"),
            call("WorkerLookUp", {}, 1),
            call("NoSuchMethod", {}, 2),
            call("WorkerRetrieve", {"workerId": "not hex"}, 3),
            42,
            {"jsonrpc": "2.0", "id": 4},
            call("WorkerLookUp", {}),  # a notification: it runs, and gets no answer
            call("WorkOrderSubmit", to_builtins(orders[1].params), "order-2"),
        ],
    )
    assert status == 200
    by_id = {answer["id"]: answer for answer in answers}
    assert len(answers) == 7 and set(by_id) == {"order-1", 1, 2, 3, None, "order-2"}
    assert by_id[1]["result"]["ids"] == [worker.worker_id]
    assert by_id[2]["error"]["code"] == RpcCode.METHOD_NOT_FOUND and by_id[2]["error"]["data"] == {"eeaCode": 2}
    assert by_id[3]["error"]["code"] == Status.INVALID_PARAMETER and "WorkerRetrieve" in by_id[3]["error"]["message"]
    invalid = [a for a in answers if a["id"] is None]
    assert [a["error"]["code"] for a in invalid] == [RpcCode.INVALID_REQUEST] * 2  # 42 and the one without method
    for order, rpc_id, name in ((orders[0], "order-1", b"one"), (orders[1], "order-2", b"two")):
        result = decode_result(json.dumps(by_id[rpc_id]["result"]))
        assert open_result(order, worker, result) == [b"Hello " + name]


def test_notifications_get_no_answer(node):
    status, body = post(node.url, json.dumps(call("WorkerLookUp", {})).encode())
    assert (status, body) == (204, b"")
    status, answers = batch(node.url, [call("WorkerLookUp", {}), call("NoSuchMethod", {})])
    assert (status, answers) == (204, [])


def test_batch_limits_and_broken_batches_get_one_envelope_error(node):
    status, data = post(node.url, b'[{"jsonrpc":"2.0","id":1,"method":"WorkerLookUp"},')
    error = json.loads(data)
    assert status == 200 and error["id"] is None and error["error"]["code"] == RpcCode.PARSE_ERROR
    status, error = batch(node.url, [])
    assert error["error"]["code"] == RpcCode.INVALID_REQUEST and "empty batch" in error["error"]["message"]
    status, error = batch(node.url, [call("WorkerLookUp", {}, i) for i in range(MAX_BATCH + 1)])
    assert error["error"]["code"] == RpcCode.INVALID_REQUEST
    assert f"at most {MAX_BATCH} requests" in error["error"]["message"]
    status, answers = batch(node.url, [call("WorkerLookUp", {}, i) for i in range(MAX_BATCH)])
    assert status == 200 and sorted(a["id"] for a in answers) == list(range(MAX_BATCH))


def test_a_batch_is_bounded_by_the_body_limit_as_a_whole(tmp_path):
    limit = 16 * 1024
    with running_node(tmp_path, max_body=limit) as small:
        entries = [call("WorkerLookUp", {}, i) for i in range(MAX_BATCH)]
        assert len(json.dumps(entries)) < limit
        status, answers = batch(small.url, entries)
        assert status == 200 and len(answers) == MAX_BATCH
        big = [call("WorkerRetrieve", {"workerId": "ab" * 100}, i) for i in range(MAX_BATCH)]  # each entry small
        assert len(json.dumps(big)) > limit
        status, error = batch(small.url, big)
        assert status == 413 and error["error"]["code"] == Status.INVALID_PARAMETER
        assert "limit" in error["error"]["message"]
