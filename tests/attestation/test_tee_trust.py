"""The SDK's Trust on workers whose evidence is SEV-SNP or Nitro, and the one freshness rule.

No real sample binds an adytum worker's keys (that needs a worker running on the hardware), so a
worker record carrying a real sample must pass every hardware check and then be refused at the key
binding, which proves the evidence was verified all the way; with the vendor root not trusted it is
refused at the chain instead.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adytum.attestation import TEE_AWS_NITRO, TEE_NVIDIA_GPU, TEE_SEV_SNP, Policy, Verdict, verify_evidence
from adytum.attestation.roots import aws_nitro_root
from adytum.client import Trust, UntrustedWorker
from adytum.client.worker import WorkerInfo

TEE = Path(__file__).resolve().parents[1] / "vectors" / "tee"
SNP = TEE / "amd-sev-snp" / "trustee"
NITRO_DOC = TEE / "aws-nitro" / "blocky-nitrite" / "nitro_attestation.cbor"
NITRO_AT = datetime(2024, 9, 7, 14, 37, 39, 545000, tzinfo=UTC)
SNP_AT = datetime(2025, 1, 1, tzinfo=UTC)


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def snp_proof() -> str:
    pem = (SNP / "milan_ask_ark_asvk.pem").read_text()
    from cryptography.hazmat.primitives import serialization

    from adytum.attestation.certpool import load_certificate

    vcek = load_certificate((SNP / "test-vcek.der").read_bytes(), "vcek")
    pem += vcek.public_bytes(serialization.Encoding.PEM).decode()
    return json.dumps({"report": b64(SNP / "test-report.bin"), "certificates": pem})


def worker(proof_type: str, proof: str) -> WorkerInfo:
    record = {"details": {"workerTypeData": {"proofDataType": proof_type, "proofData": proof}}}
    return WorkerInfo("ab" * 32, "vk", "ek", "sig", record=record)


def reason(trust: Trust, info: WorkerInfo, at: datetime) -> str:
    with pytest.raises(UntrustedWorker) as err:
        trust.verify(info, at)
    return err.value.reason


def test_snp_worker_is_verified_to_the_key_binding() -> None:
    info = worker(TEE_SEV_SNP, snp_proof())
    lenient = Policy(require_crls=False)
    assert reason(Trust(policy=lenient), info, SNP_AT) == "report-data"
    assert reason(Trust(policy=lenient, vendor_roots=()), info, SNP_AT) == "chain"
    assert reason(Trust(policy=lenient, vendor_roots=(aws_nitro_root(),)), info, SNP_AT) == "chain"
    assert reason(Trust(), info, SNP_AT) == "collateral"  # the default policy wants AMD's CRL


def test_nitro_worker_is_verified_to_the_key_binding() -> None:
    info = worker(TEE_AWS_NITRO, json.dumps({"document": b64(NITRO_DOC)}))
    assert reason(Trust(), info, NITRO_AT) == "report-data"
    assert reason(Trust(), info, NITRO_AT + timedelta(hours=4)) == "expired"
    assert reason(Trust(vendor_roots=()), info, NITRO_AT) == "chain"
    assert reason(Trust(), worker(TEE_AWS_NITRO, '{"document": "%%%"}'), NITRO_AT) == "malformed"


def test_gpu_evidence_verifies_alone_through_verify_evidence() -> None:
    nv = TEE / "nvidia-gpu" / "nvtrust"
    proof = json.dumps(
        {
            "evidence": base64.b64encode(bytes.fromhex((nv / "hopperAttestationReport.txt").read_text())).decode(),
            "certificates": (nv / "hopperCertChain.txt").read_text(),
        }
    )
    at = datetime(2025, 6, 1, tzinfo=UTC)
    verdict = verify_evidence(TEE_NVIDIA_GPU, proof, policy=Policy(), at=at, trusted_roots=())
    assert verdict.kind == "nvidia-gpu" and verdict.report_data == b""
    gpu_worker = worker(TEE_NVIDIA_GPU, proof)
    assert reason(Trust(policy=Policy()), gpu_worker, at) == "report-data"  # SPDM cannot bind worker keys
    assert reason(Trust(), gpu_worker, at) == "stale"  # no time in SPDM evidence, and Trust has a maximum age


T0 = datetime(2025, 7, 1, tzinfo=UTC)


def aged(**fields: object) -> Verdict:
    return Verdict(kind="sgx-dcap", tcb_status="UpToDate", verified_at=T0, **fields)  # type: ignore[arg-type]


def test_freshness_rule_respects_the_collaterals_own_next_update() -> None:
    seven_days = Policy(max_collateral_age=timedelta(days=7))
    crl_issued = T0 - timedelta(days=10)
    # A valid 30-day CRL issued 10 days ago: its own next update governs, the 7-day limit does not cut it short.
    assert seven_days.enforce(aged(issued_at=crl_issued, next_update=crl_issued + timedelta(days=30)), at=T0)
    from adytum.attestation import AttestationError, Reason

    with pytest.raises(AttestationError) as err:
        seven_days.enforce(aged(issued_at=crl_issued), at=T0)  # only an issue time: the maximum age applies
    assert err.value.reason == Reason.STALE
    graced = Policy(max_collateral_age=timedelta(days=7), collateral_grace=timedelta(days=3))
    assert graced.enforce(aged(issued_at=crl_issued), at=T0)
