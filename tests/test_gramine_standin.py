"""The Gramine-SGX path (ADYTUM_TEE=gramine-sgx) against a TEST DOUBLE of /dev/attestation.

There is no SGX here. `standin` is a directory playing Gramine's /dev/attestation pseudo-files: its `quote`
is a real DCAP quote from tests/vectors/sgx (dcapqvl_sgx_v3_2025, Phala's dcap-qvl sample) and its
`keys/_sgx_mrenclave` 16 random bytes. The enclave processes are real (`python -m adytum.enclave`), pointed
at the directory by ADYTUM_TEST_DOUBLE_ATTESTATION_DIR; everything after that is the code hardware runs.

What the double cannot do: a real Gramine makes a fresh quote over the report data the enclave wrote; the
double hands back the same recorded quote, whose report data is the sample's. So the expected outcome on
the host is named: the DCAP verifier checks the whole quote and its collateral (at the collateral's own
time) and refuses the key binding (Reason.REPORT_DATA). At today's date the same collateral is stale and
the node refuses to start on that instead. Nothing here shows a quote binding the enclave's keys.
"""

import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adytum.attestation.errors import AttestationError, Reason
from adytum.attestation.policy import Policy
from adytum.attestation.sgx.quote import parse_quote
from adytum.attestation.verify import TEE_SGX_DCAP, report_data_for, verify_worker_evidence
from adytum.channel import Identity
from adytum.config import ManagerConfig, NodeConfig
from adytum.crypto import sha256
from adytum.datadir import DataDir
from adytum.enclave.keys import WorkerKeys
from adytum.enclave.sealing import Sealer
from adytum.enclave.tee import GRAMINE_SGX, STAND_IN_ENV, TEE_ENV, GramineSgx
from adytum.issuer.dcap import DcapAttestation
from adytum.manager import EnclaveProcess, EnclaveStartError
from adytum.manager.pool import LocalKeyManager, provision
from adytum.manager.publish import Publisher
from adytum.node import Node
from adytum.store import SqliteStore

WORKER_ID = sha256(b"gramine-standin-test").hex()
SAMPLE = "dcap/dcapqvl_sgx_v3_2025"
SAMPLE_TIME = datetime(2025, 7, 4, 10, 28, 44, tzinfo=UTC)  # manifest.json's suggested_time for the sample
SAMPLE_STATUS = "ConfigurationAndSWHardeningNeeded"  # the sample platform's TCB status (manifest.json)


@pytest.fixture
def standin(tmp_path, sgx_vectors) -> Path:
    """TEST DOUBLE of /dev/attestation: a recorded quote, a sealing key, the attestation type."""
    root = tmp_path / "dev-attestation-double"
    (root / "keys").mkdir(parents=True)
    (root / "attestation_type").write_text("dcap")
    shutil.copy(sgx_vectors / SAMPLE / "quote.bin", root / "quote")
    (root / "keys" / "_sgx_mrenclave").write_bytes(bytes(range(16)))
    (root / "user_report_data").write_bytes(bytes(64))
    return root


@pytest.fixture
def gramine_env(monkeypatch, standin):
    monkeypatch.setenv(TEE_ENV, GRAMINE_SGX)
    monkeypatch.setenv(STAND_IN_ENV, str(standin))
    return standin


@pytest.fixture
def data_dir(tmp_path, sgx_vectors) -> Path:
    """A data directory with the sample's collateral where the host reads it; no development root."""
    data = DataDir(tmp_path / "data")
    data.create()
    data.collateral.mkdir()
    shutil.copy(sgx_vectors / SAMPLE / "collateral.dcap-qvl.json", data.collateral)
    return data.path


def sample_quote(sgx_vectors):
    return parse_quote((sgx_vectors / SAMPLE / "quote.bin").read_bytes()).body


def test_key_manager_quotes_seals_and_measures_through_dev_attestation_and_the_host_verifies_with_dcap(
    gramine_env, data_dir, sgx_vectors
):
    publisher = Publisher(
        ManagerConfig(data_dir=data_dir, accepted_tcb_statuses=(SAMPLE_STATUS,)),
        DcapAttestation(DataDir(data_dir).collateral),
        None,
        clock=lambda: SAMPLE_TIME,
    )
    seen: list[Identity] = []

    def admit(ident: Identity) -> None:
        seen.append(ident)
        publisher.admit_key_manager(ident)

    async def main():
        kme = EnclaveProcess("kme", data_dir, WORKER_ID, role="kme", admit=admit)
        try:
            await kme.start()
        finally:
            await kme.stop()

    with pytest.raises(EnclaveStartError) as refused:
        asyncio.run(main())
    # the named, expected outcome: everything about the quote verified, then the binding refused
    assert "report data does not bind" in str(refused.value)
    (ident,) = seen
    body = sample_quote(sgx_vectors)
    assert ident.mr_enclave == body.mr_enclave.hex() and ident.mr_signer == body.mr_signer.hex()  # from the quote
    assert ident.simulated  # the test double is not hardware, and says so
    written = (gramine_env / "user_report_data").read_bytes()
    assert written == report_data_for(ident.verifying_key, ident.encryption_key, WORKER_ID, ident.hpke_keys)
    # the keys were sealed under the key from keys/_sgx_mrenclave, and no simulated platform was made
    sealer = Sealer((gramine_env / "keys" / "_sgx_mrenclave").read_bytes(), body.mr_enclave)
    keys = WorkerKeys.unseal(sealer, DataDir(data_dir).kme_keys.read_bytes())
    assert keys.verifying_key == ident.verifying_key
    assert not DataDir(data_dir).platform_secret.exists() and not DataDir(data_dir).platform.exists()


def test_published_evidence_is_the_quote_with_its_collateral_and_fails_only_the_binding(data_dir, sgx_vectors):
    quote = (sgx_vectors / SAMPLE / "quote.bin").read_bytes()
    service = DcapAttestation(DataDir(data_dir).collateral)
    proof = service.attest(quote)
    assert service.proof_data_type == TEE_SGX_DCAP and base64.b64decode(json.loads(proof)["quote"]) == quote
    body = sample_quote(sgx_vectors)
    with pytest.raises(AttestationError) as refused:
        verify_worker_evidence(
            TEE_SGX_DCAP,
            proof,
            verifying_key="vk",
            encryption_key="ek",
            worker_id=WORKER_ID,
            policy=Policy(mr_enclaves=frozenset({body.mr_enclave}), accepted_statuses=frozenset({SAMPLE_STATUS})),
            at=SAMPLE_TIME,
            trusted_roots=[],
        )
    assert refused.value.reason is Reason.REPORT_DATA
    assert refused.value.verdict is not None and refused.value.verdict.mr_enclave == body.mr_enclave


def test_collateral_written_as_pcs_files_is_published_the_same(data_dir, sgx_vectors, tmp_path):
    pcs = tmp_path / "pcs"
    pcs.mkdir()
    for name in ("tcb_info.json", "tcb_info_issuer_chain.pem", "qe_identity.json", "qe_identity_issuer_chain.pem"):
        shutil.copy(sgx_vectors / SAMPLE / name, pcs)
    for name in ("pck_crl.der", "root_ca_crl.der"):
        shutil.copy(sgx_vectors / SAMPLE / name, pcs)
    quote = (sgx_vectors / SAMPLE / "quote.bin").read_bytes()
    one = verify_worker_evidence_at(DcapAttestation(pcs).attest(quote))
    two = verify_worker_evidence_at(DcapAttestation(DataDir(data_dir).collateral).attest(quote))
    assert one == two == Reason.REPORT_DATA


def verify_worker_evidence_at(proof: str) -> Reason:
    try:
        verify_worker_evidence(
            TEE_SGX_DCAP,
            proof,
            verifying_key="",
            encryption_key="",
            worker_id="",
            policy=Policy(accepted_statuses=frozenset({SAMPLE_STATUS})),
            at=SAMPLE_TIME,
            trusted_roots=[],
        )
    except AttestationError as exc:
        return exc.reason
    raise AssertionError("a recorded quote bound empty keys")


def test_a_node_verifies_the_key_manager_quote_before_anything_is_published(gramine_env, data_dir):
    """The node reads ADYTUM_TEE too: DCAP at today's date, where the sample's collateral is long stale."""
    node = Node(NodeConfig.of(data_dir, enclaves=1, port=0, accepted_tcb_statuses=(SAMPLE_STATUS,)))
    with pytest.raises(EnclaveStartError) as refused:
        asyncio.run(_start_and_stop(node))
    assert "enclave evidence refused by this node: expired: PCK CRL expired" in str(refused.value)
    store = SqliteStore(DataDir(data_dir).store)
    try:
        assert store.worker(node.manager.worker_id) is None  # nothing was published
    finally:
        store.close()


async def _start_and_stop(node: Node) -> None:
    try:
        await node.start()
    finally:
        await node.stop()


def test_a_work_order_enclave_quotes_its_handshake_and_checks_the_key_manager_with_dcap(gramine_env, data_dir):
    """Provisioning between two Gramine enclaves: the work-order enclave verifies the key manager's DCAP
    evidence itself (at its own clock: today, so the sample's collateral is refused as stale)."""
    attestation = DcapAttestation(DataDir(data_dir).collateral)

    async def main():
        kme = LocalKeyManager(EnclaveProcess("kme", data_dir, WORKER_ID, role="kme"), attestation)
        await kme.start()
        wpe = EnclaveProcess("wpe", data_dir, WORKER_ID, provision=lambda e: provision(e, kme, attestation))
        try:
            await wpe.start()
        finally:
            await wpe.stop()
            await kme.stop()

    with pytest.raises(EnclaveStartError) as refused:
        asyncio.run(main())
    assert "the key manager's evidence is refused (expired)" in str(refused.value)


def test_the_double_is_checked_like_the_device(standin, sgx_vectors):
    tee = GramineSgx(2, standin, test_double=True)
    assert tee.measurement.mr_enclave == sample_quote(sgx_vectors).mr_enclave and tee.product == 0
    assert tee.peer_roots() == []  # no root from the host's disk is trusted on SGX
    assert tee.sealing_secret() == bytes(range(16))
    with pytest.raises(ValueError, match="64 bytes"):
        tee.quote(b"short")
    (standin / "keys" / "_sgx_mrenclave").write_bytes(bytes(32))
    with pytest.raises(ValueError, match="not a 16-byte key"):
        tee.sealing_secret()
    (standin / "attestation_type").write_text("none")
    with pytest.raises(ValueError, match="needs DCAP"):
        GramineSgx(2, standin)
    (standin / "attestation_type").write_text("dcap")
    shutil.copy(sgx_vectors / "dcap/dcapqvl_tdx_v4_2025/quote.bin", standin / "quote")
    with pytest.raises(ValueError, match="TDX quote"):
        GramineSgx(2, standin)
    (standin / "quote").write_bytes(b"not a quote")
    with pytest.raises(ValueError, match="is not a DCAP quote"):
        GramineSgx(2, standin)


def test_an_unknown_tee_is_refused_by_the_enclave_and_the_node(monkeypatch, tmp_path):
    monkeypatch.setenv(TEE_ENV, "sev-snp")
    DataDir(tmp_path).create()

    async def main():
        kme = EnclaveProcess("kme", tmp_path, WORKER_ID, role="kme")
        try:
            await kme.start()
        finally:
            await kme.stop()

    with pytest.raises(EnclaveStartError, match="not a TEE adytum knows"):
        asyncio.run(main())
    with pytest.raises(Exception, match="not a TEE adytum knows"):
        Node(NodeConfig.of(tmp_path, enclaves=1, port=0))


def test_without_the_double_the_enclave_reads_dev_attestation_and_says_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv(TEE_ENV, GRAMINE_SGX)
    monkeypatch.delenv(STAND_IN_ENV, raising=False)
    if Path("/dev/attestation").exists():
        pytest.skip("this machine has a /dev/attestation: not a test for inside an enclave")
    DataDir(tmp_path).create()

    async def main():
        kme = EnclaveProcess("kme", tmp_path, WORKER_ID, role="kme")
        try:
            await kme.start()
        finally:
            await kme.stop()

    with pytest.raises(EnclaveStartError, match="/dev/attestation/attestation_type"):
        asyncio.run(main())


GRAMINE_SGX_DOUBLE = """#!/bin/sh
# TEST DOUBLE of gramine-sgx: runs the enclave as the build's manifest would (its role from the build's name)
echo "$1" >> "$GRAMINE_DOUBLE_LOG"
role=$(basename "$1" | sed 's/^adytum-//')
exec "$GRAMINE_DOUBLE_PYTHON" -m adytum.enclave --data-dir "$GRAMINE_DOUBLE_DATA" --worker-id "$GRAMINE_DOUBLE_WORKER" \\
    --role "$role"
"""
LAUNCHER = Path(__file__).resolve().parent.parent / "gramine" / "adytum-sgx-enclave"


def test_the_node_starts_each_role_s_signed_build_through_the_launcher(gramine_env, data_dir, tmp_path, monkeypatch):
    """--enclave-executable gramine/adytum-sgx-enclave, with a TEST DOUBLE of gramine-sgx on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gramine-sgx").write_text(GRAMINE_SGX_DOUBLE)
    (bin_dir / "gramine-sgx").chmod(0o755)
    config = NodeConfig.of(
        data_dir,
        enclaves=1,
        port=0,
        accepted_tcb_statuses=(SAMPLE_STATUS,),
        enclave_executable=str(LAUNCHER),
    )
    log = tmp_path / "gramine-sgx.log"
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("ADYTUM_SGX_BUILD_DIR", str(tmp_path / "builds"))
    monkeypatch.setenv("GRAMINE_DOUBLE_LOG", str(log))
    monkeypatch.setenv("GRAMINE_DOUBLE_PYTHON", sys.executable)
    monkeypatch.setenv("GRAMINE_DOUBLE_DATA", str(data_dir))
    monkeypatch.setenv("GRAMINE_DOUBLE_WORKER", config.manager.worker_id)
    with pytest.raises(EnclaveStartError) as refused:
        asyncio.run(_start_and_stop(Node(config)))
    assert "enclave evidence refused by this node: expired: PCK CRL expired" in str(refused.value)
    assert log.read_text().split() == [str(tmp_path / "builds" / "adytum-kme")]  # the key manager's build
    assert DataDir(data_dir).kme_keys.exists()  # sealed through the double's keys/_sgx_mrenclave


def test_the_launcher_refuses_a_role_it_has_no_build_for():
    done = subprocess.run(
        [str(LAUNCHER), "-m", "adytum.enclave", "--role", "attacker"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2 and "unknown enclave role 'attacker'" in done.stderr


def test_the_host_reads_the_names_the_enclave_reads(monkeypatch, tmp_path):
    from adytum.enclave.tee import SIMULATED
    from adytum.issuer.service import SimulatedAttestation
    from adytum.node import attestation_service

    monkeypatch.setenv(TEE_ENV, GRAMINE_SGX)
    assert isinstance(attestation_service(DataDir(tmp_path)), DcapAttestation)
    monkeypatch.setenv(TEE_ENV, SIMULATED)
    assert isinstance(attestation_service(DataDir(tmp_path)), SimulatedAttestation)
