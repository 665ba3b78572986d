"""Several nodes of one worker on one PostgreSQL database, each `adytum up` its own process group with its own
enclaves: any node takes and answers any order; state is one; a node killed or cut off from the database
loses its claims to the others; the server dropping every connection or restarting loses nothing acknowledged.

Node A runs the key manager (`--kme-listen`); node B joins it (`--join`), as two hosts would. Leases are 3 s so
that takeovers happen within a test. Needs a PostgreSQL server (tests/pg.py): skipped without one, failed in CI.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from adytum.client import Client, Trust, build, open_result
from adytum.crypto import SigningKey
from adytum.protocol import EeaError, Status, to_builtins
from conftest import IN_CI
from pg import terminate_backends
from support import two_hosts
from test_crash import fib_by_iteration, free_port

LEASE = "3"


@dataclass
class NodeProc:
    name: str
    data_dir: Path
    port: int
    log: Path
    args: list[str]
    proc: subprocess.Popen | None = None
    kme_port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> None:
        command = [sys.executable, "-m", "adytum", "up", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        command += ["--log-format", "text", "--lease", LEASE, *self.args]
        with open(self.log, "ab") as out:  # a process group of its own: node and enclaves die together
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def holding_claims(self, store: str, timeout: float = 60) -> None:
        """Return once this node holds claimed orders (so that cutting it off or killing it strands some)."""
        node_id = (self.data_dir / "node-id").read_text().strip()
        deadline = time.monotonic() + timeout
        with psycopg.connect(store, autocommit=True) as db:
            while not db.execute("SELECT 1 FROM schedule WHERE owner = %s LIMIT 1", (node_id,)).fetchone():
                assert time.monotonic() < deadline, f"{self.name} never held a claim"
                time.sleep(0.005)

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def kill_holding_claims(self, store: str, timeout: float = 60) -> None:
        """SIGKILL this node's process group at a moment it holds claimed orders: stopped (SIGSTOP) while the
        store is asked, let go on (SIGCONT) while it holds none. Fast orders may all be answered between a
        look and a kill; a stopped node's claims cannot be."""
        assert self.proc is not None
        node_id = (self.data_dir / "node-id").read_text().strip()
        deadline = time.monotonic() + timeout
        with psycopg.connect(store, autocommit=True) as db:
            while True:
                os.killpg(self.proc.pid, signal.SIGSTOP)
                if db.execute("SELECT 1 FROM schedule WHERE owner = %s LIMIT 1", (node_id,)).fetchone():
                    break
                os.killpg(self.proc.pid, signal.SIGCONT)
                assert time.monotonic() < deadline, f"{self.name} never held a claim"
                time.sleep(0.005)
        self.kill()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, f"{self.name} exited: {self.log.read_text()}"
            try:
                with Client(self.url) as c:
                    if c.call("WorkerLookUp", {})["ids"]:
                        return
            except (OSError, EeaError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} did not come up: {self.log.read_text()[-3000:]}")


@dataclass
class Cluster:
    store: str
    a: NodeProc
    b: NodeProc
    trust: Trust
    nodes: list[NodeProc] = field(default_factory=list)


@contextmanager
def cluster(tmp_path: Path, store: str, *, b_store: str | None = None, b_enclaves: str = "1") -> Iterator[Cluster]:
    a_dir, b_dir = two_hosts(tmp_path)
    kme = free_port()
    a = NodeProc("A", a_dir, free_port(), tmp_path / "a.log", ["--store", store, "--enclaves", "1"])
    a.args += ["--kme-listen", f"127.0.0.1:{kme}"]
    b_args = ["--store", b_store or store, "--enclaves", b_enclaves, "--join", f"127.0.0.1:{kme}"]
    b = NodeProc("B", b_dir, free_port(), tmp_path / "b.log", b_args)
    trust = Trust.from_files([a_dir / "devroot" / "root.pem", b_dir / "devroot" / "root.pem"])
    c = Cluster(store, a, b, trust, [a, b])
    try:
        a.start()
        a.wait_ready()
        b.start()
        b.wait_ready()
        yield c
    finally:
        for n in c.nodes:
            n.stop()


def submit(client: Client, order) -> bool:
    """True if the node acknowledged the order (PENDING); False if it refused it for now (BUSY) or the
    connection broke (the order may or may not be in: checked at the end)."""
    try:
        client.call("WorkOrderSubmit", to_builtins(order.params))
    except EeaError as exc:
        if exc.code == Status.PENDING:
            return True
        assert exc.code == Status.BUSY, exc
        return False
    except OSError:
        return False
    raise AssertionError("a submit with responseTimeoutMSecs 0 answered at once")


def result_of(client: Client, order, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.call("WorkOrderGetResult", {"workOrderId": order.work_order_id})
        except EeaError as exc:
            assert exc.code in (Status.PENDING, Status.BUSY) and time.monotonic() < deadline, exc
        except OSError:
            assert time.monotonic() < deadline
        time.sleep(0.05)


class Load:
    """Requesters (threads, each its own client) sending fib orders round-robin to the given nodes until
    stopped; what each node acknowledged is kept."""

    def __init__(self, urls: list[str], trust: Trust, worker, fib_of: bytes, requesters: int = 3) -> None:
        self.urls, self.trust, self.worker, self.fib_of = urls, trust, worker, fib_of
        self.acknowledged: list = []
        self.sent: list = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(requesters)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    def _run(self, i: int) -> None:
        clients = [Client(url, trust=self.trust) for url in self.urls]
        try:
            n = i
            while not self._stop.is_set():
                order = build(self.worker, "fib", [self.fib_of])
                self.sent.append(order)
                if submit(clients[n % len(clients)], order):
                    self.acknowledged.append(order)
                n += 1
                time.sleep(0.01)
        finally:
            for c in clients:
                c.close()

    def until(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acknowledged) < count:
            assert time.monotonic() < deadline, f"only {len(self.acknowledged)} orders acknowledged"
            time.sleep(0.05)


def check_answered_once(store: str, url: str, trust: Trust, worker, acknowledged: list, fib_of: int) -> None:
    """Acknowledged = verified; nothing left unanswered; no order with two answers; none failed."""
    expected = [fib_by_iteration(fib_of)]
    with Client(url, trust=trust) as client:
        for order in acknowledged:
            assert open_result(order, worker, result_of(client, order)) == expected
    with psycopg.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM schedule").fetchone()[0] == 0  # nothing accepted is left behind
        accepted = db.execute("SELECT COUNT(*) FROM work_orders").fetchone()[0]
        answered = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        failed = db.execute("SELECT COUNT(*) FROM responses WHERE code <> 0").fetchone()[0]
    assert accepted == answered and failed == 0
    assert accepted >= len(acknowledged)


def test_any_node_serves_any_order_and_state_is_one(tmp_path, pg_url):
    """A deposit through A shows in a balance through B; an order submitted to B is answered through A; a node
    without enclaves serves the API alone; concurrent deposits through both lose no update."""
    with cluster(tmp_path, pg_url) as c:
        api = NodeProc(
            "API", tmp_path / "api", free_port(), tmp_path / "api.log", ["--store", pg_url, "--enclaves", "0"]
        )
        c.nodes.append(api)
        api.start()
        api.wait_ready()
        key = SigningKey()
        with (
            Client(c.a.url, trust=c.trust, signer=key) as on_a,
            Client(c.b.url, trust=c.trust, signer=key) as on_b,
            Client(api.url, trust=c.trust, signer=key) as on_api,
        ):
            assert on_a.worker().encryption_key == on_b.worker().encryption_key  # one worker
            assert on_a.run("simple-wallet", [b"deposit savings 50"]) == [b"WALLET RESULT: savings::50"]
            assert on_b.run("simple-wallet", [b"balance savings"]) == [b"WALLET RESULT: savings::50"]
            assert on_api.run("simple-wallet", [b"deposit savings 1"]) == [b"WALLET RESULT: savings::51"]

            worker = on_b.worker()
            order = build(worker, "hello", [b"from B"])
            assert submit(on_b, order)
            assert open_result(order, worker, result_of(on_a, order)) == [b"Hello from B"]
            receipt = on_api.receipt(order.work_order_id)  # served and proven by a node that ran nothing
            assert (receipt.status_name, receipt.work_order_id) == ("COMPLETED", order.work_order_id)

            def deposits(client: Client, n: int) -> None:
                for _ in range(n):
                    client.run("simple-wallet", [b"deposit shared 1"])

            threads = [threading.Thread(target=deposits, args=(cl, 15)) for cl in (on_a, on_b, on_api)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert on_a.run("simple-wallet", [b"balance shared"]) == [b"WALLET RESULT: shared::45"]


def test_sigkill_of_a_whole_node_under_load_loses_nothing(tmp_path, pg_url):
    """B's process group is killed mid-stream with orders claimed and in its enclave: after its lease, A takes
    them over; every acknowledged order (by either node) has exactly one verified answer."""
    with cluster(tmp_path, pg_url) as c:
        with Client(c.a.url, trust=c.trust) as client:
            worker = client.worker()
        with Load([c.a.url, c.b.url], c.trust, worker, b"30000", requesters=4) as load:
            load.until(60)
            c.b.kill_holding_claims(pg_url)
            with Load([c.a.url], c.trust, worker, b"30000", requesters=1) as after:
                after.until(20)
        check_answered_once(pg_url, c.a.url, c.trust, worker, load.acknowledged + after.acknowledged, 30000)
        assert "took back" in c.a.log.read_text()  # B died holding claims: A took them over


def test_the_server_dropping_every_connection_loses_nothing(tmp_path, pg_url):
    """pg_terminate_backend on every connection of both nodes, twice, under load: they reconnect, and every
    acknowledged order is answered once."""
    with cluster(tmp_path, pg_url) as c:
        with Client(c.a.url, trust=c.trust) as client:
            worker = client.worker()
        with Load([c.a.url, c.b.url], c.trust, worker, b"5000") as load:
            load.until(30)
            assert terminate_backends(pg_url) >= 4  # each node: writer, reader, listener
            load.until(len(load.acknowledged) + 30)
            terminate_backends(pg_url)
            load.until(len(load.acknowledged) + 30)
        check_answered_once(pg_url, c.b.url, c.trust, worker, load.acknowledged, 5000)
        assert "reconnected" in c.a.log.read_text() + c.b.log.read_text()


def _postgres_restart() -> list[str] | None:
    """The command that restarts the local server (Debian's pg_ctlcluster, as root), if this machine has one."""
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions or shutil.which("pg_ctlcluster") is None or os.geteuid() != 0:
        return None
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "restart"]


def test_a_server_restart_under_load_loses_nothing(tmp_path, pg_url):
    restart = _postgres_restart()
    if restart is None:
        reason = "restarting PostgreSQL needs Debian's pg_ctlcluster, as root, on the machine running the server"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    with cluster(tmp_path, pg_url) as c:
        with Client(c.a.url, trust=c.trust) as client:
            worker = client.worker()
        with Load([c.a.url, c.b.url], c.trust, worker, b"5000") as load:
            load.until(30)
            subprocess.run(restart, check=True, capture_output=True, timeout=120)
            load.until(len(load.acknowledged) + 40, timeout=120)
        check_answered_once(pg_url, c.a.url, c.trust, worker, load.acknowledged, 5000)


PROXY = """
import asyncio, sys
async def pipe(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    finally:
        w.close()
async def serve(r, w):
    ur, uw = await asyncio.open_connection("127.0.0.1", int(sys.argv[2]))
    await asyncio.gather(pipe(r, uw), pipe(ur, w), return_exceptions=True)
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", int(sys.argv[1]))
    print("ready", flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


def test_a_node_cut_off_from_the_database_loses_its_claims_to_the_others(tmp_path, pg_url):
    """B reaches PostgreSQL through a TCP proxy; the proxy is stopped with B's orders claimed. A takes them over
    once B's lease runs out; when B gets through again, its late answers are dropped: each order is answered
    once, by whoever held its claim."""
    server = psycopg.conninfo.conninfo_to_dict(pg_url)
    proxy_port = free_port()
    via_proxy = psycopg.conninfo.make_conninfo(pg_url, host="127.0.0.1", port=str(proxy_port))

    def start_proxy() -> subprocess.Popen:
        p = subprocess.Popen(
            [sys.executable, "-c", PROXY, str(proxy_port), str(server.get("port", 5432))],
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        assert p.stdout is not None and p.stdout.readline().strip() == b"ready"
        return p

    proxy = start_proxy()
    try:
        with cluster(tmp_path, pg_url, b_store=via_proxy) as c:
            with Client(c.a.url, trust=c.trust) as client:
                worker = client.worker()
            with Load([c.a.url, c.b.url], c.trust, worker, b"30000", requesters=4) as load:
                load.until(40)
                c.b.holding_claims(pg_url)
                os.killpg(proxy.pid, signal.SIGKILL)  # B's every connection to the database is cut
                proxy.wait(10)
                with Load([c.a.url], c.trust, worker, b"30000", requesters=1) as after:
                    after.until(15)
                    deadline = time.monotonic() + 60
                    while "took back" not in c.a.log.read_text():
                        assert time.monotonic() < deadline, "A never took over B's claims"
                        time.sleep(0.2)
                proxy = start_proxy()  # B gets through again: its held answers are late
            assert c.b.proc is not None and c.b.proc.poll() is None  # B kept running all along
            check_answered_once(pg_url, c.a.url, c.trust, worker, load.acknowledged + after.acknowledged, 30000)
    finally:
        if proxy.poll() is None:
            os.killpg(proxy.pid, signal.SIGKILL)
            proxy.wait(10)
