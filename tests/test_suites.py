"""Key-encryption suites: RSA-OAEP next to HPKE (X25519) and HPKE (ML-KEM-768 + X25519).

The HPKE suites are pyca's implementation; these tests check it against the published vectors (RFC 9180 for
X25519, draft-ietf-hpke-pq for the hybrid KEM, tests/vectors/hpke/README.md), then what adytum builds on it:
the enclave's unwrap with the order bound into `info`, the keys' sealing and rotation, the attestation's binding
of the HPKE keys, the SDK's choice of suite, and whole orders through a real node in each suite.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from adytum import crypto
from adytum.attestation.verify import report_data_for
from adytum.client import SUITES, Client, UntrustedWorker, WorkerInfo, build, open_result
from adytum.crypto import HpkeKey, KeySuite
from adytum.enclave.keys import WorkerKeys, _SealedKeys, load_or_create
from adytum.enclave.processor import Refused, WorkOrderProcessor
from adytum.enclave.sealing import Sealer
from adytum.enclave.suites import SuiteKeys
from adytum.protocol import EeaError, Status, WorkOrderParams, decode_params, encode, session_key_info, to_builtins
from adytum.workloads import load_workloads

VECTORS = Path(__file__).parent / "vectors" / "hpke"
WORKER_ID = crypto.sha256(b"suites-test").hex()
HYBRID = KeySuite.HPKE_MLKEM768_X25519
needs_mlkem = pytest.mark.skipif(
    HYBRID not in crypto.hpke_suites(), reason="this OpenSSL has no ML-KEM (the pinned cryptography wheel has)"
)


def vector(name: str) -> dict[str, object]:
    return json.loads((VECTORS / name).read_text())


def h(value: object) -> bytes:
    return bytes.fromhex(str(value))


# --- the library against the published vectors ------------------------------------------------------------


def test_x25519_suite_is_rfc9180s_dhkem_x25519_hkdf_sha256_aes256gcm():
    v = vector("rfc9180-x25519-sha256-aes256gcm-base.json")
    assert (v["mode"], v["kem_id"], v["kdf_id"], v["aead_id"]) == (0, 0x20, 1, 2)
    key = HpkeKey(KeySuite.HPKE_X25519, h(v["skRm"]))
    assert key.public == h(v["pkRm"])  # the published key is the RFC's SerializePublicKey
    first = v["encryptions"][0]  # the vector's own ciphertext opens under its key schedule (sequence 0)
    assert AESGCM(h(v["key"])).decrypt(h(v["base_nonce"]), h(first["ct"]), h(first["aad"])) == h(first["pt"])
    # Single-shot HPKE has no aad: seal a session key under the vector's key and nonce; the library's decap
    # and key schedule (from skRm, enc and info alone) must arrive at the same key to open it.
    session_key = bytes(range(32))
    sealed = h(v["enc"]) + AESGCM(h(v["key"])).encrypt(h(v["base_nonce"]), session_key, b"")
    assert crypto.hpke_unwrap_session_key(key, sealed, h(v["info"])) == session_key
    with pytest.raises(crypto.CryptoError):
        crypto.hpke_unwrap_session_key(key, sealed, h(v["info"]) + b"!")  # info is bound


@needs_mlkem
def test_hybrid_suite_is_draft_ietf_hpke_pqs_mlkem768_x25519():
    v = vector("hpke-pq-mlkem768x25519-sha256-chacha20poly1305-base.json")
    assert (v["mode"], v["kem_id"], v["kdf_id"]) == (0, 0x647A, 1)
    # The vector's private key is the 32-byte seed that SHAKE256 expands into the ML-KEM-768 seed and the X25519
    # key; adytum seals those two as they are.
    expanded = hashlib.shake_256(h(v["skRm"])).digest(96)
    key = HpkeKey(HYBRID, expanded)
    assert key.public == h(v["pkRm"])  # ML-KEM-768 key then X25519 key: the draft's SerializePublicKey
    assert crypto.hpke_public_key(HYBRID, key.public) is not None
    first = v["encryptions"][0]
    cipher = ChaCha20Poly1305(h(v["key"]))
    assert cipher.decrypt(h(v["base_nonce"]), h(first["ct"]), h(first["aad"])) == h(first["pt"])
    session_key = bytes(range(32))
    sealed = h(v["enc"]) + cipher.encrypt(h(v["base_nonce"]), session_key, b"")
    private = hpke.MLKEM768X25519PrivateKey(
        mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64]),
        x25519.X25519PrivateKey.from_private_bytes(expanded[64:]),
    )
    vector_suite = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
    assert vector_suite.decrypt(sealed, private, info=h(v["info"])) == session_key  # decap + key schedule


@pytest.mark.parametrize("suite", crypto.hpke_suites())
def test_a_wrapped_session_key_opens_only_with_its_key_info_and_bytes(suite):
    key, other = HpkeKey.generate(suite), HpkeKey.generate(suite)
    assert "secret" not in repr(key) and repr(key.secret) not in repr(key) and repr(key.public) in repr(key)
    session_key = crypto.generate_aead_key()
    wrapped = crypto.hpke_wrap_session_key(suite, key.public, session_key, b"order 1")
    assert crypto.hpke_unwrap_session_key(HpkeKey(suite, key.secret), wrapped, b"order 1") == session_key
    for bad_key, blob, info in (
        (other, wrapped, b"order 1"),
        (key, wrapped, b"order 2"),
        (key, wrapped[:-1] + bytes([wrapped[-1] ^ 1]), b"order 1"),
        (key, wrapped[:10], b"order 1"),
        (key, b"", b"order 1"),
    ):
        with pytest.raises(crypto.CryptoError):
            crypto.hpke_unwrap_session_key(bad_key, blob, info)
    with pytest.raises(crypto.LengthError):
        crypto.hpke_wrap_session_key(suite, key.public, session_key[:31], b"")
    kem = {KeySuite.HPKE_X25519: hpke.KEM.X25519, HYBRID: hpke.KEM.MLKEM768_X25519}[suite]
    short = hpke.Suite(kem, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    smuggled = short.encrypt(b"k" * 31, crypto.hpke_public_key(suite, key.public), info=b"i")
    with pytest.raises(crypto.LengthError):
        crypto.hpke_unwrap_session_key(key, smuggled, b"i")
    with pytest.raises(crypto.LengthError):
        crypto.hpke_public_key(suite, key.public[:-1])


# --- the enclave ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> WorkerKeys:
    return WorkerKeys.generate(WORKER_ID)


def worker_of(keys: WorkerKeys) -> WorkerInfo:
    return WorkerInfo(
        keys.worker_id, keys.verifying_key, keys.encryption_key, keys.encryption_key_signature, hpke_keys=keys.hpke_keys
    )


def refusal(processor: WorkOrderProcessor, params: WorkOrderParams | bytes) -> EeaError:
    with pytest.raises(EeaError) as refused:
        processor.process(params if isinstance(params, bytes) else encode(params))
    return refused.value


@pytest.mark.parametrize("name", SUITES)
def test_the_enclave_opens_an_order_in_every_suite(keys, name):
    order = build(worker_of(keys), "hello", [b"suite"], suite=name)
    assert order.params.key_encryption_algorithm is SUITES[name]
    result = WorkOrderProcessor(keys, load_workloads()).process(encode(order.params))
    assert open_result(order, worker_of(keys), result) == [b"Hello suite"]


@pytest.mark.parametrize("name", ["hpke", "mlkem-x25519"])
def test_a_wrapped_key_moved_to_another_order_or_suite_is_refused(keys, name):
    processor = WorkOrderProcessor(keys, load_workloads())
    donor, host_order = (build(worker_of(keys), "hello", [b"x"], suite=name) for _ in range(2))
    moved = msgspec.structs.replace(host_order.params, encrypted_session_key=donor.params.encrypted_session_key)
    err = refusal(processor, moved)
    assert isinstance(err, Refused) and err.code == Status.INVALID_PARAMETER
    assert "under this order's ids" in err.message
    for junk in ("abc", "00" * 2048):  # odd-length hex; as long as the schema allows
        malformed = msgspec.structs.replace(donor.params, encrypted_session_key=junk)
        assert refusal(processor, malformed).code == Status.INVALID_PARAMETER
    other_suite = KeySuite.HPKE_X25519 if name != "hpke" else HYBRID
    for relabelled in (KeySuite.RSA_OAEP_3072, other_suite):
        p = msgspec.structs.replace(donor.params, key_encryption_algorithm=relabelled)
        assert "does not decrypt" in refusal(processor, p).message


def test_an_unknown_or_unoffered_suite_gets_a_clear_eea_error(keys):
    order = build(worker_of(keys), "hello", [b"x"], suite="hpke")
    raw = to_builtins(order.params) | {"keyEncryptionAlgorithm": "ROT13"}
    with pytest.raises(EeaError) as unknown:
        decode_params(encode(raw))  # what the listener does before it stores anything
    assert unknown.value.code == Status.INVALID_PARAMETER and "keyEncryptionAlgorithm" in unknown.value.message
    rsa_only = WorkerKeys(keys.worker_id, keys.signing, keys.encryption, keys.encryption_key_nonce)
    assert rsa_only.hpke_keys == {}
    err = refusal(WorkOrderProcessor(rsa_only, load_workloads()), order.params)
    assert err.code == Status.INVALID_PARAMETER
    assert err.message.startswith(f"keyEncryptionAlgorithm {KeySuite.HPKE_X25519} is not offered by this worker")
    assert "RSA-OAEP-3072" in err.message


def test_the_info_binds_worker_order_workload_requester_and_nonce(keys):
    p = build(worker_of(keys), "hello", [b"x"], suite="hpke").params
    base = session_key_info(p)
    assert session_key_info(msgspec.structs.replace(p, work_order_id="0x" + p.work_order_id.upper())) == base
    for field in ("worker_id", "work_order_id", "workload_id", "requester_id", "requester_nonce"):
        assert session_key_info(msgspec.structs.replace(p, **{field: "ab" + getattr(p, field)})) != base, field
    assert session_key_info(msgspec.structs.replace(p, in_data=[])) == base  # items are the request hash's


@pytest.mark.parametrize("name", ["hpke", "mlkem-x25519"])
def test_rotation_replaces_the_hpke_keys_and_the_history_serves_orders_in_flight(keys, name):
    in_flight = build(worker_of(keys), "hello", [b"x"], suite=name)
    rotated = keys.rotated(3600.0)
    assert rotated.hpke_keys.keys() == keys.hpke_keys.keys()
    assert not set(rotated.hpke_keys.values()) & set(keys.hpke_keys.values())
    assert WorkOrderProcessor(rotated, load_workloads()).process(encode(in_flight.params))
    past = keys.rotated(10.0, now=time.time() - 60)  # retired a minute ago, served for ten seconds
    late = refusal(WorkOrderProcessor(past, load_workloads()), in_flight.params).message
    assert f"previous {SUITES[name]} key of this worker" in late and "stopped serving" in late
    forgotten = keys.rotated(0.0)  # no history at all
    gone = refusal(WorkOrderProcessor(forgotten, load_workloads()), in_flight.params).message
    assert "does not decrypt" in gone and "under this order's ids" in gone


def test_hpke_keys_are_sealed_and_provisioned_with_the_rsa_key(keys):
    rotated = WorkerKeys.from_bytes(keys.rotated(3600.0).to_bytes())  # what is sealed is what a KME provisions
    assert rotated.history[0].suites.public() == keys.hpke_keys  # retired with the RSA key, kept in the history
    assert WorkerKeys.from_bytes(rotated.to_bytes()).hpke_keys == rotated.hpke_keys
    assert SuiteKeys.from_bytes(msgspec.msgpack.encode({"HPKE-from-the-future": b"?"})) == SuiteKeys()


def test_a_key_set_sealed_before_the_hpke_suites_gets_their_keys_once(tmp_path, keys):
    sealer = Sealer(b"s" * 32, b"build")
    old = msgspec.msgpack.encode(
        _SealedKeys(keys.worker_id, keys.signing.secret, crypto.rsa_private_to_der(keys.encryption), "00")
    )
    path = tmp_path / "worker-keys.sealed"
    path.write_bytes(sealer.seal("worker-keys.sealed", old))
    loaded = load_or_create(path, sealer, keys.worker_id)
    assert set(loaded.hpke_keys) == {suite.value for suite in crypto.hpke_suites()}
    assert loaded.encryption_key == keys.encryption_key and loaded.verifying_key == keys.verifying_key
    assert load_or_create(path, sealer, keys.worker_id).hpke_keys == loaded.hpke_keys  # sealed, not made again


# --- the attestation binding and the SDK ---------------------------------------------------------------------


def test_the_report_data_binds_every_hpke_key(keys):
    vk, ek, wid = keys.verifying_key, keys.encryption_key, keys.worker_id
    bound = report_data_for(vk, ek, wid, keys.hpke_keys)
    assert report_data_for(vk, ek, wid, dict(reversed(keys.hpke_keys.items()))) == bound  # order-free
    assert report_data_for(vk, ek, wid, {}) == report_data_for(vk, ek, wid)  # RSA-only workers: as before
    assert report_data_for(vk, ek, wid) != bound
    name, key = next(iter(keys.hpke_keys.items()))
    assert report_data_for(vk, ek, wid, {n: k for n, k in keys.hpke_keys.items() if n != name}) != bound
    assert report_data_for(vk, ek, wid, keys.hpke_keys | {name: "00" + key[2:]}) != bound
    assert report_data_for(vk, ek, wid, {name + key: ""}) != report_data_for(vk, ek, wid, {name: key})


def test_the_sdk_uses_hpke_when_offered_and_the_suite_asked_for(keys):
    both = worker_of(keys)
    assert build(both, "hello", [b"x"]).params.key_encryption_algorithm is KeySuite.HPKE_X25519
    rsa_only = WorkerInfo(keys.worker_id, keys.verifying_key, keys.encryption_key, keys.encryption_key_signature)
    assert build(rsa_only, "hello", [b"x"]).params.key_encryption_algorithm is KeySuite.RSA_OAEP_3072
    assert (
        build(both, "hello", [b"x"], suite=KeySuite.RSA_OAEP_3072.value).params.key_encryption_algorithm
        == "RSA-OAEP-3072"
    )
    with pytest.raises(EeaError) as unoffered:
        build(rsa_only, "hello", [b"x"], suite="mlkem-x25519")
    assert unoffered.value.code == Status.INVALID_PARAMETER and "does not offer" in unoffered.value.message
    with pytest.raises(ValueError, match="no key-encryption suite 'rot13'"):
        build(both, "hello", [b"x"], suite="rot13")
    with pytest.raises(ValueError, match="no key-encryption suite"):
        Client(suite="rot13")


@pytest.mark.parametrize(
    "published", [["not", "an object"], {KeySuite.HPKE_X25519.value: "zz"}, {KeySuite.HPKE_X25519.value: "00" * 31}]
)
def test_a_record_with_malformed_hpke_keys_is_untrusted(keys, published):
    record = {
        "details": {
            "workerTypeData": {
                "verificationKey": keys.verifying_key,
                "encryptionKey": keys.encryption_key,
                "encryptionKeySignature": keys.encryption_key_signature,
                "hpkeEncryptionKeys": published,
            }
        }
    }
    with pytest.raises(UntrustedWorker):
        WorkerInfo.from_record(keys.worker_id, record)


# --- whole orders through a real node -----------------------------------------------------------------------


def test_a_node_offers_every_suite_and_serves_each(node):
    with Client(node.url, trust=node.trust) as client:
        worker = client.worker()
    record = worker.record["details"]
    assert record["keyEncryptionAlgorithm"] == "RSA-OAEP-3072"  # what Avalon clients read, unchanged
    assert record["keyEncryptionAlgorithms"] == ["RSA-OAEP-3072", *(s.value for s in crypto.hpke_suites())]
    assert set(worker.suites) == {KeySuite.RSA_OAEP_3072, *crypto.hpke_suites()}
    for name in SUITES:
        with Client(node.url, trust=node.trust, suite=name) as client:
            assert client.run("hello", [name.encode()]) == [b"Hello " + name.encode()]


def test_a_host_that_strips_or_swaps_an_hpke_key_fails_attestation(node):
    with Client(node.url, trust=node.trust) as client:
        record = client.call("WorkerRetrieve", {"workerId": client.worker().worker_id})
    worker_id = node.node.manager.worker_id
    data = record["details"]["workerTypeData"]
    swapped = {
        **data["hpkeEncryptionKeys"],
        KeySuite.HPKE_X25519.value: HpkeKey.generate(KeySuite.HPKE_X25519).public.hex(),
    }
    for keys_shown in ({}, swapped):
        forged = {
            **record,
            "details": {**record["details"], "workerTypeData": {**data, "hpkeEncryptionKeys": keys_shown}},
        }
        with pytest.raises(UntrustedWorker, match="report data"):
            WorkerInfo.verified(worker_id, forged, node.trust)


def test_submit_and_bench_take_a_suite(node):
    def adytum(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "adytum", *argv, "--uri", node.url, "--trust-root", str(node.root_pem), "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    done = adytum("submit", "--workload", "hello", "--in-data", "pq", "--suite", "mlkem-x25519")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outputs"] == ["Hello pq"]
    wrong = adytum("submit", "--workload", "hello", "--in-data", "x", "--suite", "rot13")
    assert wrong.returncode != 0 and "invalid choice: 'rot13'" in wrong.stderr
    bench = adytum("bench", "-n", "20", "-c", "2", "--bound-samples", "10", "--suite", "rsa,hpke")
    assert bench.returncode == 0, bench.stderr
    summary = json.loads(bench.stdout)
    assert [run["suite"] for run in summary["runs"]] == ["rsa", "hpke"]
    assert all(run["orders"] == 20 and run["failed"] == 0 for run in summary["runs"])
    assert set(summary["suite_ratio"]) == {"hpke"}
    one = adytum("bench", "-n", "10", "-c", "2", "--bound-samples", "10", "--suite", "hpke")
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout)["suite"] == "hpke"  # one run: today's report, with its suite
    bad = adytum("bench", "-n", "10", "--suite", "rsa,rsa")
    assert bad.returncode != 0 and "each once" in bad.stdout


def test_the_cli_knows_the_sdks_suites():
    from adytum.cli.options import SUITE_NAMES

    assert SUITE_NAMES == tuple(SUITES)
