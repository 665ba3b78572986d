"""The enclave's work-order processing: every refusal has its code, and nothing else escapes."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adytum import crypto
from adytum.client import WorkerInfo, build, open_result
from adytum.client.workorder import VerificationError
from adytum.enclave.keys import WorkerKeys
from adytum.enclave.processor import WorkOrderProcessor
from adytum.protocol import EeaError, Status, encode, to_builtins
from adytum.protocol.limits import MAX_DATA_BYTES, MAX_ITEMS, MAX_RESULT_BYTES
from adytum.workloads import Workload, load_workloads
from adytum.workloads.fib import fibonacci


class Boom(Workload):
    name = "boom"

    def execute(self, ctx, inputs):
        raise RuntimeError("private detail that must not leak")


class Sized(Workload):
    """Returns what it is told: `<count> <size>` → count items of size bytes."""

    name = "sized"

    def execute(self, ctx, inputs):
        count, size = map(int, inputs[0].split())
        return [b"\0" * size] * count


@pytest.fixture(scope="module")
def keys():
    return WorkerKeys.generate(crypto.sha256(b"test-worker").hex())


@pytest.fixture
def proc(keys):
    return WorkOrderProcessor(keys, {**load_workloads(), "boom": Boom(), "sized": Sized()})


@pytest.fixture
def worker(keys):
    return WorkerInfo(keys.worker_id, keys.verifying_key, keys.encryption_key, keys.encryption_key_signature)


def _params(order) -> dict:
    return to_builtins(order.params)


def _refused(proc, params: dict) -> EeaError:
    with pytest.raises(EeaError) as err:
        proc.process(encode(params))
    return err.value


def test_round_trip_with_signature(proc, worker):
    order = build(worker, "hello", [b"Bob", b"Alice"], signer=crypto.SigningKey())
    assert open_result(order, worker, proc.process(encode(order.params))) == [b"Hello Bob", b"Hello Alice"]


def test_every_output_has_a_fresh_iv(proc, worker):
    order = build(worker, "echo-result", [b"a", b"b", b"c"])
    result = json.loads(proc.process(encode(order.params)))
    ivs = [item["iv"] for item in result["outData"]] + [order.params.session_key_iv]
    ivs += [item.iv for item in order.params.in_data]
    assert len(set(ivs)) == len(ivs)
    assert all(item["dataHash"] == "" for item in result["outData"])  # no plaintext hash leaks


def test_fib_exact(proc, worker):
    order = build(worker, "fib", [b"0", b"1", b"10", b"100000"])
    out = open_result(order, worker, proc.process(encode(order.params)))
    assert out[:3] == [b"0", b"1", b"55"]
    a, b = 0, 1  # an independent oracle: plain iteration
    for _ in range(100_000):
        a, b = b, a + b
    assert len(out[3]) == 20899 and out[3].startswith(b"25974069347221724166")
    assert int(out[3]) == a and fibonacci(1000) == int(
        "43466557686937456435688527675040625802564660517371780402481729089536555417949051890403879840079255169295922593080322634775209689623239873322471161642996440906533187938298969649928516003704476137795166849228875"
    )


@pytest.mark.parametrize("bad", [b"-1", b"abc", b"100001", b"1e3", b"", b"9999999"])
def test_fib_bad_n(proc, worker, bad):
    order = build(worker, "fib", [bad])
    err = _refused(proc, _params(order))
    assert err.code == Status.INVALID_PARAMETER and "fib" in err.message


def test_replayed_work_order_id_and_nonce(proc, worker):
    order = build(worker, "hello", [b"x"])
    proc.process(encode(order.params))
    assert "replayed work order" in _refused(proc, _params(order)).message
    again = build(worker, "hello", [b"x"], requester_id=order.params.requester_id)
    p = _params(again)
    p["requesterNonce"] = order.params.requester_nonce
    assert "replayed requester nonce" in _refused(proc, p).message


def test_refused_request_does_not_burn_its_id(proc, worker):
    order = build(worker, "hello", [b"x"])
    p = _params(order)
    p["inData"][0]["data"] = crypto.b64encode(b"\x00" * 20)
    _refused(proc, p)
    assert open_result(order, worker, proc.process(encode(order.params))) == [b"Hello x"]


def test_tampered_ciphertext(proc, worker):
    p = _params(build(worker, "hello", [b"secret"]))
    blob = bytearray(crypto.b64decode(p["inData"][0]["data"]))
    blob[0] ^= 1
    p["inData"][0]["data"] = crypto.b64encode(bytes(blob))
    err = _refused(proc, p)
    # the item is covered by the request hash, so tampering is caught there first
    assert err.code == Status.INVALID_PARAMETER and "tampered" in err.message


def test_tampered_request_hash(proc, worker):
    p = _params(build(worker, "hello", [b"x"]))
    h = bytearray(bytes.fromhex(p["encryptedRequestHash"]))
    h[3] ^= 0xFF
    p["encryptedRequestHash"] = h.hex()
    assert "tampered" in _refused(proc, p).message


def test_swapped_field_breaks_the_hash(proc, worker):
    p = _params(build(worker, "hello", [b"x"]))
    p["requesterId"] = "ab" * 32
    assert "hash mismatch" in _refused(proc, p).message


def test_wrong_requester_signature(proc, worker):
    order = build(worker, "hello", [b"x"], signer=crypto.SigningKey())
    p = _params(order)
    p["verifyingKey"] = crypto.SigningKey().public_pem()
    assert _refused(proc, p).code == Status.INVALID_SIGNATURE
    p = _params(order)
    p["requesterSignature"] = "!!notbase64"
    assert _refused(proc, p).code == Status.INVALID_SIGNATURE
    p = _params(order)
    del p["verifyingKey"]
    assert _refused(proc, p).code == Status.INVALID_SIGNATURE


def test_session_key_for_another_worker(proc, worker):
    other = WorkerKeys.generate(worker.worker_id)
    stranger = WorkerInfo(worker.worker_id, other.verifying_key, other.encryption_key, other.encryption_key_signature)
    err = _refused(proc, _params(build(stranger, "hello", [b"x"])))
    assert "does not decrypt with this worker" in err.message


def test_unknown_workload_and_wrong_worker(proc, worker):
    assert _refused(proc, _params(build(worker, "no-such-thing", [b"x"]))).code == Status.INVALID_WORKLOAD
    p = _params(build(worker, "hello", [b"x"]))
    p["workloadId"] = "ff"
    assert _refused(proc, p).code == Status.INVALID_WORKLOAD
    p = _params(build(worker, "hello", [b"x"]))
    p["workerId"] = "cd" * 32
    assert "another worker" in _refused(proc, p).message


def test_iv_reuse_refused_by_default(proc, worker):
    p = _params(build(worker, "hello", [b"x", b"y"]))
    p["inData"][1]["iv"] = p["inData"][0]["iv"]
    assert "reused" in _refused(proc, p).message or "tampered" in _refused(proc, p).message
    order = build(worker, "hello", [b"x"])
    p = _params(order)
    p["inData"][0]["iv"] = ""
    err = _refused(proc, p)
    assert err.code == Status.INVALID_PARAMETER


def test_workload_crash_is_contained(proc, worker):
    err = _refused(proc, _params(build(worker, "boom", [b"x"])))
    assert err.code == Status.FAILED and "private detail" not in err.message
    assert open_result(*_run(proc, worker, "hello", [b"still alive"])) == [b"Hello still alive"]


def test_a_result_larger_than_a_result_holds_is_refused_and_the_largest_item_passes(proc, worker):
    (largest,) = open_result(*_run(proc, worker, "sized", [f"1 {MAX_DATA_BYTES}".encode()]))
    assert len(largest) == MAX_DATA_BYTES  # its base64 ciphertext is exactly MAX_DATA long: the SDK takes it
    for count, size in ((1, MAX_DATA_BYTES + 1), (MAX_ITEMS + 1, 1), (3, MAX_RESULT_BYTES // 3 + 1)):
        err = _refused(proc, _params(build(worker, "sized", [f"{count} {size}".encode()])))
        assert err.code == Status.FAILED and "more than a result holds" in err.message


def _run(proc, worker, workload, inputs):
    order = build(worker, workload, inputs)
    return order, worker, proc.process(encode(order.params))


def test_result_tampering_is_caught_by_the_sdk(proc, worker):
    order = build(worker, "hello", [b"x"])
    result = json.loads(proc.process(encode(order.params)))
    result["outData"][0]["data"] = crypto.b64encode(b"\x00" * 17)
    with pytest.raises(VerificationError):
        open_result(order, worker, result)


@pytest.mark.parametrize(
    "field,value",
    [
        ("workOrderId", "xyz"),
        ("workOrderId", 5),
        ("inData", []),
        ("inData", "nope"),
        ("encryptedSessionKey", "zz"),
        ("sessionKeyIv", "abcd"),
        ("payloadFormat", "JSON-RPC-JWT"),
        ("dataEncryptionAlgorithm", "DES"),
        ("unexpected", 1),
        ("responseTimeoutMSecs", -1),
    ],
)
def test_malformed_params(proc, worker, field, value):
    p = _params(build(worker, "hello", [b"x"]))
    p[field] = value
    assert _refused(proc, p).code == Status.INVALID_PARAMETER


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=600))
def test_fuzz_raw_bytes_never_escape_as_anything_but_eea_errors(proc, data):
    with pytest.raises(EeaError):
        proc.process(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(
        [
            "workOrderId",
            "workerId",
            "workloadId",
            "requesterId",
            "encryptedSessionKey",
            "sessionKeyIv",
            "requesterNonce",
            "encryptedRequestHash",
            "inData",
            "outData",
            "requesterSignature",
            "verifyingKey",
            "responseTimeoutMSecs",
        ]
    ),
    json_values,
)
def test_fuzz_mutated_fields_are_refused_with_a_code(proc, worker, field, value):
    p = _params(build(worker, "hello", [b"x"]))
    p[field] = value
    try:
        proc.process(encode(p))
    except EeaError as err:
        assert err.code in (Status.INVALID_PARAMETER, Status.INVALID_SIGNATURE, Status.INVALID_WORKLOAD)


def test_the_key_history_keeps_what_its_window_covers_and_survives_sealing():
    import msgspec

    from adytum.enclave import keys as keys_module
    from adytum.enclave.sealing import Sealer

    keys = WorkerKeys.generate(crypto.sha256(b"history").hex())
    first = keys.encryption
    once = keys.rotated(100.0, now=1000.0)
    twice = once.rotated(100.0, now=1050.0)
    assert [r.encryption for r in twice.history] == [once.encryption, first]  # newest first
    assert twice.decryption_keys(1099.0) == (twice.encryption, once.encryption, first)
    assert twice.decryption_keys(1100.0) == (twice.encryption, once.encryption)  # the first key's time is over
    assert [r.encryption for r in twice.expired(1100.0)] == [first]
    assert [r.encryption for r in twice.rotated(100.0, now=1101.0).history] == [twice.encryption, once.encryption]
    assert twice.rotated(0.0, now=1101.0).history == []  # no history at all
    sealer = Sealer(b"\1" * 32, b"m")
    opened = WorkerKeys.unseal(sealer, twice.seal(sealer))
    assert [r.encryption_key for r in opened.history] == [r.encryption_key for r in twice.history]
    assert opened.history_seconds == 100.0 and [r.retired_at for r in opened.history] == [1050.0, 1000.0]
    capped = keys
    for i in range(keys_module.MAX_HISTORY + 3):
        capped = capped.rotated(1e9, now=float(i))
    assert len(capped.history) == keys_module.MAX_HISTORY

    # A key set sealed before the history (one previous key) still opens, its previous key still serving.
    legacy = msgspec.msgpack.encode(
        {
            "worker_id": keys.worker_id,
            "signing_secret": keys.signing.secret,
            "rsa_der": crypto.rsa_private_to_der(once.encryption),
            "encryption_key_nonce": once.encryption_key_nonce,
            "previous_rsa_der": crypto.rsa_private_to_der(first),
        }
    )
    old = WorkerKeys.from_bytes(legacy)
    assert [r.encryption_key for r in old.history] == [crypto.rsa_public_pem(first)]
    serving = old.decryption_keys(old.history[0].retired_at)
    assert [crypto.rsa_public_pem(k) for k in serving] == [once.encryption_key, crypto.rsa_public_pem(first)]
