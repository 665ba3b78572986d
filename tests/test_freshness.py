"""Order and freshness that survive restarts, with real processes: strict per-requester ordering, the key
manager's counters refusing replayed orders and rolled-back state after a work-order enclave restart, and its
anchor on another node (loopback) refusing a whole data directory rolled back."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import time

import pytest

from adytum import crypto
from adytum.cli import main as cli
from adytum.client import Client, build, open_result
from adytum.issuer.devroot import init_dev_root
from adytum.manager import EnclaveStartError
from adytum.protocol import EeaError, Status, to_builtins
from support import running_node, two_hosts


def eventually(predicate, seconds=60):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def run_order(c: Client, order) -> list[bytes]:
    worker = c.worker()
    result = c.call("WorkOrderSubmit", {**to_builtins(order.params), "responseTimeoutMSecs": 30000})
    return open_result(order, worker, result)


def state_table(n) -> list[tuple[str, int, bytes]]:
    db = sqlite3.connect(n.node.config.data_dir / "adytum.sqlite3")
    try:
        return [(r[0], r[1], bytes(r[2])) for r in db.execute("SELECT item_id, version, value FROM state")]
    finally:
        db.close()


def restore_state_table(n, rows: list[tuple[str, int, bytes]]) -> None:
    """The host rolls its state rows back to an earlier copy (genuine, older sealed values)."""
    db = sqlite3.connect(n.node.config.data_dir / "adytum.sqlite3")
    with db:
        db.execute("DELETE FROM state")
        db.executemany("INSERT INTO state (item_id, version, value, updated_at) VALUES (?, ?, ?, 0)", rows)
    db.close()


def restart_enclave(n) -> None:
    """SIGKILL the (only) work-order enclave; wait until it is back, provisioned again."""
    enclave = n.node.manager.enclaves[0]
    restarts = enclave.restarts
    os.kill(enclave.pid, signal.SIGKILL)
    eventually(lambda: not enclave.alive or enclave.restarts > restarts)
    n.call(enclave.ensure_running)  # as the next order would
    eventually(lambda: enclave.restarts > restarts and enclave.serving)


def wallet(c: Client, *commands: str) -> list[str]:
    return [o.decode() for o in c.run("simple-wallet", [cmd.encode() for cmd in commands])]


def test_strict_mode_refuses_a_gap_a_reorder_and_a_repeat_default_mode_takes_any_order(tmp_path):
    key = crypto.SigningKey()
    with running_node(tmp_path) as n, Client(n.url, trust=n.trust, signer=key) as c:
        worker = c.worker()

        def strict(seq: int):
            return build(worker, "hello", [f"#{seq}".encode()], signer=key, requester_id=c.requester_id, sequence=seq)

        assert run_order(c, strict(1)) == [b"Hello #1"]
        with pytest.raises(EeaError) as gap:
            run_order(c, strict(3))
        assert gap.value.code == Status.INVALID_PARAMETER
        assert "requesterSequence 3 skips ahead: this requester's next sequence is 2" in gap.value.message
        assert run_order(c, strict(2)) == [b"Hello #2"]
        for old in (2, 1):  # a repeat, and an order older than the last
            with pytest.raises(EeaError, match=f"requesterSequence {old} was already used.*next sequence is 3"):
                run_order(c, strict(old))
        assert c.run("hello", [b"#3"], sequence=3) == [b"Hello #3"]

        # The host strips the sequence to run the order unordered: the signature no longer verifies.
        stripped = strict(4)
        stripped.params.requester_sequence = 0
        with pytest.raises(EeaError) as downgraded:
            run_order(c, stripped)
        assert downgraded.value.code == Status.INVALID_SIGNATURE

        # Default mode: nonces in any order, signed or not, are all run.
        for nonce in ("03", "01", "02"):  # RSA: an HPKE-wrapped key is bound to the nonce it was built with
            order = build(worker, "hello", [nonce.encode()], signer=key, requester_id=c.requester_id, suite="rsa")
            order = _with_nonce(order, key, nonce)
            assert run_order(c, order) == [f"Hello {nonce}".encode()]


def _with_nonce(order, key, nonce: str):
    """The same order with `requesterNonce` set by the requester (and signed again)."""
    from adytum.crypto import aead_encrypt
    from adytum.protocol import request_hash

    p = order.params
    p.requester_nonce = nonce
    digest = request_hash(p)
    sealed = aead_encrypt(order.session_key, digest)
    p.session_key_iv, p.encrypted_request_hash = sealed.iv.hex(), sealed.ciphertext.hex()
    p.requester_signature = crypto.b64encode(key.sign_digest(digest))
    return type(order)(p, order.session_key, sealed.iv, digest)


def test_an_old_strict_order_replayed_after_an_enclave_restart_is_refused(tmp_path):
    key = crypto.SigningKey()
    with running_node(tmp_path) as n, Client(n.url, trust=n.trust, signer=key) as c:
        worker = c.worker()
        first = build(worker, "hello", [b"once"], signer=key, requester_id=c.requester_id, sequence=1)
        assert run_order(c, first) == [b"Hello once"]
        assert c.run("hello", [b"twice"], sequence=2) == [b"Hello twice"]
        restart_enclave(n)  # the new enclave process has an empty in-memory replay window
        raw = json.dumps(to_builtins(first.params)).encode()
        reply = n.call(n.node.manager.enclaves[0].process, raw)  # the host replays the old order to it
        assert reply.code == Status.INVALID_PARAMETER and not reply.result
        assert "requesterSequence 1 was already used" in reply.message
        assert not reply.receipt_signature  # no worker-signed FAILED update the host could add to its receipt
    with running_node(tmp_path) as n:  # and after the whole node (key manager too) restarted
        reply = n.call(n.node.manager.enclaves[0].process, raw)
        assert "requesterSequence 1 was already used" in reply.message


def test_state_rows_rolled_back_are_refused_after_an_enclave_and_a_node_restart(tmp_path):
    key = crypto.SigningKey()
    with running_node(tmp_path, max_conflicts=5) as n, Client(n.url, trust=n.trust, signer=key) as c:
        wallet(c, "deposit acct 10")
        ten = state_table(n)
        assert wallet(c, "deposit acct 5") == ["WALLET RESULT: acct::15"]
        fifteen = state_table(n)
        restore_state_table(n, ten)  # the deposit of 5 was never read back: the key manager holds it pending
        restart_enclave(n)
        with pytest.raises(EeaError) as pending:
            wallet(c, "balance acct")
        assert pending.value.code == Status.FAILED and "rolled back" in pending.value.message

    with running_node(tmp_path, max_conflicts=5) as n, Client(n.url, trust=n.trust, signer=key) as c:  # KME too
        restore_state_table(n, fifteen)
        assert wallet(c, "balance acct") == ["WALLET RESULT: acct::15"]  # read back: the key manager has seen it
        restore_state_table(n, ten)
        restart_enclave(n)
        with pytest.raises(EeaError) as rolled_back:
            wallet(c, "balance acct")
        assert rolled_back.value.code == Status.FAILED and "refused as a rollback" in rolled_back.value.message
        restore_state_table(n, fifteen)  # the current rows back: all is well again
        assert wallet(c, "deposit acct 1") == ["WALLET RESULT: acct::16"]


def _restore(copy, data_dir) -> None:
    """The host restores its whole data directory (sealed counters, keys, store) from an older copy."""
    shutil.rmtree(data_dir)
    shutil.copytree(copy, data_dir)


def test_a_whole_data_directory_rolled_back_is_refused_with_a_peer_anchor(tmp_path, capsys):
    key = crypto.SigningKey()
    a, b = two_hosts(tmp_path)
    with running_node(b, kme_listen="127.0.0.1:0", worker_name="witness") as nb:
        witness = nb.node.manager.kme_server.address
        with running_node(a, anchor_peers=(witness,)) as na, Client(na.url, trust=na.trust, signer=key) as c:
            anchor = c.call("PoolStatus", {})["keyManager"]["anchor"]
            assert anchor.startswith(f"peers: {witness}") and "1 of 1 must acknowledge" in anchor
            record = c.call("WorkerRetrieve", {"workerId": c.worker().worker_id})
            assert record["details"]["workerTypeData"]["rollbackProtection"] == anchor
            assert wallet(c, "deposit acct 10") == ["WALLET RESULT: acct::10"]
            assert na.node.manager.kme.anchored >= 1  # the change was acknowledged before it was answered
        shutil.copytree(a, tmp_path / "copy")
        with running_node(a, anchor_peers=(witness,)) as na, Client(na.url, trust=na.trust, signer=key) as c:
            assert wallet(c, "deposit acct 5") == ["WALLET RESULT: acct::15"]
        _restore(tmp_path / "copy", a)
        with pytest.raises(EnclaveStartError, match=r"counters \(version \d+\) are older than its anchor's"):
            with running_node(a, anchor_peers=(witness,)):
                pass
        with pytest.raises(EnclaveStartError, match="anchored to 1 peers.*started with none"):
            with running_node(a):  # the host drops the anchor to get past it: refused too
                pass
        other = tmp_path / "c"  # the host swaps the witness for one that never heard of this key manager
        init_dev_root(other / "devroot")
        assert cli(["pool", "trust", str(other / "devroot" / "root.pem"), "--data-dir", str(a), "--json"]) == 0
        with running_node(other, kme_listen="127.0.0.1:0", worker_name="stranger") as nc:
            with pytest.raises(EnclaveStartError, match="only 0 of the 1 witnesses these counters were anchored to"):
                with running_node(a, anchor_peers=(nc.node.manager.kme_server.address,)):
                    pass
    with pytest.raises(EnclaveStartError, match="only 0 of 1 anchor peers vouched"):
        with running_node(a, anchor_peers=(witness,)):  # the witness is gone: the counters cannot be checked
            pass
    capsys.readouterr()


def test_without_an_anchor_a_whole_host_rollback_goes_unseen_and_every_report_says_so(tmp_path, capsys):
    key = crypto.SigningKey()
    with running_node(tmp_path / "n") as n, Client(n.url, trust=n.trust, signer=key) as c:
        assert c.call("PoolStatus", {})["keyManager"]["anchor"].startswith("none: a rollback of the whole host")
        record = c.call("WorkerRetrieve", {"workerId": c.worker().worker_id})
        assert "cannot be detected" in record["details"]["workerTypeData"]["rollbackProtection"]
        assert wallet(c, "deposit acct 10") == ["WALLET RESULT: acct::10"]
    shutil.copytree(tmp_path / "n", tmp_path / "copy")
    with running_node(tmp_path / "n") as n, Client(n.url, trust=n.trust, signer=key) as c:
        assert wallet(c, "deposit acct 5") == ["WALLET RESULT: acct::15"]
    _restore(tmp_path / "copy", tmp_path / "n")
    with running_node(tmp_path / "n") as n, Client(n.url, trust=n.trust, signer=key) as c:
        assert wallet(c, "balance acct") == ["WALLET RESULT: acct::10"]  # the rollback is not detected
        assert cli(["pool", "--uri", n.url]) == 0
        assert "cannot be detected" in capsys.readouterr().out


def test_a_joined_node_has_its_orders_checked_by_the_key_manager_it_joined(tmp_path):
    key = crypto.SigningKey()
    a, b = two_hosts(tmp_path)
    with running_node(a, kme_listen="127.0.0.1:0") as na:
        with running_node(b, join=na.node.manager.kme_server.address) as nb:
            with Client(nb.url, trust=nb.trust, signer=key) as via_b:  # counters relayed over TCP to A
                assert via_b.run("hello", [b"B"], sequence=1) == [b"Hello B"]
                record = via_b.call("WorkerRetrieve", {"workerId": via_b.worker().worker_id})
                assert "key manager at" in record["details"]["workerTypeData"]["rollbackProtection"]
            with Client(na.url, trust=na.trust, signer=key) as via_a:  # one sequence for the whole pool
                with pytest.raises(EeaError, match="requesterSequence 1 was already used"):
                    via_a.run("hello", [b"A"], sequence=1)
                assert via_a.run("hello", [b"A"], sequence=2) == [b"Hello A"]
