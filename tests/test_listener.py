"""The JSON-RPC listener over real HTTP against a real node: good paths and every kind of bad input."""

import http.client
import json
import os
import re
import signal
import socket
import time
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adytum import crypto
from adytum.client import Client, build, open_result
from adytum.protocol import RpcCode, Status, to_builtins
from support import running_node


def post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request("POST", "/", body, {"Content-Type": content_type})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, json.loads(data)


def rpc(url: str, method: str, params, rpc_id=1) -> dict:
    return post(url, json.dumps({"jsonrpc": "2.0", "id": rpc_id, "method": method, "params": params}).encode())[1]


@pytest.fixture(scope="module")
def client(node):
    with Client(node.url, trust=node.trust) as c:
        yield c


@pytest.fixture(scope="module")
def worker(client):
    return client.worker()


def test_lookup_and_retrieve(node, client):
    found = rpc(node.url, "WorkerLookUp", {})["result"]
    assert found["totalCount"] == 1
    assert rpc(node.url, "WorkerLookUp", {"workerType": 1})["result"]["ids"] == found["ids"]
    assert rpc(node.url, "WorkerLookUp", {"workerType": 2})["result"]["ids"] == []
    record = rpc(node.url, "WorkerRetrieve", {"workerId": found["ids"][0]})["result"]
    assert record["status"] == 1 and "BEGIN PUBLIC KEY" in record["details"]["workerTypeData"]["encryptionKey"]
    assert record["details"]["workerTypeData"]["proofDataType"] == "SIMULATED-IAS"
    assert rpc(node.url, "WorkerRetrieve", {"workerId": "ab" * 32})["error"]["code"] == 2


def test_sync_submit_returns_the_verified_result(client):
    assert client.run("hello", [b"world"]) == [b"Hello world"]
    assert client.run("echo-result", [b"a", b"b"]) == [b"RESULT: a", b"RESULT: b"]


def test_async_submit_then_get_result(node, client, worker):
    order = build(worker, "fib", [b"50"])
    reply = rpc(node.url, "WorkOrderSubmit", to_builtins(order.params), rpc_id=7)
    assert reply["id"] == 7 and reply["error"]["code"] == Status.PENDING
    assert reply["error"]["data"]["workOrderId"] == order.work_order_id
    result = None
    for _ in range(200):
        reply = rpc(node.url, "WorkOrderGetResult", {"workOrderId": order.work_order_id})
        if "result" in reply:
            result = reply["result"]
            break
        assert reply["error"]["code"] == Status.PENDING
        time.sleep(0.02)
    assert open_result(order, worker, result) == [b"12586269025"]
    # the result stays readable: nothing evicts it
    again = rpc(node.url, "WorkOrderGetResult", {"workOrderId": order.work_order_id.upper()})
    assert again["result"] == result


def test_errors_from_the_enclave_are_stored_and_returned(node, worker):
    order = build(worker, "fib", [b"not a number"])
    params = to_builtins(order.params)
    params["responseTimeoutMSecs"] = 10_000
    reply = rpc(node.url, "WorkOrderSubmit", params)
    assert reply["error"]["code"] == Status.INVALID_PARAMETER and "fib" in reply["error"]["message"]
    stored = rpc(node.url, "WorkOrderGetResult", {"workOrderId": order.work_order_id})
    assert stored["error"] == reply["error"]


def test_duplicate_work_order_id_and_nonce_refused(node, worker):
    order = build(worker, "hello", [b"x"], response_timeout_ms=10_000)
    assert "result" in rpc(node.url, "WorkOrderSubmit", to_builtins(order.params))
    again = rpc(node.url, "WorkOrderSubmit", to_builtins(order.params))
    assert again["error"]["code"] == 2 and "workOrderId" in again["error"]["message"]
    other = build(worker, "hello", [b"x"], requester_id=order.params.requester_id)
    p = to_builtins(other.params)
    p["requesterNonce"] = order.params.requester_nonce
    reply = rpc(node.url, "WorkOrderSubmit", p)
    assert reply["error"]["code"] == 2 and "requesterNonce" in reply["error"]["message"]


def test_tampered_and_unknown(node, worker):
    p = to_builtins(build(worker, "hello", [b"x"], response_timeout_ms=10_000).params)
    p["encryptedRequestHash"] = "00" * 48
    assert "tampered" in rpc(node.url, "WorkOrderSubmit", p)["error"]["message"]
    p = to_builtins(build(worker, "nope", [b"x"], response_timeout_ms=10_000).params)
    assert rpc(node.url, "WorkOrderSubmit", p)["error"]["code"] == Status.INVALID_WORKLOAD
    p = to_builtins(build(worker, "hello", [b"x"], response_timeout_ms=10_000, signer=crypto.SigningKey()).params)
    p["verifyingKey"] = crypto.SigningKey().public_pem()
    assert rpc(node.url, "WorkOrderSubmit", p)["error"]["code"] == Status.INVALID_SIGNATURE
    p = to_builtins(build(worker, "hello", [b"x"]).params)
    p["workerId"] = "ab" * 32
    err = rpc(node.url, "WorkOrderSubmit", p)["error"]
    assert err["code"] == 2 and "not registered" in err["message"]
    assert rpc(node.url, "WorkOrderGetResult", {"workOrderId": "ab" * 32})["error"]["code"] == 2


@pytest.mark.parametrize(
    "body,code,expect",
    [
        (b"{not json", RpcCode.PARSE_ERROR, "not valid JSON"),
        (b"[]", RpcCode.INVALID_REQUEST, "empty batch"),
        (b'{"jsonrpc":"1.0","id":1,"method":"WorkerLookUp","params":{}}', RpcCode.INVALID_REQUEST, "envelope"),
        (b'{"jsonrpc":"2.0","id":1,"params":{}}', RpcCode.INVALID_REQUEST, "envelope"),
        (
            b'{"jsonrpc":"2.0","id":1,"method":"WorkerLookUp","params":{},"extra":1}',
            RpcCode.INVALID_REQUEST,
            "envelope",
        ),
        (b'{"jsonrpc":"2.0","id":1,"method":"NoSuchMethod","params":{}}', RpcCode.METHOD_NOT_FOUND, "not supported"),
        (b'{"jsonrpc":"2.0","id":1,"method":"WorkOrderGetResult","params":{"workOrderId":"xyz"}}', 2, "params"),
        (b'{"jsonrpc":"2.0","id":1,"method":"WorkOrderGetResult","params":{"workOrderId":12}}', 2, "params"),
        (b'{"jsonrpc":"2.0","id":1,"method":"WorkerLookUp","params":{"workerType":"one"}}', 2, "params"),
        (b'{"jsonrpc":"2.0","id":1,"method":"WorkOrderSubmit","params":{}}', 2, "params"),
        (b"\xff\xfe\x00", RpcCode.PARSE_ERROR, "not valid JSON"),
    ],
)
def test_malformed_requests_get_the_json_rpc_or_the_eea_code(node, body, code, expect):
    """The envelope's errors carry JSON-RPC 2.0's codes (and EEA's 2 in data.eeaCode); a method's, EEA's."""
    status, reply = post(node.url, body)
    assert status == 200 and reply["error"]["code"] == code and expect in reply["error"]["message"]
    if code < 0:
        assert reply["error"]["data"] == {"eeaCode": 2} and reply["id"] in (1, None)


def test_oversized_request_refused(tmp_path):
    with running_node(tmp_path, max_body=64 * 1024) as small:
        status, reply = post(
            small.url, b'{"jsonrpc":"2.0","id":1,"method":"WorkerLookUp","params":{"x":"' + b"a" * 100_000 + b'"}}'
        )
        assert reply["error"]["code"] == 2 and "limit" in reply["error"]["message"]
        assert rpc(small.url, "WorkerLookUp", {})["result"]["totalCount"] == 1  # still serving


def test_truncated_body_does_not_hurt_the_node(node):
    parts = urlsplit(node.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as s:
        s.sendall(
            b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
            b'{"jsonrpc":"2.0","id":1,"meth'
        )
        s.shutdown(socket.SHUT_WR)
        s.recv(65536)  # whatever the server says (or nothing), it must not die
    assert rpc(node.url, "WorkerLookUp", {})["result"]["totalCount"] == 1


def test_get_metrics_and_openrpc(node, client):
    client.run("hello", [b"metrics"])
    parts = urlsplit(node.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    assert 'adytum_rpc_requests_total{code="0",method="WorkOrderSubmit"}' in text
    assert "adytum_work_orders_completed_total" in text and 'adytum_enclave_up{enclave="enclave-0"} 1.0' in text
    # CPU and memory of each process, read from /proc: what `adytum bench` splits per order, and the soak watches
    usage = {
        (name, process): float(value)
        for name, process, value in re.findall(
            r'^(adytum_cpu_seconds_total|adytum_memory_rss_bytes)\{process="([^"]+)"\} (\S+)$', text, re.M
        )
    }
    for process in ("node", "enclave-0", "kme"):
        assert usage[("adytum_cpu_seconds_total", process)] > 0
        assert 10 * 2**20 < usage[("adytum_memory_rss_bytes", process)] < 2**32
    conn.request("GET", "/openrpc.json")
    doc = json.loads(conn.getresponse().read())
    assert doc["openrpc"].startswith("1.") and "WorkOrderSubmit" in {m["name"] for m in doc["methods"]}
    conn.request("GET", "/")
    assert json.loads(conn.getresponse().read())["error"]["code"] == 2
    conn.close()
    assert rpc(node.url, "rpc.discover", {})["result"]["openrpc"] == doc["openrpc"]


def test_busy_when_the_queue_is_full_and_nothing_is_lost(tmp_path):
    """A stopped (SIGSTOP) enclave makes the backlog deterministic: the fourth order meets a full queue."""
    with running_node(tmp_path, max_pending=3) as busy_node, Client(busy_node.url, trust=busy_node.trust) as c:
        worker = c.worker()
        orders = [build(worker, "fib", [b"100000"]) for _ in range(6)]
        pid = busy_node.node.manager.enclaves[0].pid
        os.kill(pid, signal.SIGSTOP)
        try:
            codes = [rpc(busy_node.url, "WorkOrderSubmit", to_builtins(o.params))["error"]["code"] for o in orders]
        finally:
            os.kill(pid, signal.SIGCONT)
        assert codes == [Status.PENDING] * 3 + [Status.BUSY] * 3
        for order in orders[:3]:
            reply = None
            for _ in range(500):
                reply = rpc(busy_node.url, "WorkOrderGetResult", {"workOrderId": order.work_order_id})
                if "result" in reply:
                    break
                time.sleep(0.02)
            assert open_result(order, worker, reply["result"])[0].startswith(b"2597406934")
        refused = rpc(busy_node.url, "WorkOrderGetResult", {"workOrderId": orders[3].work_order_id})
        assert refused["error"]["code"] == Status.INVALID_PARAMETER  # a BUSY order was never stored


body_strategy = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda m, p, i: json.dumps({"jsonrpc": "2.0", "id": i, "method": m, "params": p}).encode(),
        st.sampled_from(["WorkOrderSubmit", "WorkOrderGetResult", "WorkerLookUp", "WorkerRetrieve", "x"]),
        st.dictionaries(
            st.sampled_from(["workOrderId", "workerId", "workerType", "inData", "params"]),
            st.one_of(st.text(max_size=20), st.integers(), st.none(), st.lists(st.integers())),
            max_size=4,
        ),
        st.one_of(st.integers(), st.text(max_size=5), st.none()),
    ),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body_strategy)
def test_fuzz_listener_always_answers_with_an_eea_or_json_rpc_code(node, body):
    parts = urlsplit(node.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request("POST", "/", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    if resp.status == 204:  # a batch of notifications only
        assert data == b"" and body.lstrip()[:1] == b"["
        return
    reply = json.loads(data)
    assert resp.status == 200
    for answer in reply if isinstance(reply, list) else [reply]:
        assert answer["jsonrpc"] == "2.0"
        if "error" in answer:
            assert answer["error"]["code"] in (2, 5, *RpcCode) and answer["error"]["message"]


def test_an_order_reaches_the_enclave_from_the_store_once_dispatch_is_woken(node, worker):
    """The store is the only hand-over: an order another writer committed is taken at the next wake(),
    not before (nothing polls), and answered once."""
    from adytum.datadir import DataDir
    from adytum.protocol import canonical
    from adytum.store import NewOrder, SqliteStore

    order = build(worker, "hello", [b"from the store"])
    p = order.params
    other = SqliteStore(DataDir(node.node.config.data_dir).store)
    try:
        with other.transaction():
            other.insert_order(
                NewOrder(
                    canonical(p.work_order_id),
                    canonical(p.worker_id),
                    canonical(p.requester_id),
                    p.requester_nonce.lower(),
                    json.dumps(to_builtins(p)).encode(),
                )
            )
    finally:
        other.close()
    time.sleep(0.5)
    assert node.node.reader.state(canonical(p.work_order_id)) == "scheduled"  # not taken without a wake
    node.loop.call_soon_threadsafe(node.node.manager.dispatch.wake)
    reply = None
    for _ in range(500):
        reply = rpc(node.url, "WorkOrderGetResult", {"workOrderId": p.work_order_id})
        if "result" in reply:
            break
        time.sleep(0.02)
    assert open_result(order, worker, reply["result"]) == [b"Hello from the store"]
    count = node.node.reader.db.execute(
        "SELECT COUNT(*) FROM responses WHERE work_order_id = ?", (canonical(p.work_order_id),)
    ).fetchone()[0]
    assert count == 1
