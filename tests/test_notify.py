"""Result notifications (docs/push.md): the outbox on both store backends, and a real node POSTing to a real
local HTTP receiver: signed by the worker, retried after failures, kept across a node restart, and refused for
loopback unless the operator allows it (`--notify-allow`)."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from adytum import crypto
from adytum.client import Client
from adytum.datadir import DataDir
from adytum.manager.notify import NotifyPolicy, NotifyRefused
from adytum.protocol import EeaError, Status
from adytum.store import NewOrder, open_store, outbox
from support import running_node

WORKER = "aa" * 32


class Receiver:
    """A local HTTP server that records every POST and answers with the next of `statuses` (then 200)."""

    def __init__(self, port: int = 0, statuses: tuple[int, ...] = (), hang_first: bool = False) -> None:
        self.posts: list[tuple[dict[str, str], dict]] = []
        self.statuses = list(statuses)
        #: Set to let the first POST's answer go (with hang_first, it waits for this).
        self.release = threading.Event()
        if not hang_first:
            self.release.set()
        self.got = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.got:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.posts.append((dict(self.headers), json.loads(body)))
                    first = len(receiver.posts) == 1
                    receiver.got.notify_all()
                if first:
                    receiver.release.wait(60)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.uri = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 30.0) -> list[tuple[dict[str, str], dict]]:
        with self.got:
            assert self.got.wait_for(lambda: len(self.posts) >= count, timeout), f"{len(self.posts)} POSTs"
            return list(self.posts)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


# -- the outbox, on SQLite and PostgreSQL -----------------------------------------------------------------


def _order(i: int, uri: str = "http://hooks.example/n") -> NewOrder:
    return NewOrder(f"{i:064x}", WORKER, "bb" * 32, f"{i:032x}", b"{}", notify_uri=uri)


def test_outbox_rows_go_in_with_the_order_and_fall_due_when_answered(any_store):
    store = any_store
    with store.transaction():
        store.insert_order(_order(1))
        store.insert_order(NewOrder(f"{2:064x}", WORKER, "bb" * 32, f"{2:032x}", b"{}"))  # no notifyUri
    assert outbox.get(store, _order(1).work_order_id).state == outbox.WAITING
    assert outbox.get(store, f"{2:064x}") is None
    assert outbox.due(store, now=1e12) == []  # not answered: nothing to say yet
    with store.transaction():
        store.insert_response(_order(1).work_order_id, 0, b"{}")
    (note,) = outbox.due(store, now=1e12)
    assert (note.uri, note.attempts) == ("http://hooks.example/n", 0)
    assert outbox.next_due(store) is not None


def test_each_attempt_is_taken_once_however_many_senders(any_store, tmp_path):
    store = any_store
    with store.transaction():
        store.insert_order(_order(1))
        store.insert_response(_order(1).work_order_id, 0, b"{}")
    wo = _order(1).work_order_id
    with store.transaction():
        assert outbox.take(store, wo, 0, until=1e12)
    with store.transaction():
        assert not outbox.take(store, wo, 0, until=1e12)  # a second sender (or node) lost this attempt
    assert outbox.due(store, now=1e11) == []  # held until its hold ends
    with store.transaction():
        outbox.settle(store, wo, outbox.WAITING, next_at=5.0, error="HTTP 503")
    (again,) = outbox.due(store, now=10.0)
    assert again.attempts == 1
    with store.transaction():
        assert outbox.take(store, wo, 1, until=1e12)
        outbox.release(store, wo, 2)  # its sender stopped mid-attempt: due at once
    assert [n.attempts for n in outbox.due(store, now=10.0)] == [2]
    with store.transaction():
        outbox.settle(store, wo, outbox.WAITING, next_at=5.0)
        outbox.release(store, wo, 1)  # a stale give-back (attempt 1 is over): changes nothing
    assert outbox.get(store, wo).last_error == ""
    with store.transaction():
        assert outbox.take(store, wo, 2, until=20.0)
        outbox.settle(store, wo, outbox.DELIVERED, next_at=20.0)
        outbox.release(store, wo, 3)  # a give-back after delivery: it stays delivered
    assert outbox.due(store, now=1e12) == [] and outbox.counts(store)[outbox.DELIVERED] == 1


def test_the_outbox_survives_a_new_connection_and_goes_with_pruning(any_store):
    store = any_store
    with store.transaction():
        store.insert_order(_order(1))
        store.insert_response(_order(1).work_order_id, 0, b"{}")
    again = open_store(store.url if hasattr(store, "url") else store.path)  # as a restarted node opens it
    try:
        assert [n.work_order_id for n in outbox.due(again, now=1e12)] == [_order(1).work_order_id]
    finally:
        again.close()
    with store.transaction():
        assert store.prune_answered(older_than=1e12) == 1
    assert outbox.get(store, _order(1).work_order_id) is None


# -- the policy: which hosts may be notified ----------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:8080/x",
        "http://[::1]/x",
        "http://10.0.0.7/x",
        "http://169.254.169.254/latest/meta-data",  # a cloud's metadata service
        "http://[::ffff:127.0.0.1]/x",
        "http://192.168.1.1/x",
        "http://0.0.0.0/x",
    ],
)
def test_private_and_loopback_addresses_are_refused_by_default(uri):
    with pytest.raises(NotifyRefused, match="private, loopback or reserved"):
        NotifyPolicy().target(uri)


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("ftp://hooks.example/x", "http:// or https://"),
        ("javascript:alert(1)", "http:// or https://"),
        ("http:///nohost", "with a host"),
        ("http://user:pw@hooks.example/", "credentials"),
        ("http://[::1/x", "not a URL"),
    ],
)
def test_malformed_notify_uris_are_refused(uri, why):
    with pytest.raises(NotifyRefused, match=why):
        NotifyPolicy().target(uri)


def test_the_allow_list_admits_only_its_hosts():
    policy = NotifyPolicy(["127.0.0.1:9000", "hooks.internal"])
    assert policy.target("http://127.0.0.1:9000/x") == ("127.0.0.1", 9000)
    assert policy.target("https://hooks.internal/x") == ("hooks.internal", 443)
    assert policy.refusal("http://127.0.0.1:9001/x") is not None  # another port
    assert policy.refusal("http://93.184.215.14/x") is not None  # public, but not listed
    assert NotifyPolicy().refusal("https://93.184.215.14/x") is None
    for entry in ("http://x/y", "[::1", "hooks:notaport", "", "user@hooks"):
        with pytest.raises(ValueError, match="HOST or HOST:PORT"):
            NotifyPolicy([entry])
    assert NotifyPolicy(["[::1]:8080"]).target("http://[::1]:8080/x") == ("::1", 8080)


def test_a_name_resolving_to_loopback_is_refused_when_connecting():
    async def resolve():
        resolver = NotifyPolicy().resolver()
        try:
            await resolver.resolve("localhost", 80)
        finally:
            await resolver.close()

    with pytest.raises(OSError, match="only to private, loopback or reserved"):
        asyncio.run(resolve())


# -- a real node, a real receiver ---------------------------------------------------------------------------


async def _row(node, work_order_id: str) -> outbox.Notification | None:
    return outbox.get(node.node.reader, work_order_id)


def _once(node, work_order_id: str, holds) -> outbox.Notification:
    """The order's outbox row, once `holds(row)` (read on the node's loop, where its store is used)."""

    async def look() -> outbox.Notification:
        while (note := outbox.get(node.node.reader, work_order_id)) is None or not holds(note):
            await asyncio.sleep(0.02)
        return note

    return node.call(look)


def test_loopback_is_refused_without_notify_allow(tmp_path, receiver):
    """A loopback address is refused at submit; a name that resolves to loopback is accepted as a name, then
    refused when the node resolves it to connect (and not retried); the receiver hears nothing either way."""
    with running_node(tmp_path / "node") as node, Client(node.url, trust=node.trust) as client:
        worker = client.worker()
        with pytest.raises(EeaError) as refused:
            client.submit(worker, "hello", [b"x"], notify_uri=receiver.uri)
        assert refused.value.code == Status.INVALID_PARAMETER and "--notify-allow" in refused.value.message
        with pytest.raises(EeaError, match="http:// or https://"):
            client.submit(worker, "hello", [b"x"], notify_uri="ftp://hooks.example/x")
        for placeholder in (" ", "notifyuri"):  # what Avalon's clients send: no notification asked for
            quiet, _ = client.submit(worker, "hello", [b"x"], notify_uri=placeholder)
            assert node.call(_row, node, quiet.work_order_id) is None
        order, _ = client.submit(worker, "hello", [b"x"], notify_uri=f"http://localhost:{receiver.port}/hook")
        note = _once(node, order.work_order_id, lambda n: n.state != outbox.WAITING)
    assert note.state == outbox.REFUSED and note.attempts == 1 and "resolves only to private" in note.last_error
    assert receiver.posts == []


def test_completed_and_failed_orders_are_notified_the_result_signed_by_the_worker(tmp_path, receiver):
    allow = (f"127.0.0.1:{receiver.port}",)
    with running_node(tmp_path / "node", notify_allow=allow) as node, Client(node.url, trust=node.trust) as client:
        worker = client.worker()
        order, _ = client.submit(worker, "hello", [b"ping"], notify_uri=receiver.uri)
        ((headers, note),) = receiver.wait_for(1)
        assert client.result(order, worker) == [b"Hello ping"]  # the result stays retrievable
        failing, _ = client.submit(worker, "no-such-workload", [b"x"], notify_uri=receiver.uri)
        (_, (_, failure)) = receiver.wait_for(2)
    wo = order.work_order_id
    assert (note["workOrderId"], note["status"], note["code"]) == (wo, "completed", 0)
    assert headers["Idempotency-Key"] == wo and headers["Adytum-Attempt"] == "1"
    crypto.verify_digest(
        worker.verifying_key, bytes.fromhex(note["responseHash"]), crypto.b64decode(note["workerSignature"])
    )
    forged = bytes.fromhex(note["responseHash"])[::-1]
    with pytest.raises(crypto.CryptoError):
        crypto.verify_digest(worker.verifying_key, forged, crypto.b64decode(note["workerSignature"]))
    assert (failure["workOrderId"], failure["status"]) == (failing.work_order_id, "failed") and failure["code"] != 0
    assert "workerSignature" not in failure  # the host's error code: nothing the worker signed


def test_failed_posts_are_retried_with_backoff(tmp_path):
    receiver = Receiver(statuses=(503, 500))
    try:
        allow = (f"127.0.0.1:{receiver.port}",)
        with running_node(tmp_path / "node", notify_allow=allow, notify_retry=0.05) as node:
            with Client(node.url, trust=node.trust) as client:
                order, _ = client.submit(client.worker(), "hello", [b"x"], notify_uri=receiver.uri)
                posts = receiver.wait_for(3)
            note = _once(node, order.work_order_id, lambda n: n.state != outbox.WAITING)
        assert [h["Adytum-Attempt"] for h, _ in posts] == ["1", "2", "3"]
        assert {b["workOrderId"] for _, b in posts} == {order.work_order_id}  # one order, one id to dedupe by
        assert (note.state, note.attempts) == (outbox.DELIVERED, 3)
    finally:
        receiver.close()


def test_a_notification_outlives_a_node_restart(tmp_path):
    """The node stops while its POST waits for the receiver's answer: the attempt is given back, due at once,
    and the next node on the same data directory sends it again (the receiver drops repeats by the id)."""
    receiver = Receiver(hang_first=True)
    allow = (f"127.0.0.1:{receiver.port}",)
    try:
        with running_node(tmp_path / "node", notify_allow=allow) as node:
            with Client(node.url, trust=node.trust) as client:
                order, _ = client.submit(client.worker(), "hello", [b"x"], notify_uri=receiver.uri)
                receiver.wait_for(1)  # the node's POST is open; the node stops now
        store = open_store(DataDir(tmp_path / "node").store)  # what the next start reads
        try:
            cut = outbox.get(store, order.work_order_id)
        finally:
            store.close()
        assert (cut.state, cut.attempts, cut.last_error) == (outbox.WAITING, 1, "the node stopped during the attempt")
        receiver.release.set()
        with running_node(tmp_path / "node", notify_allow=allow):
            first, second = receiver.wait_for(2)
        assert first[1] == second[1] and second[1]["workOrderId"] == order.work_order_id
        assert (first[0]["Adytum-Attempt"], second[0]["Adytum-Attempt"]) == ("1", "2")
        assert first[0]["Idempotency-Key"] == second[0]["Idempotency-Key"] == order.work_order_id
    finally:
        receiver.close()


def test_up_refuses_a_malformed_allow_entry_in_one_line(tmp_path, capfd):
    from adytum.cli import main as cli

    assert cli(["up", "--data-dir", str(tmp_path / "node"), "--notify-allow", "http://hooks/x"]) == 1
    assert "--notify-allow 'http://hooks/x' is not HOST or HOST:PORT" in capfd.readouterr().err


def test_a_node_on_postgresql_notifies_too(tmp_path, pg_url, receiver):
    allow = (f"127.0.0.1:{receiver.port}",)
    with running_node(tmp_path / "node", store=pg_url, notify_allow=allow) as node:
        with Client(node.url, trust=node.trust) as client:
            order, _ = client.submit(client.worker(), "hello", [b"x"], notify_uri=receiver.uri)
            ((_, note),) = receiver.wait_for(1)
        assert _once(node, order.work_order_id, lambda n: n.state != outbox.WAITING).state == outbox.DELIVERED
    assert (note["workOrderId"], note["status"]) == (order.work_order_id, "completed")
