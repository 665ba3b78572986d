"""Rotating the worker's signing key on a real node: the old key hands over to the new one, the record carries
the chain (checked offline by the SDK), and what was signed under the old key (receipts, tree heads) still
verifies; state, restarts of enclaves and of the whole node carry on under the new key."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from adytum import crypto
from adytum.client import Client, UntrustedWorker, VerificationError, WorkerInfo, build, open_result
from adytum.protocol import key_handover_digest, to_builtins
from support import running_node
from test_pool import eventually


def adytum(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "adytum", *args], capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL
    )


def test_a_signing_key_rotation_hands_over_and_keeps_what_the_old_key_signed(tmp_path: Path) -> None:
    alice = crypto.SigningKey()
    with running_node(tmp_path / "node", enclaves=2) as n, Client(n.url, trust=n.trust, signer=alice) as c:
        wid = n.node.manager.worker_id
        old = c.worker(wid)
        assert old.previous_verifying_keys == ()
        assert c.run("simple-wallet", [b"deposit savings 100"]) == [b"WALLET RESULT: savings::100"]
        order, answer = c.submit(old, "hello", [b"before"], wait_ms=30_000)
        assert c.result(order, old, result=answer) == [b"Hello before"]
        c.receipt(order.work_order_id)  # a head signed by the old key covers it
        old_head = tmp_path / "old-head.json"
        old_head.write_bytes(msgspec.json.encode(c.ledger_head()))
        in_flight = build(old, "hello", [b"in flight"])  # encrypted to the old encryption key
        kme_key = n.node.manager.kme.process.identity.verifying_key

        rotated = adytum("worker", "rotate-key", "--signing", "--uri", n.url, "--data-dir", str(tmp_path / "node"))
        assert rotated.returncode == 0, rotated.stderr
        assert "signing key" in rotated.stdout

        c.forget(wid)
        new = c.worker(wid)  # attested anew: the report binds the new key
        assert new.verifying_key != old.verifying_key and new.previous_verifying_keys == (old.verifying_key,)
        new.descends_from(old.verifying_key)  # the requester who trusted the old key follows the chain
        with pytest.raises(UntrustedWorker, match="does not descend"):
            new.descends_from(crypto.SigningKey().public_pem())
        assert all(e.identity.verifying_key == new.verifying_key for e in n.node.manager.enclaves)
        assert n.node.manager.kme.process.identity.verifying_key == kme_key  # the key manager's face stays

        # An order built from the old record runs; its answer is signed by the new key, which the SDK
        # accepts once the current record shows that the old key handed over to it.
        reply = c.call_raw("WorkOrderSubmit", {**to_builtins(in_flight.params), "responseTimeoutMSecs": 30000})
        with pytest.raises(VerificationError, match="signature"):
            open_result(in_flight, old, reply)
        assert c.result(in_flight, old, result=reply) == [b"Hello in flight"]
        # The state (keyed by the worker's first secret) is the same state.
        assert c.run("simple-wallet", [b"withdraw savings 30"]) == [b"WALLET RESULT: savings::70"]
        # The receipt of the order run under the old key verifies: its update under the old key, the head under the new.
        receipt = c.receipt(order.work_order_id)
        assert receipt.updates and receipt.head.treeSize > 0
        document = tmp_path / "receipt.json"
        got = adytum(
            "receipt", "get", order.work_order_id, "--uri", n.url, "-o", str(document), "--trust-root", str(n.root_pem)
        )
        assert got.returncode == 0, got.stderr
        offline = adytum("receipt", "verify", str(document), "--trust-root", str(n.root_pem), "--json")
        assert offline.returncode == 0 and json.loads(offline.stdout)["ok"] is True, offline.stderr
        # The ledger went on from the head the old key signed, and both heads verify.
        new_head = tmp_path / "new-head.json"
        assert adytum("ledger", "head", "--uri", n.url, "-o", str(new_head)).returncode == 0
        extends = adytum("ledger", "verify", str(old_head), str(new_head), "--uri", n.url)
        assert extends.returncode == 0, extends.stderr + extends.stdout

        shown = adytum("workers", "show", wid, "--uri", n.url, "--trust-root", str(n.root_pem))
        assert shown.returncode == 0 and "handed over 1 time(s)" in shown.stdout, shown.stderr

        # A work-order enclave killed now comes back with the new keys and is admitted.
        victim = n.node.manager.enclaves[0]
        pid = victim.pid
        os.kill(pid, signal.SIGKILL)
        eventually(lambda: victim.serving and victim.pid != pid)
        assert victim.identity.verifying_key == new.verifying_key
        for _ in range(4):
            assert c.run("hello", [b"after"]) == [b"Hello after"]

    # The whole node restarted: the sealed keys bring the chain along.
    with running_node(tmp_path / "node") as n, Client(n.url, trust=n.trust, signer=alice) as c:
        again = c.worker(wid)
        assert again.verifying_key == new.verifying_key and again.previous_verifying_keys == (old.verifying_key,)
        assert c.run("simple-wallet", [b"balance savings"]) == [b"WALLET RESULT: savings::70"]
        assert c.receipt(order.work_order_id).updates


def test_a_broken_handover_chain_is_refused_offline(tmp_path: Path) -> None:
    with running_node(tmp_path) as n, Client(n.url, trust=n.trust) as c:
        wid = n.node.manager.worker_id
        n.call(n.node.manager.keys.rotate, True)
        n.call(n.node.manager.keys.rotate, True)
        record = c.call("WorkerRetrieve", {"workerId": wid})
    chain = record["details"]["workerTypeData"]["signingKeyHandovers"]
    assert len(chain) == 2 and chain[0]["nextKey"] == chain[1]["previousKey"]
    info = WorkerInfo.verified(wid, record, n.trust)  # no node needed from here on
    assert len(info.previous_verifying_keys) == 2
    info.descends_from(chain[0]["previousKey"])  # the first key, two handovers back

    def broken(change) -> dict:
        tampered = copy.deepcopy(record)
        change(tampered["details"]["workerTypeData"]["signingKeyHandovers"])
        return tampered

    outsider = crypto.SigningKey()
    digest = key_handover_digest(wid, 1, outsider.public_pem(), chain[1]["nextKey"])
    grafted = {  # a well-signed step, from a key the chain never reached
        "previousKey": outsider.public_pem(),
        "nextKey": chain[1]["nextKey"],
        "signature": crypto.b64encode(outsider.sign_digest(digest)),
    }
    cases = {
        "is not signed by the key it hands over from": lambda c: c[0].update(previousKey=outsider.public_pem()),
        "is not signed": lambda c: c.reverse(),  # each step's place in the chain is signed
        "does not start from the key": lambda c: c.__setitem__(1, grafted),
        "do not lead to its verification key": lambda c: c.pop(),
        "lacks": lambda c: c[1].pop("signature"),
    }
    for message, change in cases.items():
        with pytest.raises(UntrustedWorker, match=message):
            WorkerInfo.from_record(wid, broken(change))
    swapped = broken(lambda c: c[0].update(signature=c[1]["signature"]))  # a genuine signature, of another step
    with pytest.raises(UntrustedWorker, match="is not signed"):
        WorkerInfo.from_record(wid, swapped)


def test_the_anchor_outlives_signing_key_rotations_of_the_worker_and_of_its_witness(tmp_path: Path) -> None:
    """The key manager's records and witness statements stay under the worker's first key: after rotations on
    both sides the witness still vouches, and a rolled-back copy of the data directory is still refused."""
    import shutil

    from adytum.manager import EnclaveStartError
    from support import two_hosts

    key = crypto.SigningKey()
    a, b = two_hosts(tmp_path)
    with running_node(b, kme_listen="127.0.0.1:0", worker_name="witness") as nb:
        witness = nb.node.manager.kme_server.address
        with running_node(a, anchor_peers=(witness,)) as na, Client(na.url, trust=na.trust, signer=key) as c:
            assert c.run("simple-wallet", [b"deposit acct 10"]) == [b"WALLET RESULT: acct::10"]
        shutil.copytree(a, tmp_path / "copy")  # from before the rotations
        with running_node(a, anchor_peers=(witness,)) as na, Client(na.url, trust=na.trust, signer=key) as c:
            na.call(na.node.manager.keys.rotate, True)
            nb.call(nb.node.manager.keys.rotate, True)  # the witness's worker rotates too
            c.forget(na.node.manager.worker_id)
            assert c.run("simple-wallet", [b"deposit acct 5"]) == [b"WALLET RESULT: acct::15"]
        with running_node(a, anchor_peers=(witness,)) as na, Client(na.url, trust=na.trust, signer=key) as c:
            assert c.run("simple-wallet", [b"deposit acct 1"]) == [b"WALLET RESULT: acct::16"]  # still vouched for
        shutil.rmtree(a)
        shutil.copytree(tmp_path / "copy", a)
        with pytest.raises(EnclaveStartError, match=r"counters \(version \d+\) are older than its anchor's"):
            with running_node(a, anchor_peers=(witness,)):
                pass
