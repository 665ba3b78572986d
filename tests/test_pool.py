"""The pool with real processes: one key manager, work-order enclaves it provisions, failover, two nodes."""

import json
import logging
import os
import signal
import sys
import time

import pytest
from msgspec import to_builtins

from adytum.cli import main as cli
from adytum.client import Client, build, open_result
from adytum.issuer.devroot import init_dev_root
from adytum.manager import EnclaveStartError
from adytum.protocol import EeaError, Status
from support import running_node, two_hosts

FIB = b"20000"


def wait_for_result(client, order, seconds=60):
    deadline = time.monotonic() + seconds
    while True:
        try:
            return client.call("WorkOrderGetResult", {"workOrderId": order.params.work_order_id})
        except EeaError as exc:
            if exc.code != Status.PENDING or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def submit_all(client, orders, during=None, at=None):
    """Submit without waiting; call `during()` after order number `at`."""
    for i, order in enumerate(orders):
        try:
            client.call("WorkOrderSubmit", to_builtins(order.params))
        except EeaError as exc:
            assert exc.code == Status.PENDING
        if during is not None and i == at:
            during()


def eventually(predicate, seconds=60):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def answered_once(node, orders):
    rows = node.node.reader.db.execute(
        "SELECT work_order_id, COUNT(*) FROM responses GROUP BY work_order_id"
    ).fetchall()
    counts = dict(rows)
    return all(counts.get(o.params.work_order_id) == 1 for o in orders)


def assert_no_key_material(data_dir, text):
    """Unseal the key manager's keys as only the enclave should, to prove none of them was logged."""
    from adytum.attestation.measurement import measure
    from adytum.crypto import rsa_private_to_der
    from adytum.enclave.keys import WorkerKeys
    from adytum.enclave.sealing import Sealer, platform_secret

    keys = WorkerKeys.unseal(
        Sealer(platform_secret(data_dir), measure(include_plugins=False).mr_enclave),
        (data_dir / "kme" / "worker-keys.sealed").read_bytes(),
    )
    secrets = [keys.signing.secret.hex(), rsa_private_to_der(keys.encryption)[-40:].hex(), "PRIVATE KEY"]
    assert text and not any(s in text for s in secrets)


def test_one_key_manager_provisions_every_enclave(tmp_path, capsys):
    with running_node(tmp_path, enclaves=2) as n, Client(n.url, trust=n.trust) as client:
        status = client.call("PoolStatus", {})
        kme, wpes = status["keyManager"], status["enclaves"]
        assert kme["state"] == "running" and kme["location"] == "local" and kme["provisioned"] == 2
        assert [e["state"] for e in wpes] == ["running", "running"]
        record = n.node.manager.publisher.identity
        assert {e["mr_enclave"] for e in wpes} == {record.mr_enclave} and kme["mr_enclave"]
        assert len({e["pid"] for e in wpes} | {kme["pid"]}) == 3  # three processes
        for _ in range(8):
            assert client.run("hello", [b"pool"]) == [b"Hello pool"]
        assert cli(["pool", "--uri", n.url, "--json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert sum(e["served"] for e in shown["enclaves"]) == 8 and shown["workerId"] == n.node.manager.worker_id
        assert cli(["pool", "--uri", n.url]) == 0
        assert "kme" in capsys.readouterr().out
    assert (tmp_path / "kme" / "worker-keys.sealed").exists() and not (tmp_path / "enclave").exists()


def test_killed_work_order_enclave_loses_nothing_and_is_provisioned_again(tmp_path, caplog):
    with running_node(tmp_path, enclaves=2) as n, Client(n.url, trust=n.trust) as client:
        worker = client.worker()
        victim = n.node.manager.enclaves[0]
        orders = [build(worker, "fib", [FIB]) for _ in range(60)]
        submit_all(client, orders, during=lambda: os.kill(victim.pid, signal.SIGKILL), at=20)
        results = [open_result(o, worker, wait_for_result(client, o)) for o in orders]
        assert len({r[0] for r in results}) == 1  # all the same, correct value
        eventually(lambda: victim.serving)
        assert victim.restarts >= 1 and n.node.manager.kme.provisioned >= 3  # the restart was provisioned
        assert answered_once(n, orders)
        assert client.run("hello", [b"after"]) == [b"Hello after"]
    assert "already answered" not in caplog.text


def test_killed_key_manager_comes_back_with_the_same_keys_and_enclaves_keep_serving(tmp_path):
    with running_node(tmp_path, enclaves=2) as n, Client(n.url, trust=n.trust) as client:
        worker = client.worker()
        kme = n.node.manager.kme.process
        first_pid, first_key = kme.pid, kme.identity.verifying_key
        orders = [build(worker, "fib", [FIB]) for _ in range(30)]
        submit_all(client, orders, during=lambda: os.kill(first_pid, signal.SIGKILL), at=5)
        for order in orders:  # the enclaves hold their keys: serving never stops
            open_result(order, worker, wait_for_result(client, order))
        eventually(lambda: kme.serving and kme.pid != first_pid)
        assert kme.identity.verifying_key == first_key and kme.restarts == 1
        wpe = n.node.manager.enclaves[1]
        os.kill(wpe.pid, signal.SIGKILL)  # now a restarted enclave needs the new key manager
        eventually(lambda: wpe.alive or wpe.restarts > 0)
        for _ in range(6):
            assert client.run("hello", [b"again"]) == [b"Hello again"]
        eventually(lambda: wpe.serving)
        assert wpe.identity.verifying_key == first_key
        assert client.call("PoolStatus", {})["keyManager"]["restarts"] == 1


def test_a_second_node_joins_the_key_manager_over_tcp(tmp_path, capsys):
    a, b = two_hosts(tmp_path)
    with running_node(a, kme_listen="127.0.0.1:0") as na:
        address = na.node.manager.kme_server.address
        with running_node(b, join=address) as nb, Client(nb.url, trust=nb.trust) as client:
            ia, ib = na.node.manager.publisher.identity, nb.node.manager.publisher.identity
            assert (ib.verifying_key, ib.encryption_key) == (ia.verifying_key, ia.encryption_key)
            assert client.run("fib", [b"30"]) == [b"832040"]
            status = client.call("PoolStatus", {})
            assert status["keyManager"]["location"] == address and status["keyManager"]["state"] == "reachable"
            assert na.node.manager.kme.provisioned == 2  # A's own enclave and B's
            # B cannot rotate: the keys are A's
            with pytest.raises(EnclaveStartError, match="rotate the key there"):
                nb.call(nb.node.manager.keys.rotate)
            # A rotates; B picks the new key up at its next refresh
            before = na.node.manager.publisher.identity
            na.call(na.node.manager.keys.rotate)
            rotated = na.node.manager.publisher.identity
            assert rotated.encryption_key != before.encryption_key
            nb.call(nb.node.manager.keys.refresh)
            assert nb.node.manager.publisher.identity.encryption_key == rotated.encryption_key
            assert client.run("hello", [b"rotated"]) == [b"Hello rotated"]
    capsys.readouterr()


def test_an_idle_enclave_killed_comes_back_at_once(tmp_path):
    with running_node(tmp_path, enclaves=2) as n, Client(n.url, trust=n.trust) as client:
        victim = n.node.manager.enclaves[0]
        kme = n.node.manager.kme.process
        pids = victim.pid, kme.pid
        served = victim.served
        os.kill(victim.pid, signal.SIGKILL)  # idle: no order is sent until it is back
        os.kill(kme.pid, signal.SIGKILL)
        eventually(lambda: victim.serving and victim.pid != pids[0] and kme.serving and kme.pid != pids[1])
        status = client.call("PoolStatus", {})
        assert status["enclaves"][0]["restarts"] == 1 and status["enclaves"][0]["state"] == "running"
        assert status["enclaves"][0]["pid"] == victim.pid and status["keyManager"]["restarts"] == 1
        assert victim.served == served  # no order brought it back
        assert victim.identity.verifying_key == n.node.manager.publisher.identity.verifying_key
        assert client.run("hello", [b"back"]) == [b"Hello back"]


def test_a_joined_node_sees_the_key_manager_go_away_and_come_back(tmp_path):
    """No order is sent: the joined node's probe alone notices."""
    from test_crash import free_port

    a, b = two_hosts(tmp_path)
    with running_node(a, kme_listen=f"127.0.0.1:{free_port()}") as na:  # a fixed port: it opens again
        with running_node(b, join=na.node.manager.kme_server.address) as nb:
            nb.node.manager.kme.probe_seconds = 0.2
            state = lambda: nb.node.manager.status.pool_status().key_manager.state  # noqa: E731
            assert state() == "reachable"
            server = na.node.manager.kme_server
            na.call(server.stop)  # the key manager's port closes
            eventually(lambda: state() == "unreachable")
            assert "unreachable" in nb.node.manager.kme.last_error
            na.call(server.start)  # the same address again
            eventually(lambda: state() == "reachable")


def test_the_readme_two_host_recipe_runs(tmp_path):
    """The README's two-host lines, run as written (one enclave each, local ports): B serves A's worker."""
    import re
    import subprocess
    from pathlib import Path

    from adytum.client import Trust
    from test_crash import free_port, stop_node, wait_ready

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = readme.split("A pool on two hosts", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    lines = [line.split("#", 1)[0].split() for line in block.splitlines() if line.startswith("adytum ")]
    assert [line[1] for line in lines] == ["init", "init", "pool", "pool", "up", "up"]
    ports = {"1947": [str(free_port()), str(free_port())], "1948": str(free_port())}
    nodes, uris = [], []

    def local(word: str) -> str:  # the hosts' directories under tmp_path, their ports free ones on 127.0.0.1
        if word == "1947":
            return ports["1947"].pop(0)
        word = re.sub(r"^(0\.0\.0\.0|hostA):1948$", f"127.0.0.1:{ports['1948']}", word)
        return re.sub(r"^(A|B)(?=/|$)", lambda m: str(tmp_path / m[1]), word)

    try:
        for line in lines:
            args = [local(word) for word in line[1:]]
            if args[0] != "up":
                assert cli([*args, "--json"]) == 0, line
                continue
            port = args[args.index("--port") + 1]
            log = (tmp_path / f"node-{len(nodes)}.log").open("wb")
            nodes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "adytum", *args, "--enclaves", "1"], stdout=log, stderr=subprocess.STDOUT
                )
            )
            uris.append(f"http://127.0.0.1:{port}")
            wait_ready(uris[-1], nodes[-1])
        with Client(uris[1], trust=Trust.from_files([tmp_path / "B" / "devroot" / "root.pem"])) as client:
            assert client.run("hello", [b"two hosts"]) == [b"Hello two hosts"]
            status = client.call("PoolStatus", {})
            assert status["keyManager"]["state"] == "reachable" and status["keyManager"]["location"] != "local"
        with Client(uris[0]) as a:
            assert a.call("PoolStatus", {})["keyManager"]["provisioned"] == 2  # A's enclave and B's
    finally:
        for node in nodes:
            stop_node(node)


def test_a_joined_node_keeps_serving_when_the_key_manager_host_goes_away(tmp_path):
    from contextlib import ExitStack

    a, b = two_hosts(tmp_path)
    with ExitStack() as host_a:
        na = host_a.enter_context(running_node(a, kme_listen="127.0.0.1:0"))
        with running_node(b, join=na.node.manager.kme_server.address) as nb, Client(nb.url, trust=nb.trust) as c:
            host_a.close()  # host A (and its key manager) goes away
            assert c.run("hello", [b"alone"]) == [b"Hello alone"]
            published = nb.node.manager.publisher.proof_data
            nb.call(nb.node.manager.keys.refresh)  # cannot provision again: re-attests the keys the enclaves hold
            assert nb.node.manager.publisher.proof_data != published
            assert c.call("PoolStatus", {})["keyManager"]["state"] == "unreachable"
            assert c.run("hello", [b"still"]) == [b"Hello still"]


UPGRADE = """
from adytum.workloads import Workload


class Upgraded(Workload):
    name = "upgraded"

    def execute(self, ctx, inputs):
        return [b"new build"]
"""


def test_an_unlisted_build_is_refused_until_the_operator_allows_it(tmp_path, caplog, capsys):
    from adytum.attestation.measurement import measure

    a, b = two_hosts(tmp_path)
    (b / "workloads").mkdir()
    (b / "workloads" / "upgraded.py").write_text(UPGRADE)
    (b / "workloads.toml").write_text('upgraded = "upgraded:Upgraded"\n')
    with running_node(a, kme_listen="127.0.0.1:0") as na:
        address = na.node.manager.kme_server.address
        caplog.set_level(logging.INFO)
        with pytest.raises(EnclaveStartError, match="not in the key manager's policy"):
            with running_node(b, join=address):
                pass
        assert "refused" in caplog.text and "adytum pool allow" in caplog.text
        assert_no_key_material(a, caplog.text)
        assert na.node.manager.kme.provisioned == 1  # only A's own enclave got keys
        capsys.readouterr()
        assert cli(["workloads", "--data-dir", str(b), "--json"]) == 0
        new_build = json.loads(capsys.readouterr().out)["mr_enclave"]
        assert new_build != measure().mr_enclave.hex()
        assert cli(["pool", "allow", new_build, "--data-dir", str(a), "--json"]) == 0
        with running_node(b, join=address) as nb, Client(nb.url, trust=nb.trust) as client:
            assert client.run("upgraded", [b""]) == [b"new build"]
            assert nb.node.manager.publisher.identity.verifying_key == na.node.manager.publisher.identity.verifying_key
    capsys.readouterr()


def test_a_plugin_upgrade_on_one_node_keeps_the_worker_once_the_operator_allows_it(tmp_path, capsys):
    with running_node(tmp_path) as n:
        before = n.node.manager.publisher.identity
    (tmp_path / "workloads").mkdir()
    (tmp_path / "workloads" / "upgraded.py").write_text(UPGRADE)
    (tmp_path / "workloads.toml").write_text('upgraded = "upgraded:Upgraded"\n')
    with pytest.raises(EnclaveStartError, match="not in the key manager's policy"):
        with running_node(tmp_path):  # the key manager still unseals; the new build is not allowed yet
            pass
    capsys.readouterr()
    assert cli(["workloads", "--data-dir", str(tmp_path), "--json"]) == 0
    new_build = json.loads(capsys.readouterr().out)["mr_enclave"]
    assert cli(["pool", "allow", new_build, "--data-dir", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["wpe_mr_enclaves"] == [before.mr_enclave, new_build]
    with running_node(tmp_path) as n, Client(n.url, trust=n.trust) as client:
        after = n.node.manager.publisher.identity
        assert after.mr_enclave == new_build and after.verifying_key == before.verifying_key
        assert after.encryption_key == before.encryption_key and client.run("upgraded", [b""]) == [b"new build"]


def test_a_node_that_does_not_trust_the_other_host_is_refused(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    init_dev_root(a / "devroot")
    init_dev_root(b / "devroot")
    with running_node(a, kme_listen="127.0.0.1:0") as na:
        with pytest.raises(EnclaveStartError, match="trusted"):
            with running_node(b, join=na.node.manager.kme_server.address):
                pass


def test_joining_an_unreachable_key_manager_fails_clearly(tmp_path):
    init_dev_root(tmp_path / "devroot")
    with pytest.raises(Exception, match="unreachable"):
        with running_node(tmp_path, join="127.0.0.1:9"):
            pass


def test_pool_allow_and_trust_refuse_bad_values(tmp_path, capsys):
    assert cli(["pool", "allow", "xyz", "--data-dir", str(tmp_path), "--json"]) == 1
    assert cli(["pool", "trust", str(tmp_path / "missing.pem"), "--data-dir", str(tmp_path), "--json"]) == 1
    (tmp_path / "junk.pem").write_text("not a certificate")
    assert cli(["pool", "trust", str(tmp_path / "junk.pem"), "--data-dir", str(tmp_path), "--json"]) == 1
    out = capsys.readouterr().out
    assert out.count('"ok": false') == 3


def test_the_key_manager_port_survives_garbage_and_refuses_other_workers(tmp_path, caplog):
    import asyncio
    import socket
    import struct

    import msgspec

    from adytum.crypto import sha256
    from adytum.enclave.provisioning import Offer
    from adytum.manager.errors import ProvisioningRefused
    from adytum.manager.pool import RemoteKeyManager
    from adytum.manager.relay import MAX_RELAY_FRAME, parse_address

    with running_node(tmp_path, kme_listen="127.0.0.1:0") as n:
        address = n.node.manager.kme_server.address
        for junk in (
            b"\xff" * 64,
            struct.pack(">I", MAX_RELAY_FRAME + 1),
            struct.pack(">I", 5) + b"\x01\x02\x03\x04\x05",
        ):
            with socket.create_connection(parse_address(address)) as s:
                s.sendall(junk)
                s.settimeout(10)
                assert s.recv(1024) == b""  # dropped, nothing answered
        other = sha256(b"another worker").hex()
        offer = msgspec.msgpack.encode(Offer(other, bytes(32), bytes(16)))
        with pytest.raises(ProvisioningRefused, match="another worker|holds worker"):
            asyncio.run(RemoteKeyManager(address).exchange(offer))
        with pytest.raises(ProvisioningRefused, match="no open handshake"):
            asyncio.run(
                RemoteKeyManager(address).exchange(
                    msgspec.msgpack.encode({"type": "response", "session": bytes(16)}), "SIMULATED-IAS", "{}"
                )
            )
        n.node.manager.kme_server.offers_per_minute = 4  # the offer for another worker was the first
        offers = [
            asyncio.run(
                RemoteKeyManager(address).exchange(
                    msgspec.msgpack.encode(Offer(n.node.manager.worker_id, os.urandom(32), os.urandom(16)))
                )
            )
            for _ in range(3)
        ]
        assert all(o.proof for o in offers)  # three challenges, each with the key manager's evidence
        with pytest.raises(ProvisioningRefused, match="too many handshakes"):
            asyncio.run(RemoteKeyManager(address).exchange(offer))
        assert n.node.manager.kme.process.alive
        n.call(n.node.manager.keys.refresh)  # and it still provisions its own enclaves
        assert n.node.manager.kme.provisioned >= 2
    assert "dropped" in caplog.text and "refused" in caplog.text


def test_a_data_directory_from_before_pools_is_refused_not_silently_rekeyed(tmp_path):
    (tmp_path / "enclave").mkdir()
    (tmp_path / "enclave" / "worker-keys.sealed").write_bytes(b"sealed by an old build")
    with pytest.raises(EnclaveStartError, match="cannot be migrated"):
        with running_node(tmp_path):
            pass
    assert not (tmp_path / "kme" / "worker-keys.sealed").exists()


def test_a_malformed_policy_stops_the_node_and_pool_allow_naming_the_file(tmp_path, capsys):
    from adytum.datadir import DataDir, PolicyError

    data = DataDir(tmp_path)
    assert data.allowed_builds() == []  # no policy: nothing is allowed
    data.kme.mkdir()
    data.policy.write_text('{"wpe_mr_enclaves": ["xyz"]}')
    with pytest.raises(PolicyError, match="policy.json: wpe_mr_enclaves must be a list of 64-hex-digit"):
        with running_node(tmp_path):
            pass
    assert cli(["pool", "allow", "ab" * 32, "--data-dir", str(tmp_path), "--json"]) == 1
    shown = json.loads(capsys.readouterr().out)
    assert shown["ok"] is False and str(data.policy) in shown["error"]
    assert data.policy.read_text() == '{"wpe_mr_enclaves": ["xyz"]}'  # left for the operator to fix


def test_each_identity_is_attested_once_at_start(tmp_path, monkeypatch):
    from collections import Counter

    from adytum.node import SimulatedAttestation

    quotes: list[bytes] = []
    attest = SimulatedAttestation.attest

    def counting(self, quote):
        quotes.append(quote)
        return attest(self, quote)

    monkeypatch.setattr(SimulatedAttestation, "attest", counting)
    with running_node(tmp_path, enclaves=2) as n, Client(n.url, trust=n.trust) as client:
        published = n.node.manager.publisher
        # the key manager's admission, then per enclave: the key manager's challenge, the enclave's
        # response and its admission; publishing reuses the admission's evidence
        assert len(quotes) == 1 + 2 * 3 and max(Counter(quotes).values()) == 1
        assert published.identity.quote in quotes
        record = client.worker().record
        assert record["details"]["workerTypeData"]["proofData"] == published.proof_data
