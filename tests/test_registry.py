"""The registry over real HTTP: operator-signed changes, paging, key get/set/rotate, stale workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import msgspec
import pytest

from adytum import crypto, operator
from adytum.client import SUITES, Client, UntrustedWorker, WorkerInfo, build, open_result
from adytum.crypto import KeySuite
from adytum.issuer.quoter import SimulatedQuoter, load_quoting_key
from adytum.manager.errors import EnclaveStartError
from adytum.protocol import EeaError, RegistryStatus, Status, to_builtins
from adytum.store import SqliteStore, Store, WorkerRow
from support import running_node


@pytest.fixture(scope="module")
def reg(tmp_path_factory):
    with running_node(tmp_path_factory.mktemp("registry"), enclaves=2) as n:
        yield n


def op_key(n) -> crypto.SigningKey:
    return operator.load_private(n.node.config.data_dir / "operator" / "operator-key.pem")


def rpc(n, method: str, params: dict) -> dict:
    with Client(n.url) as c:
        try:
            return {"result": c.call(method, params)}
        except EeaError as exc:
            return {"error": {"code": exc.code, "message": exc.message}}


def foreign(worker_id: str, org: str = "aa") -> dict:
    return {
        "workerId": worker_id,
        "workerType": 1,
        "organizationId": org,
        "applicationTypeId": "bb",
        "details": {"hashingAlgorithm": "SHA-256", "workerTypeData": {"verificationKey": "elsewhere"}},
    }


def signed(n, method: str, params: dict, nonce: int | None = None) -> dict:
    return operator.sign(method, params, op_key(n), nonce)


# -- operator-only changes -------------------------------------------------------------------------


def test_registry_changes_need_the_operator_signature(reg):
    unsigned = rpc(reg, "WorkerRegister", foreign("a1"))
    assert unsigned["error"]["code"] == RegistryStatus.ACCESS_DENIED and "operator" in unsigned["error"]["message"]
    stranger = operator.sign("WorkerRegister", foreign("a1"), crypto.SigningKey())
    assert rpc(reg, "WorkerRegister", stranger)["error"]["code"] == RegistryStatus.ACCESS_DENIED
    tampered = {**signed(reg, "WorkerRegister", foreign("a1")), "organizationId": "cc"}
    assert rpc(reg, "WorkerRegister", tampered)["error"]["code"] == RegistryStatus.ACCESS_DENIED
    other_method = signed(reg, "WorkerUpdate", {"workerId": "a1", "details": {}})
    assert rpc(reg, "WorkerSetStatus", {**other_method, "status": 2})["error"]["code"] == RegistryStatus.ACCESS_DENIED

    good = signed(reg, "WorkerRegister", foreign("a1"))
    assert rpc(reg, "WorkerRegister", good) == {"result": None}
    replayed = rpc(reg, "WorkerRegister", good)
    assert replayed["error"]["code"] == RegistryStatus.ACCESS_DENIED and "replayed" in replayed["error"]["message"]
    older = signed(reg, "WorkerSetStatus", {"workerId": "a1", "status": 2}, nonce=int(good["operatorNonce"]) - 1)
    assert rpc(reg, "WorkerSetStatus", older)["error"]["code"] == RegistryStatus.ACCESS_DENIED
    again = rpc(reg, "WorkerRegister", signed(reg, "WorkerRegister", foreign("A1")))
    assert (
        again["error"]["code"] == RegistryStatus.INVALID_PARAMETER and "already registered" in again["error"]["message"]
    )
    record = rpc(reg, "WorkerRetrieve", {"workerId": "0xA1"})["result"]
    assert record["organizationId"] == "aa" and record["status"] == 1


def test_bad_registry_params_get_code_2_even_when_signed(reg):
    for method, params in (
        ("WorkerRegister", {**foreign("a2"), "workerType": 7}),
        ("WorkerRegister", {**foreign("a2"), "surprise": 1}),
        ("WorkerSetStatus", {"workerId": "a1", "status": 9}),
        ("WorkerUpdate", {"workerId": "not-hex", "details": {}}),
        ("WorkerSetStatus", {"workerId": "ffff", "status": 2}),
    ):
        reply = rpc(reg, method, signed(reg, method, params))
        assert reply["error"]["code"] == RegistryStatus.INVALID_PARAMETER, (method, params, reply)


def test_update_and_status(reg):
    assert "result" in rpc(reg, "WorkerRegister", signed(reg, "WorkerRegister", foreign("b1")))
    assert "result" in rpc(
        reg,
        "WorkerUpdate",
        signed(reg, "WorkerUpdate", {"workerId": "b1", "details": {"hashingAlgorithm": "KECCAK-256"}}),
    )
    record = rpc(reg, "WorkerRetrieve", {"workerId": "b1"})["result"]
    assert record["details"]["hashingAlgorithm"] == "KECCAK-256"
    assert record["details"]["workerTypeData"] == {"verificationKey": "elsewhere"}  # merged, not replaced
    assert "result" in rpc(reg, "WorkerSetStatus", signed(reg, "WorkerSetStatus", {"workerId": "b1", "status": 3}))
    assert rpc(reg, "WorkerRetrieve", {"workerId": "b1"})["result"]["status"] == 3

    hosted = reg.node.manager.worker_id
    swap = rpc(
        reg,
        "WorkerUpdate",
        signed(
            reg,
            "WorkerUpdate",
            {"workerId": hosted, "details": {"workerTypeData": {"encryptionKey": "host's own key"}}},
        ),
    )
    assert swap["error"]["code"] == RegistryStatus.ACCESS_DENIED
    for field in ("keyEncryptionAlgorithm", "keyEncryptionAlgorithms"):  # what the enclaves offer, not the host
        claim = {"workerId": hosted, "details": {field: ["RSA-OAEP-3072"]}}
        assert (
            rpc(reg, "WorkerUpdate", signed(reg, "WorkerUpdate", claim))["error"]["code"]
            == RegistryStatus.ACCESS_DENIED
        )


def test_a_worker_served_elsewhere_takes_no_orders_here(reg):
    rpc(reg, "WorkerRegister", signed(reg, "WorkerRegister", foreign("c1")))
    with Client(reg.url, trust=reg.trust) as c:
        worker = c.worker(reg.node.manager.worker_id)
    order = build(worker, "hello", [b"x"])
    params = {**to_builtins(order.params), "workerId": "c1"}
    reply = rpc(reg, "WorkOrderSubmit", params)
    assert reply["error"]["code"] == Status.INVALID_PARAMETER and "served elsewhere" in reply["error"]["message"]


def test_an_offline_worker_is_refused_and_its_status_survives_a_restart(tmp_path):
    with running_node(tmp_path) as n:
        wid = n.node.manager.worker_id
        assert "result" in rpc(n, "WorkerSetStatus", signed(n, "WorkerSetStatus", {"workerId": wid, "status": 2}))
        with Client(n.url, trust=n.trust) as c:
            with pytest.raises(EeaError, match="not active"):
                c.worker(wid)
        info = WorkerInfo.from_record(wid, rpc(n, "WorkerRetrieve", {"workerId": wid})["result"])
        reply = rpc(n, "WorkOrderSubmit", to_builtins(build(info, "hello", [b"x"]).params))
        assert reply["error"]["code"] == Status.INVALID_PARAMETER and "not active" in reply["error"]["message"]
    with running_node(tmp_path) as n:  # the re-published record keeps the operator's status
        assert rpc(n, "WorkerRetrieve", {"workerId": wid})["result"]["status"] == 2
        assert "result" in rpc(n, "WorkerSetStatus", signed(n, "WorkerSetStatus", {"workerId": wid, "status": 1}))
        with Client(n.url, trust=n.trust) as c:
            assert c.run("hello", [b"back"], worker_id=wid) == [b"Hello back"]


# -- lookups -----------------------------------------------------------------------------------------


def test_lookup_pages_with_a_working_tag(tmp_path):
    with running_node(tmp_path) as n:
        n.node.api.registry.page_size = 2
        for i in range(5):
            rpc(n, "WorkerRegister", signed(n, "WorkerRegister", foreign(f"d{i}", org="0d")))
        first = rpc(n, "WorkerLookUp", {"organizationId": "0x0D"})["result"]
        assert first == {"totalCount": 5, "lookupTag": "d1", "ids": ["d0", "d1"]}
        seen = list(first["ids"])
        tag = first["lookupTag"]
        while tag:
            page = rpc(n, "WorkerLookUpNext", {"organizationId": "0d", "lookUpTag": tag})["result"]
            assert page["totalCount"] == 5
            seen += page["ids"]
            tag = page["lookupTag"]
        assert seen == [f"d{i}" for i in range(5)]
        avalon_spelling = rpc(n, "WorkerLookUpNext", {"organizationId": "0d", "lookupTag": "d3"})["result"]
        assert avalon_spelling["ids"] == ["d4"] and avalon_spelling["lookupTag"] == ""
        assert rpc(n, "WorkerLookUp", {"workerType": 1})["result"]["totalCount"] == 6  # with the hosted worker
        assert rpc(n, "WorkerLookUpNext", {})["error"]["code"] == RegistryStatus.INVALID_PARAMETER
        assert rpc(n, "WorkerLookUp", {"workerType": 4})["error"]["code"] == RegistryStatus.INVALID_PARAMETER


def test_stale_workers_are_hidden_from_lookups(tmp_path):
    store = SqliteStore(tmp_path / "s.sqlite3")
    store.migrate()
    with store.transaction():
        store.put_worker(WorkerRow("e0", 1, "00", "00", 1, "{}", time.time() - 1))
        store.put_worker(WorkerRow("e1", 1, "00", "00", 1, "{}", time.time() + 3600))
        store.put_worker(WorkerRow("e2", 1, "00", "00", 1, "{}", None))
    assert store.workers({}) == (2, ["e1", "e2"])
    assert store.worker("e0") is not None  # still retrievable by id, so a requester can see why
    store.close()


def test_the_hosted_worker_goes_stale_without_renewal(tmp_path):
    with running_node(tmp_path) as n:
        wid = n.node.manager.worker_id
        assert rpc(n, "WorkerLookUp", {})["result"]["ids"] == [wid]
        row = n.node.reader.worker(wid)
        n.call(
            n.node.committer.run,
            Store.put_worker,
            WorkerRow(
                row.worker_id,
                row.worker_type,
                row.organization_id,
                row.application_type_id,
                row.status,
                row.record,
                time.time() - 1,
            ),
        )
        assert rpc(n, "WorkerLookUp", {})["result"] == {"totalCount": 0, "lookupTag": "", "ids": []}
        n.call(n.node.manager.keys.refresh)  # what the renewal task does before the lifetime runs out
        assert rpc(n, "WorkerLookUp", {})["result"]["ids"] == [wid]


# -- keys ----------------------------------------------------------------------------------------------


def test_encryption_key_get_is_signed_by_the_attested_worker(reg):
    with Client(reg.url, trust=reg.trust) as c:
        worker = c.worker(reg.node.manager.worker_id)
        key, nonce = c.encryption_key(worker)
    assert key == worker.encryption_key and nonce == worker.record["details"]["workerTypeData"]["encryptionKeyNonce"]
    reply = rpc(
        reg,
        "EncryptionKeyGet",
        {
            "workerId": worker.worker_id,
            "lastUsedKeyNonce": "",
            "tag": "",
            "requesterId": "",
            "signatureNonce": "",
            "signature": "",
        },
    )["result"]
    assert set(reply) == {"workerId", "encryptionKey", "encryptionKeyNonce", "tag", "signature"}
    forged = WorkerInfo(
        worker.worker_id, crypto.SigningKey().public_pem(), worker.encryption_key, worker.encryption_key_signature
    )
    with Client(reg.url) as c, pytest.raises(UntrustedWorker, match="not signed by the worker"):
        c.encryption_key(forged)
    assert rpc(reg, "EncryptionKeyGet", {"workerId": worker.worker_id, "tag": "x"})["error"]["code"] == 2
    assert rpc(reg, "EncryptionKeyGet", {"workerId": "abcd"})["error"]["code"] == 2


def test_encryption_key_set_takes_only_the_key_the_enclaves_hold(reg):
    wid = reg.node.manager.worker_id
    current = rpc(reg, "EncryptionKeyGet", {"workerId": wid})["result"]
    params = {k: current[k] for k in ("workerId", "encryptionKey", "encryptionKeyNonce", "tag", "signature")}
    assert rpc(reg, "EncryptionKeySet", params) == {"result": None}
    host_key = crypto.rsa_public_pem(crypto.rsa_generate())
    swapped = rpc(reg, "EncryptionKeySet", {**params, "encryptionKey": host_key})
    assert swapped["error"]["code"] == RegistryStatus.INVALID_SIGNATURE
    signed_by_host = crypto.b64encode(crypto.SigningKey().sign_digest(b"\0" * 32))
    assert (
        rpc(reg, "EncryptionKeySet", {**params, "signature": signed_by_host})["error"]["code"]
        == RegistryStatus.INVALID_SIGNATURE
    )


def test_rotate_key_keeps_in_flight_orders_working(reg):
    wid = reg.node.manager.worker_id
    data_dir = reg.node.config.data_dir
    with Client(reg.url, trust=reg.trust) as c:
        old_worker = c.worker(wid)
        old_key_set = {k: v for k, v in rpc(reg, "EncryptionKeyGet", {"workerId": wid})["result"].items()}
        # encrypted to the keys about to be replaced, in every suite
        in_flight = {suite: build(old_worker, "hello", [b"in flight"], suite=suite) for suite in SUITES}

        rotated = subprocess.run(
            [
                sys.executable,
                "-m",
                "adytum",
                "worker",
                "rotate-key",
                "--uri",
                reg.url,
                "--data-dir",
                str(data_dir),
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        assert rotated.returncode == 0, rotated.stderr
        new_key = json.loads(rotated.stdout)["encryptionKey"]
        assert new_key != old_worker.encryption_key
        assert all(e.identity.encryption_key == new_key for e in reg.node.manager.enclaves)

        for order in in_flight.values():
            reply = c.call("WorkOrderSubmit", {**to_builtins(order.params), "responseTimeoutMSecs": 30000})
            assert open_result(order, old_worker, reply) == [b"Hello in flight"]

        c.forget(wid)
        new_worker = c.worker(wid)  # attestation re-verified: the new report binds the new key
        assert new_worker.encryption_key == new_key and c.encryption_key(new_worker)[0] == new_key
        assert set(new_worker.hpke_keys) == set(old_worker.hpke_keys)  # every HPKE key rotated with the RSA key
        assert not set(new_worker.hpke_keys.values()) & set(old_worker.hpke_keys.values())
        assert c.run("hello", [b"new key"], worker_id=wid) == [b"Hello new key"]

        # The worker's signature on the old key is genuine, but its enclaves no longer hold it as current.
        stale = rpc(
            reg,
            "EncryptionKeySet",
            {k: old_key_set[k] for k in ("workerId", "encryptionKey", "encryptionKeyNonce", "tag", "signature")},
        )
        assert stale["error"]["code"] == RegistryStatus.ACCESS_DENIED

        # The history (default: one attestation lifetime) keeps every key rotated out since: orders built from
        # each older record still run.
        workers = [old_worker, new_worker]
        for _ in range(2):
            c.operator_call("EncryptionKeyRotate", {"workerId": wid}, op_key(reg))
            c.forget(wid)
            workers.append(c.worker(wid))
        assert len({w.encryption_key for w in workers}) == 4
        for i, worker in enumerate(workers):
            order, answer = c.submit(worker, "hello", [b"%d" % i], wait_ms=30000)
            assert c.result(order, worker, result=answer) == [b"Hello %d" % i]
        record = c.call("WorkerRetrieve", {"workerId": wid})["details"]["workerTypeData"]
        previous = [k["encryptionKey"] for k in record["previousEncryptionKeys"]]
        assert previous == [w.encryption_key for w in reversed(workers[:3])]  # newest first
        history = record["previousEncryptionKeys"]
        assert all(k["servesUntil"] - k["retiredAt"] == reg.node.config.manager.attestation_lifetime for k in history)
        shown = subprocess.run(
            [
                sys.executable,
                "-m",
                "adytum",
                "workers",
                "show",
                wid,
                "--uri",
                reg.url,
                "--trust-root",
                str(reg.root_pem),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shown.returncode == 0, shown.stderr
        assert "the current one and 3 previous" in shown.stdout and shown.stdout.count("decrypts until") == 3


def test_keys_older_than_the_history_are_refused_clearly(tmp_path):
    """A short history (one second): a key past it is named in the refusal, and gone at the next rotation."""
    with running_node(tmp_path, key_history=1.0) as n, Client(n.url, trust=n.trust) as c:
        wid = n.node.manager.worker_id
        old = c.worker(wid)
        n.call(n.node.manager.keys.rotate)
        deadline = time.monotonic() + 60

        def refusal(worker, suite: str = "rsa") -> str:
            order = build(worker, "hello", [b"late"], suite=suite)
            try:
                c.call("WorkOrderSubmit", {**to_builtins(order.params), "responseTimeoutMSecs": 30000})
            except EeaError as exc:
                assert exc.code == Status.INVALID_PARAMETER
                return exc.message
            return ""

        while not (message := refusal(old)):
            assert time.monotonic() < deadline, "the previous key kept serving past its history"
            time.sleep(0.2)
        assert "previous encryption key of this worker" in message and "stopped serving" in message
        hpke = refusal(old, "hpke")  # the HPKE keys retired with the RSA key stopped serving with it
        assert f"previous {KeySuite.HPKE_X25519} key of this worker" in hpke and "stopped serving" in hpke
        n.call(n.node.manager.keys.rotate)  # deleted now
        message = refusal(old)
        assert "does not decrypt with this worker's encryption key or the 1 previous key(s)" in message
        assert "does not decrypt with this worker's HPKE" in refusal(old, "mlkem-x25519")
        c.forget(wid)
        assert c.run("hello", [b"current"], worker_id=wid) == [b"Hello current"]


def test_rotate_key_needs_the_operator(reg):
    wid = reg.node.manager.worker_id
    assert rpc(reg, "EncryptionKeyRotate", {"workerId": wid})["error"]["code"] == RegistryStatus.ACCESS_DENIED
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "adytum",
            "worker",
            "rotate-key",
            "--uri",
            reg.url,
            "--data-dir",
            str(reg.node.config.data_dir / "nowhere"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert cli.returncode == 1 and "operator key" in cli.stderr


# -- the manager's own checks --------------------------------------------------------------------


def test_the_manager_refuses_a_debug_enclave_and_a_swapped_key(reg):
    manager = reg.node.manager
    ident = manager.publisher.identity
    quoter = SimulatedQuoter(
        load_quoting_key(manager.config.data_dir / "devroot"),
        bytes.fromhex(ident.mr_enclave),
        bytes.fromhex(ident.mr_signer),
        debug=True,
    )
    from adytum.attestation.verify import report_data_for

    debug = msgspec.structs.replace(
        ident,
        quote=quoter.quote(
            report_data_for(ident.verifying_key, ident.encryption_key, ident.worker_id, ident.hpke_keys)
        ),
    )
    with pytest.raises(EnclaveStartError, match="(?i)debug"):
        manager.admit(debug)
    host_key = crypto.rsa_public_pem(crypto.rsa_generate())
    with pytest.raises(EnclaveStartError, match="(?i)report.?data|bind"):
        manager.admit(msgspec.structs.replace(ident, encryption_key=host_key))
    manager.admit(ident)  # the genuine identity passes


def test_a_restarted_enclave_is_admitted_again(tmp_path):
    with running_node(tmp_path) as n:
        enclave = n.node.manager.enclaves[0]
        with Client(n.url, trust=n.trust) as c:
            worker = c.worker()
            assert c.run("hello", [b"one"]) == [b"Hello one"]
            n.node.manager.config.allowed_mr_enclaves = ("00" * 32,)  # the policy changed: this build is out
            os.kill(enclave.pid, signal.SIGKILL)
            order = build(worker, "hello", [b"two"])
            with pytest.raises(EeaError) as failed:
                c.call("WorkOrderSubmit", {**to_builtins(order.params), "responseTimeoutMSecs": 60000})
        assert failed.value.code == Status.FAILED
        assert not enclave.alive


def test_the_node_renews_its_attestation_before_it_goes_stale(tmp_path):
    with running_node(tmp_path, attestation_lifetime=2.0) as n:  # renewed every 0.5 s
        wid = n.node.manager.worker_id
        first = n.node.reader.worker(wid).expires_at
        record = n.node.reader.worker(wid).record
        for _ in range(200):
            if n.node.reader.worker(wid).expires_at > first:
                break
            time.sleep(0.05)
        renewed = n.node.reader.worker(wid)
        assert renewed.expires_at > first and renewed.record != record  # a new report, a new nonce
        assert rpc(n, "WorkerLookUp", {})["result"]["ids"] == [wid]
        with Client(n.url, trust=n.trust) as c:
            assert c.run("hello", [b"fresh"]) == [b"Hello fresh"]
