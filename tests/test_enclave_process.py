"""Real enclave processes: identity, sealed keys across restarts, death with work in flight."""

import asyncio
import os
import signal

import pytest

from adytum.attestation import init_dev_root
from adytum.crypto import sha256
from adytum.client import WorkerInfo, build, open_result
from adytum.manager import EnclaveDied, EnclaveProcess, EnclaveStartError
from adytum.protocol import encode

WORKER_ID = sha256(b"enclave-process-test").hex()


@pytest.fixture(autouse=True)
def platform(tmp_path):
    """The simulated platform (quoting key) the node normally creates before starting enclaves."""
    return init_dev_root(tmp_path / "devroot")


def run(coro):
    return asyncio.run(coro)


def test_keys_are_sealed_and_reused_across_restarts(tmp_path):
    async def main():
        first = EnclaveProcess("e", tmp_path, WORKER_ID)
        ident1 = await first.start()
        worker = WorkerInfo(WORKER_ID, ident1.verifying_key, ident1.encryption_key, ident1.encryption_key_signature)
        worker.check_keys()
        assert ident1.simulated
        order = build(worker, "hello", [b"before"])
        reply = await first.process(encode(order.params))
        await first.stop()
        second = EnclaveProcess("e", tmp_path, WORKER_ID)
        ident2 = await second.start()
        await second.stop()
        return ident1, ident2, order, worker, reply

    ident1, ident2, order, worker, reply = run(main())
    assert ident2.verifying_key == ident1.verifying_key and ident2.encryption_key == ident1.encryption_key
    assert open_result(order, worker, reply.result) == [b"Hello before"]  # old results still verify
    sealed = (tmp_path / "enclave" / "worker-keys.sealed").read_bytes()
    assert b"PRIVATE" not in sealed and len(sealed) > 1000


def test_enclave_quote_binds_its_keys_and_measurement(tmp_path):
    from adytum.attestation.measurement import measure
    from adytum.attestation.quote import parse_quote, report_data_for

    async def main():
        e = EnclaveProcess("e", tmp_path, WORKER_ID)
        try:
            return await e.start()
        finally:
            await e.stop()

    ident = run(main())
    quote = parse_quote(ident.quote)
    assert quote.report_data == report_data_for(ident.verifying_key, ident.encryption_key, WORKER_ID)
    assert quote.mr_enclave.hex() == ident.mr_enclave == measure().mr_enclave.hex()
    assert not quote.debug


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
    async def boot():
        e = EnclaveProcess("e", tmp_path, WORKER_ID)
        try:
            await e.start()
        finally:
            await e.stop()

    run(boot())
    path = tmp_path / "enclave" / "worker-keys.sealed"
    blob = bytearray(path.read_bytes())
    blob[40] ^= 1
    path.write_bytes(bytes(blob))
    with pytest.raises(EnclaveStartError, match="does not unseal"):
        run(boot())


def test_sealed_keys_belong_to_one_worker(tmp_path):
    async def boot(worker_id):
        e = EnclaveProcess("e", tmp_path, worker_id)
        try:
            await e.start()
        finally:
            await e.stop()

    run(boot(WORKER_ID))
    with pytest.raises(EnclaveStartError, match="belong to worker"):
        run(boot("cd" * 32))


def test_killed_enclave_fails_in_flight_work_and_restarts_with_same_keys(tmp_path):
    async def main():
        e = EnclaveProcess("e", tmp_path, WORKER_ID)
        ident = await e.start()
        worker = WorkerInfo(WORKER_ID, ident.verifying_key, ident.encryption_key, ident.encryption_key_signature)
        orders = [build(worker, "fib", [b"100000"]) for _ in range(20)]
        pending = [asyncio.create_task(e.process(encode(o.params))) for o in orders]
        await asyncio.sleep(0.05)
        os.kill(e.pid, signal.SIGKILL)
        outcomes = await asyncio.gather(*pending, return_exceptions=True)
        await e.ensure_running()
        after = await e.process(encode(build(worker, "hello", [b"back"]).params))
        await e.stop()
        return outcomes, after, e.restarts

    outcomes, after, restarts = run(main())
    assert any(isinstance(o, EnclaveDied) for o in outcomes)
    assert all(isinstance(o, EnclaveDied) or o.code == 0 for o in outcomes)
    assert after.code == 0 and restarts == 1
