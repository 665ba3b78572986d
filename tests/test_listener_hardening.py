"""Hardening of the listener against strangers, on real nodes over real HTTP (raw sockets where it matters):
field bounds, connection limits, every malformed request a JSON-RPC error, Host/Content-Type/token checks,
EncryptionKeySet replays, and a fuzz run of mutated valid requests."""

from __future__ import annotations

import gzip
import json
import logging
import socket
import time
import zlib
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adytum.client import Client, build
from adytum.protocol import EeaError, RegistryStatus, Status, to_builtins
from adytum.protocol.limits import MAX_DATA, MAX_KEY, MAX_URI
from support import running_node


def request(body: bytes, *, method: str = "POST", path: str = "/", host: str = "127.0.0.1", headers=()) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    if not any(h.lower().startswith("content-type:") for h in headers):
        lines.append("Content-Type: application/json")
    return ("\r\n".join([*lines, *headers]) + "\r\n\r\n").encode() + body


def read_answer(sock: socket.socket) -> tuple[int, dict | None]:
    """One HTTP answer: (status, JSON body); (0, None) if the server closed without answering."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return 0, None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the connection was dropped in the middle of an answer"
        body += chunk
    return status, json.loads(body)


def exchange(url: str, data: bytes, timeout: float = 15) -> tuple[int, dict | None]:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as s:
        s.sendall(data)
        return read_answer(s)


def rpc_body(method: str, params, rpc_id=1) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": rpc_id, "method": method, "params": params}).encode()


def lookup_works(url: str) -> bool:
    status, reply = exchange(url, request(rpc_body("WorkerLookUp", {})))
    return status == 200 and reply is not None and reply["result"]["totalCount"] == 1


@pytest.fixture(scope="module")
def worker(node):
    with Client(node.url, trust=node.trust) as c:
        yield c.worker()


@pytest.fixture
def listener_log(caplog):
    caplog.set_level(logging.INFO, logger="adytum.listener")
    caplog.set_level(logging.INFO, logger="aiohttp")
    return caplog


def no_tracebacks(caplog) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


# -- item 3: bounds ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field,value",
    [
        ("resultUri", "h" * (MAX_URI + 1)),
        ("notifyUri", "h" * (MAX_URI + 1)),
        ("verifyingKey", "k" * (MAX_KEY + 1)),
        ("requesterSignature", "s" * 10_000),
        ("payloadFormat", "J" * 1000),
        ("dataEncryptionAlgorithm", "A" * 1000),
    ],
)
def test_oversized_order_fields_are_refused_and_not_stored(node, worker, field, value):
    order = build(worker, "hello", [b"x"])
    params = {**to_builtins(order.params), field: value}
    status, reply = exchange(node.url, request(rpc_body("WorkOrderSubmit", params)))
    assert status == 200 and reply["error"]["code"] == Status.INVALID_PARAMETER and field in reply["error"]["message"]
    _, stored = exchange(node.url, request(rpc_body("WorkOrderGetResult", {"workOrderId": order.work_order_id})))
    assert "not known" in stored["error"]["message"]


@pytest.mark.parametrize("field", ["data", "dataHash", "encryptedDataEncryptionKey", "iv"])
def test_oversized_item_fields_are_refused(node, worker, field):
    params = to_builtins(build(worker, "hello", [b"x"]).params)
    params["inData"][0][field] = "A" * (MAX_DATA + 1 if field == "data" else 10_000)
    status, reply = exchange(node.url, request(rpc_body("WorkOrderSubmit", params)))
    assert reply["error"]["code"] == Status.INVALID_PARAMETER  # by the body limit or the field's own


def test_oversized_registry_and_receipt_fields_are_refused(node):
    wid = node.node.manager.worker_id
    current = exchange(node.url, request(rpc_body("EncryptionKeyGet", {"workerId": wid})))[1]["result"]
    key_set = {k: current[k] for k in ("workerId", "encryptionKey", "encryptionKeyNonce", "tag", "signature")}
    for field, size in (("encryptionKey", MAX_KEY + 1), ("encryptionKeyNonce", 1000), ("signature", 1000)):
        _, reply = exchange(node.url, request(rpc_body("EncryptionKeySet", {**key_set, field: "a" * size})))
        assert reply["error"]["code"] == RegistryStatus.INVALID_PARAMETER and field in reply["error"]["message"]
    _, reply = exchange(node.url, request(rpc_body("WorkerLookUpNext", {"lookupTag": "a" * 1000})))
    assert reply["error"]["code"] == RegistryStatus.INVALID_PARAMETER
    receipt = {
        "workOrderId": "ab" * 32,
        "workerServiceId": "ab" * 32,
        "workerId": wid,
        "requesterId": "ab" * 32,
        "receiptCreateStatus": 0,
        "workOrderRequestHash": "aa",
        "requesterGeneratedNonce": "1",
        "receiptVerificationKey": "k" * (MAX_KEY + 1),
    }
    _, reply = exchange(node.url, request(rpc_body("WorkOrderReceiptCreate", receipt)))
    assert reply["error"]["code"] == Status.INVALID_PARAMETER and "receiptVerificationKey" in reply["error"]["message"]


def test_a_junk_flood_leaves_the_store_as_it_was(node, worker):
    """Schema-valid orders but for one oversized field, from one connection: none is stored."""
    from adytum.datadir import DataDir

    store = DataDir(node.node.config.data_dir).store
    orders_before = node.node.reader.db.execute("SELECT COUNT(*) FROM work_orders").fetchone()[0]
    size_before = store.stat().st_size
    fields = ["resultUri", "notifyUri", "verifyingKey", "requesterSignature"]
    with connect(node.url) as s:
        for i in range(200):
            params = {**to_builtins(build(worker, "hello", [b"x"]).params), fields[i % 4]: "j" * 100_000}
            s.sendall(request(rpc_body("WorkOrderSubmit", params)))
            status, reply = read_answer(s)
            assert status == 200 and reply["error"]["code"] == Status.INVALID_PARAMETER
    assert node.node.reader.db.execute("SELECT COUNT(*) FROM work_orders").fetchone()[0] == orders_before
    assert store.stat().st_size - size_before < 1024 * 1024  # 20 MB sent, nothing of it kept


# -- item 7: EncryptionKeySet replays --------------------------------------------------------------------


def test_replayed_encryption_key_set_changes_nothing(node):
    keys = node.node.manager.keys
    calls = []

    async def counting_refresh(*args, **kwargs):
        calls.append(1)

    keys.refresh = counting_refresh  # the registry holds the same object: any call would be counted
    try:
        wid = node.node.manager.worker_id
        before = exchange(node.url, request(rpc_body("EncryptionKeyGet", {"workerId": wid})))[1]["result"]
        replay = {k: before[k] for k in ("workerId", "encryptionKey", "encryptionKeyNonce", "tag", "signature")}
        for _ in range(50):
            assert exchange(node.url, request(rpc_body("EncryptionKeySet", replay)))[1] == {
                "jsonrpc": "2.0",
                "id": 1,
                "result": None,
            }
        after = exchange(node.url, request(rpc_body("EncryptionKeyGet", {"workerId": wid})))[1]["result"]
    finally:
        del keys.refresh
    assert calls == [] and after == before


# -- item 5: every malformed request gets a JSON-RPC error -----------------------------------------------

LOOKUP = rpc_body("WorkerLookUp", {})


@pytest.mark.parametrize(
    "data,status,code,words",
    [
        (
            request(b'{"jsonrpc":"2.0","id":1,"method":"WorkerLookUp","params":' + b"[" * 5000 + b"]" * 5000 + b"}"),
            200,
            2,
            "nested too deeply",
        ),
        (
            request(
                b'{"jsonrpc":"2.0","id":1,"method":"WorkerRegister","params":{"a":' + b"[" * 5000 + b"]" * 5000 + b"}}"
            ),
            200,
            2,
            "nested too deeply",
        ),
        (request(b'{"jsonrpc":"2.0","id":"\xff","method":"WorkerLookUp"}'), 200, 2, "UTF-8"),
        (request(b'{"jsonrpc":"2.0","id":1,"method":"WorkerRegister","params":{"x":"\xff\xfe"}}'), 200, 2, "UTF-8"),
        (
            request(b'{"jsonrpc":"2.0","id":1,"method":"WorkOrderGetResult","params":{"workOrderId":"\xc3("}}'),
            200,
            2,
            "UTF-8",
        ),
        (request(b"\x1f\x8b\x08\x00corrupt" * 8, headers=["Content-Encoding: gzip"]), 400, 2, "content-encoding"),
        (request(b"corrupt" * 8, headers=["Content-Encoding: deflate"]), 400, 2, "content-encoding"),
        (request(gzip.compress(LOOKUP)[:-12], headers=["Content-Encoding: gzip"]), 200, 2, "truncated"),
        (request(LOOKUP, headers=["Content-Type: text/plain"]), 415, 2, "application/json"),
        (request(LOOKUP, headers=["Content-Type: application/x-www-form-urlencoded"]), 415, 2, "application/json"),
        (request(b"", method="GET", path="/nope"), 404, 2, "Not Found"),
        (request(LOOKUP, method="PUT"), 405, 2, "Method Not Allowed"),
        (request(LOOKUP, method="DELETE", path="/metrics"), 405, 2, "Method Not Allowed"),
        (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nNo colon here\r\n\r\n", 400, 2, "malformed HTTP"),
        (b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400, 2, "malformed HTTP"),
        (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"x" * 64 + b"\r\n\r\n", 400, 2, "malformed HTTP"),
        (
            b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked"
            b"\r\n\r\nzz\r\n",
            400,
            2,
            "malformed HTTP",
        ),
        (request(b"x" * (MAX_DATA + 1024)), 413, 2, "limit"),
    ],
)
def test_every_malformed_request_gets_a_json_rpc_error(node, listener_log, data, status, code, words):
    got_status, reply = exchange(node.url, data)
    assert got_status == status and reply["jsonrpc"] == "2.0"
    eea_code = reply["error"]["data"]["eeaCode"] if reply["error"]["code"] < 0 else reply["error"]["code"]
    assert eea_code == code and words.lower() in reply["error"]["message"].lower()  # a JSON-RPC code maps to EEA's
    assert lookup_works(node.url)
    no_tracebacks(listener_log)
    assert listener_log.records, "a refusal gets one log line"


def test_a_compressed_request_is_served(node):
    status, reply = exchange(node.url, request(gzip.compress(LOOKUP), headers=["Content-Encoding: gzip"]))
    assert status == 200 and reply["result"]["totalCount"] == 1
    status, reply = exchange(node.url, request(zlib.compress(LOOKUP), headers=["Content-Encoding: deflate"]))
    assert status == 200 and reply["result"]["totalCount"] == 1


def test_a_gzip_bomb_is_stopped_at_the_body_limit(tmp_path):
    with running_node(tmp_path, max_body=64 * 1024) as small:
        bomb = gzip.compress(b'{"jsonrpc":"2.0","id":1,"method":"WorkerLookUp","params":{"x":"' + b"a" * 10_000_000)
        status, reply = exchange(small.url, request(bomb, headers=["Content-Encoding: gzip"]))
        assert status == 413 and reply["error"]["code"] == 2
        assert lookup_works(small.url)


# -- item 10: Host, Content-Type and the API token --------------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example", "evil.example:1947", "localhost.evil.example", ""])
def test_a_foreign_host_is_refused_everywhere(node, host):
    for method, path, body in (("POST", "/", LOOKUP), ("GET", "/metrics", b""), ("GET", "/openrpc.json", b"")):
        status, reply = exchange(node.url, request(body, method=method, path=path, host=host))
        assert status == 421 and reply["error"]["code"] == Status.ACCESS_DENIED and "Host" in reply["error"]["message"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST:1947", "[::1]:1947", "10.1.2.3"])
def test_local_names_and_addresses_are_served(node, host):
    status, reply = exchange(node.url, request(LOOKUP, host=host))
    assert status == 200 and reply["result"]["totalCount"] == 1


def test_allowed_host_names_and_the_api_token(tmp_path):
    token = "s3cret-token"
    with running_node(tmp_path, allowed_hosts=("adytum.example",), api_token=token) as n:
        auth = [f"Authorization: Bearer {token}"]
        status, reply = exchange(n.url, request(LOOKUP, host="adytum.example:443", headers=auth))
        assert status == 200 and reply["result"]["totalCount"] == 1
        for headers in ([], ["Authorization: Bearer wrong"], [f"Authorization: Basic {token}"]):
            status, reply = exchange(n.url, request(LOOKUP, headers=headers))
            assert status == 401 and reply["error"]["code"] == Status.ACCESS_DENIED
        assert exchange(n.url, request(LOOKUP, host="other.example", headers=auth))[0] == 421
        with Client(n.url, trust=n.trust, token=token) as c:
            assert c.run("hello", [b"token"]) == [b"Hello token"]
        with Client(n.url, trust=n.trust) as c, pytest.raises(EeaError) as refused:
            c.worker()
        assert refused.value.code == Status.ACCESS_DENIED


# -- item 4: connection limits ------------------------------------------------------------------------------


def connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=15)


def test_idle_and_slow_connections_are_closed(tmp_path, listener_log):
    with running_node(tmp_path, read_timeout=1.0, keepalive_timeout=1.0) as n:
        idle = connect(n.url)  # sends nothing
        after_request = connect(n.url)
        after_request.sendall(request(LOOKUP))
        assert read_answer(after_request)[0] == 200  # then idles on keep-alive
        slow_headers = connect(n.url)
        slow_headers.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        slow_body = connect(n.url)
        slow_body.sendall(request(LOOKUP)[:-5])
        for s in (idle, after_request, slow_headers):  # closed (by the idle timeout, or the deadline with a 408)
            status, _ = read_answer(s)
            assert status in (0, 408) and (status == 0 or s.recv(10) == b"")
        status, reply = read_answer(slow_body)
        assert status == 408 and reply["error"]["code"] == Status.INVALID_PARAMETER
        assert slow_body.recv(10) == b""  # and closed
        for s in (idle, after_request, slow_headers, slow_body):
            s.close()
        assert lookup_works(n.url)
        no_tracebacks(listener_log)


def test_a_trickling_sender_is_closed_by_the_request_deadline(tmp_path):
    """One header byte now and then resets no timer: the deadline counts from the request's first byte."""
    with running_node(tmp_path, read_timeout=1.0, keepalive_timeout=60) as n:
        s = connect(n.url)
        data = request(LOOKUP)
        sent, closed = 0, False
        try:
            for byte in data:
                s.sendall(bytes([byte]))
                sent += 1
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            closed = True
        if not closed:
            status, _ = read_answer(s)
            closed = status == 408
        s.close()
        assert closed and sent < len(data)
        assert lookup_works(n.url)


def test_hundreds_of_idle_sockets_and_the_cap(tmp_path):
    cap = 300
    with running_node(tmp_path, max_connections=cap) as n, Client(n.url, trust=n.trust) as client:
        client.worker()
        idle = []
        try:
            for _ in range(cap - 2):  # the client holds one, one stays free
                idle.append(connect(n.url))
            assert client.run("hello", [b"among idle sockets"]) == [b"Hello among idle sockets"]
            idle.append(connect(n.url))
            deadline = time.monotonic() + 10
            while n.node.connections.open < cap and time.monotonic() < deadline:
                time.sleep(0.02)
            assert n.node.connections.open == cap
            for _ in range(5):  # beyond the cap: 503 with a JSON-RPC BUSY error, then closed
                with connect(n.url) as extra:
                    extra.sendall(request(LOOKUP))
                    status, reply = read_answer(extra)
                    assert status == 503 and reply["error"]["code"] == Status.BUSY
                    assert extra.recv(10) == b""
            assert n.node.connections.refused == 5
            for s in idle[:10]:
                s.close()
            assert client.run("hello", [b"after"]) == [b"Hello after"]
        finally:
            for s in idle:
                s.close()


# -- the fuzz run ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeds(node, worker):
    order = to_builtins(build(worker, "hello", [b"fuzz"]).params)
    wid = node.node.manager.worker_id
    return [
        rpc_body("WorkOrderSubmit", order),
        rpc_body("WorkOrderGetResult", {"workOrderId": order["workOrderId"]}),
        rpc_body("WorkerLookUp", {"workerType": 1}),
        rpc_body("WorkerRetrieve", {"workerId": wid}),
        rpc_body("EncryptionKeyGet", {"workerId": wid}),
        rpc_body("WorkerRegister", {"workerId": "ab" * 32, "workerType": 1, "details": {}}),
        rpc_body("WorkOrderReceiptRetrieve", {"workOrderId": order["workOrderId"]}),
        rpc_body("LedgerInclusionProof", {"leafIndex": 0}),
    ]


def _replace_value(body: bytes, draw) -> bytes:
    doc = json.loads(body)
    target = doc if draw(st.booleans()) or not isinstance(doc.get("params"), dict) else doc["params"]
    if not target:
        return body
    key = draw(st.sampled_from(sorted(target)))
    target[key] = draw(
        st.one_of(
            st.integers(min_value=-(2**70), max_value=2**70),
            st.floats(allow_nan=False),
            st.none(),
            st.booleans(),
            st.lists(st.integers(), max_size=3),
            st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
            st.text(max_size=40),
            st.integers(min_value=1000, max_value=300_000).map(lambda n: "a" * n),
        )
    )
    return json.dumps(doc).encode()


@st.composite
def mutated(draw, seeds):
    body = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "nest", "value", "utf8"]))
        if kind == "flip" and body:
            at = draw(st.integers(min_value=0, max_value=len(body) - 1))
            body = body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1 :]
        elif kind == "truncate":
            body = body[: draw(st.integers(min_value=0, max_value=len(body)))]
        elif kind == "insert":
            at = draw(st.integers(min_value=0, max_value=len(body)))
            body = body[:at] + draw(st.binary(min_size=1, max_size=8)) + body[at:]
        elif kind == "nest":
            depth = draw(st.integers(min_value=1, max_value=3000))
            body = body.replace(b'"params":', b'"params":' + b"[" * depth, 1) + b"]" * depth
        elif kind == "value":
            try:
                body = _replace_value(body, draw)
            except (ValueError, RecursionError):  # not JSON any more: leave it as it is
                pass
        elif kind == "utf8":
            at = body.find(b'":"')
            if at >= 0:
                body = (
                    body[: at + 3]
                    + draw(st.sampled_from([b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\xf0\x28"]))
                    + body[at + 3 :]
                )
    encoding = draw(st.sampled_from(["", "", "", "gzip", "deflate", "gzip-corrupt"]))
    headers = []
    if encoding == "gzip":
        body, headers = gzip.compress(body), ["Content-Encoding: gzip"]
    elif encoding == "deflate":
        body, headers = zlib.compress(body), ["Content-Encoding: deflate"]
    elif encoding == "gzip-corrupt":
        packed = bytearray(gzip.compress(body))
        packed[draw(st.integers(min_value=10, max_value=len(packed) - 1))] ^= 0xFF
        body, headers = bytes(packed), ["Content-Encoding: gzip"]
    return body, headers


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.bad: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.bad.append(record.getMessage())


def test_fuzz_mutated_requests_never_meet_an_internal_error(node, worker, seeds):
    recorder = _Recorder()
    for name in ("adytum", "aiohttp"):
        logging.getLogger(name).addHandler(recorder)
    connection: list[socket.socket] = []
    answered = []

    def send(data: bytes) -> tuple[int, dict | None]:
        if not connection:
            connection.append(connect(node.url))
        s = connection[0]
        s.sendall(data)
        status, reply = read_answer(s)
        assert status != 0, "the node dropped the connection without an answer"
        if status >= 400:  # the node may close after a refusal (it says so: Connection: close)
            s.close()
            connection.clear()
        return status, reply

    @settings(max_examples=2500, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(mutated(seeds))
    def run(case):
        body, headers = case
        status, reply = send(request(body, headers=headers))
        assert reply is not None and reply["jsonrpc"] == "2.0" and status < 500
        if "error" in reply:
            assert reply["error"]["code"] != Status.UNKNOWN_ERROR, reply["error"]
            assert isinstance(reply["error"]["message"], str) and reply["error"]["message"]
        answered.append(status)

    try:
        run()
    finally:
        for name in ("adytum", "aiohttp"):
            logging.getLogger(name).removeHandler(recorder)
        for s in connection:
            s.close()
    assert len(answered) >= 2000
    assert recorder.bad == []
    with Client(node.url, trust=node.trust) as c:
        assert c.run("hello", [b"after the fuzz"]) == [b"Hello after the fuzz"]


# -- adytum up ------------------------------------------------------------------------------------------


def test_adytum_up_takes_the_limits_the_hosts_and_the_token(tmp_path):
    import re
    import signal
    import subprocess
    import sys

    token_file = tmp_path / "token"
    token_file.write_text("t0ken-from-a-file\n")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "adytum",
            "up",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path / "data"),
            "--enclaves",
            "1",
            "--log-format",
            "text",
            "--api-token-file",
            str(token_file),
            "--allow-host",
            "adytum.example",
            "--allow-host",
            "other.example",
            "--max-connections",
            "40",
            "--read-timeout",
            "5",
            "--keepalive-timeout",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        url = None
        assert proc.stdout is not None
        for line in proc.stdout:
            found = re.search(r"on (http://\S+/)", line)
            if found and "serving" in line:
                url = found.group(1)
                break
        assert url, "the node did not start"
        auth = ["Authorization: Bearer t0ken-from-a-file"]
        for host in ("adytum.example", "other.example:1947", "127.0.0.1"):
            status, reply = exchange(url, request(LOOKUP, host=host, headers=auth))
            assert status == 200 and reply["result"]["totalCount"] == 1
        assert exchange(url, request(LOOKUP, host="evil.example", headers=auth))[0] == 421
        assert exchange(url, request(LOOKUP))[0] == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def test_a_bad_token_file_or_limit_is_refused(tmp_path):
    import subprocess
    import sys

    from adytum.config import NodeConfig

    with pytest.raises(ValueError):
        NodeConfig.of(tmp_path, read_timeout=0)
    with pytest.raises(ValueError):
        NodeConfig.of(tmp_path, max_connections=0)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    out = subprocess.run(
        [sys.executable, "-m", "adytum", "up", "--data-dir", str(tmp_path / "d"), "--api-token-file", str(empty)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 1 and "token" in out.stderr and "Traceback" not in out.stderr
