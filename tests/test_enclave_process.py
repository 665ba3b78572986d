"""Real enclave processes: the key manager seals, work-order enclaves are provisioned, death with work in flight."""

import asyncio
import os
import signal

import pytest

from adytum import crypto
from adytum.client import WorkerInfo, build, open_result
from adytum.crypto import sha256
from adytum.manager import EnclaveDied, EnclaveStartError
from adytum.protocol import encode
from support import LocalPool

WORKER_ID = sha256(b"enclave-process-test").hex()


def run(coro):
    return asyncio.run(coro)


def info(ident):
    return WorkerInfo(WORKER_ID, ident.verifying_key, ident.encryption_key, ident.encryption_key_signature)


async def boot_key_manager(tmp_path, worker_id=WORKER_ID):
    pool = LocalPool(tmp_path, worker_id)
    try:
        return await pool.kme.start()
    finally:
        await pool.kme.stop()


def test_keys_are_sealed_by_the_key_manager_and_reused_across_restarts(tmp_path):
    async def main():
        pool = LocalPool(tmp_path, WORKER_ID)
        kme1 = await pool.kme.start()
        wpe = pool.wpe()
        ident1 = await wpe.start()
        info(ident1).check_keys()
        order = build(info(ident1), "hello", [b"before"])
        reply = await wpe.process(encode(order.params))
        await wpe.stop()
        await pool.kme.stop()
        pool = LocalPool(tmp_path, WORKER_ID)  # a new key manager process unseals the same keys
        kme2 = await pool.kme.start()
        wpe = pool.wpe()
        ident2 = await wpe.start()
        await wpe.stop()
        await pool.kme.stop()
        return kme1, kme2, ident1, ident2, order, reply

    kme1, kme2, ident1, ident2, order, reply = run(main())
    assert kme1.verifying_key == kme2.verifying_key == ident1.verifying_key == ident2.verifying_key
    assert ident2.encryption_key == ident1.encryption_key and ident1.simulated
    assert open_result(order, info(ident1), reply.result) == [b"Hello before"]  # old results still verify
    sealed = (tmp_path / "kme" / "worker-keys.sealed").read_bytes()
    assert b"PRIVATE" not in sealed and len(sealed) > 1000
    assert not (tmp_path / "enclave").exists()  # work-order enclaves seal nothing


def test_enclave_quote_binds_its_keys_measurement_and_role(tmp_path):
    from adytum.attestation.measurement import measure
    from adytum.attestation.simulated import parse_quote
    from adytum.attestation.verify import report_data_for
    from adytum.enclave.provisioning import KME_PRODUCT, WPE_PRODUCT

    async def main():
        pool = LocalPool(tmp_path, WORKER_ID)
        kme = await pool.kme.start()
        wpe = pool.wpe()
        try:
            return kme, await wpe.start()
        finally:
            await wpe.stop()
            await pool.kme.stop()

    kme, ident = run(main())
    quote = parse_quote(ident.quote)
    assert set(ident.hpke_keys) == {suite.value for suite in crypto.hpke_suites()}  # one key per HPKE suite
    assert quote.report_data == report_data_for(ident.verifying_key, ident.encryption_key, WORKER_ID, ident.hpke_keys)
    assert quote.report_data != report_data_for(ident.verifying_key, ident.encryption_key, WORKER_ID)
    assert quote.mr_enclave.hex() == ident.mr_enclave == measure().mr_enclave.hex()
    assert not quote.debug and quote.isv_prod_id == WPE_PRODUCT
    assert parse_quote(kme.quote).isv_prod_id == KME_PRODUCT


def test_sealed_keys_are_bound_to_the_measurement(tmp_path):
    from adytum.enclave.keys import WorkerKeys
    from adytum.enclave.sealing import Sealer, UnsealError

    keys = WorkerKeys.generate(WORKER_ID)
    blob = keys.seal(Sealer(b"s" * 32, b"\x01" * 32))
    assert WorkerKeys.unseal(Sealer(b"s" * 32, b"\x01" * 32), blob).verifying_key == keys.verifying_key
    with pytest.raises(UnsealError, match="different enclave build"):
        WorkerKeys.unseal(Sealer(b"s" * 32, b"\x02" * 32), blob)  # changed code: another measurement
    with pytest.raises(UnsealError):
        WorkerKeys.unseal(Sealer(b"t" * 32, b"\x01" * 32), blob)  # another platform


def test_tampered_sealed_keys_refuse_to_start(tmp_path):
    run(boot_key_manager(tmp_path))
    path = tmp_path / "kme" / "worker-keys.sealed"
    blob = bytearray(path.read_bytes())
    blob[40] ^= 1
    path.write_bytes(bytes(blob))
    with pytest.raises(EnclaveStartError, match="does not unseal"):
        run(boot_key_manager(tmp_path))


def test_sealed_keys_belong_to_one_worker(tmp_path):
    run(boot_key_manager(tmp_path))
    with pytest.raises(EnclaveStartError, match="belong to worker"):
        run(boot_key_manager(tmp_path, "cd" * 32))


def test_killed_enclave_fails_in_flight_work_and_is_provisioned_again(tmp_path):
    async def main():
        pool = LocalPool(tmp_path, WORKER_ID)
        await pool.kme.start()
        e = pool.wpe()
        ident = await e.start()
        orders = [build(info(ident), "fib", [b"100000"]) for _ in range(20)]
        pending = [asyncio.create_task(e.process(encode(o.params))) for o in orders]
        await asyncio.sleep(0.05)
        os.kill(e.pid, signal.SIGKILL)
        outcomes = await asyncio.gather(*pending, return_exceptions=True)
        await e.ensure_running()
        after = await e.process(encode(build(info(ident), "hello", [b"back"]).params))
        await e.stop()
        await pool.kme.stop()
        return outcomes, after, e.restarts, pool.kme.provisioned

    outcomes, after, restarts, provisioned = run(main())
    assert any(isinstance(o, EnclaveDied) for o in outcomes)
    assert all(isinstance(o, EnclaveDied) or o.code == 0 for o in outcomes)
    assert after.code == 0 and restarts == 1 and provisioned == 2


@pytest.mark.parametrize(
    "policy, refusal",
    [
        (None, "not in the key manager's policy"),  # no policy file: nothing is allowed
        ('{"wpe_mr_enclaves": "not a list"}', "policy.json: wpe_mr_enclaves must be a list"),
        ("{not json", "policy.json is not a key-manager policy"),
    ],
)
def test_the_key_manager_refuses_the_handshake_under_a_missing_or_malformed_policy(tmp_path, policy, refusal):
    from adytum.datadir import DataDir
    from adytum.manager import ProvisioningRefused

    async def main():
        pool = LocalPool(tmp_path, WORKER_ID)  # writes a good policy for this build
        if policy is None:
            DataDir(tmp_path).policy.unlink()
        else:
            DataDir(tmp_path).policy.write_text(policy)
        await pool.kme.start()
        try:
            with pytest.raises(ProvisioningRefused, match=refusal):
                await pool.wpe().start()
        finally:
            await pool.kme.stop()

    run(main())
