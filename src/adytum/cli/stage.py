"""The enclave stage alone, for `adytum bench --enclaves`: real work-order enclave processes, provisioned by a
real key manager, fed orders built beforehand straight through their channel, with no HTTP, store or
requesters in the way. It shows how the pool itself scales with its enclaves on this machine, apart from
what the node around it costs (which the node's own run shows)."""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from pathlib import Path

from ..client import WorkerInfo, build
from ..config import DEFAULTS
from ..crypto import sha256
from ..datadir import DataDir
from ..issuer.service import SimulatedAttestation
from ..manager import EnclaveProcess
from ..manager.pool import LocalKeyManager, provision
from ..protocol import encode
from ..workloads.registry import measure_work_order_build


async def stage_throughput(enclaves: int, orders: int, workload: str, data: bytes, suite: str = "rsa") -> float:
    """Verified-by-the-enclave orders per second through `enclaves` work-order enclaves, each kept
    `pipeline_depth` orders deep as the node's dispatcher keeps it; session keys wrapped in `suite`."""
    directory = Path(tempfile.mkdtemp(prefix="adytum-stage-"))
    worker_id = sha256(b"adytum-bench-stage").hex()
    DataDir(directory).allow_build(measure_work_order_build(directory).mr_enclave.hex())
    logging.getLogger("adytum").setLevel(logging.ERROR)  # the simulation and anchor warnings: the bench says so
    attestation = SimulatedAttestation(DataDir(directory))
    kme = LocalKeyManager(EnclaveProcess("kme", directory, worker_id, role="kme"), attestation)
    identity = await kme.start()
    pool = [
        EnclaveProcess(f"enclave-{i}", directory, worker_id, provision=lambda e: provision(e, kme, attestation))
        for i in range(enclaves)
    ]
    try:
        for enclave in pool:
            await enclave.start()
        info = WorkerInfo(
            worker_id,
            identity.verifying_key,
            identity.encryption_key,
            identity.encryption_key_signature,
            hpke_keys=identity.hpke_keys,
        )
        bodies = iter([encode(build(info, workload, [data], suite=suite).params) for _ in range(orders)])
        failed = 0

        async def feed(enclave: EnclaveProcess) -> None:
            nonlocal failed
            for body in bodies:
                reply = await enclave.process(body)
                failed += reply.code != 0

        started = time.perf_counter()
        await asyncio.gather(*(feed(e) for e in pool for _ in range(DEFAULTS.manager.pipeline_depth)))
        elapsed = time.perf_counter() - started
    finally:
        for enclave in pool:
            await enclave.stop()
        await kme.stop()
    if failed:
        raise RuntimeError(f"{failed} of {orders} orders failed in the enclave stage")
    return orders / elapsed
