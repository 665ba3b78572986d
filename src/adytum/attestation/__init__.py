"""Attestation evidence and its verification: simulated, Intel SGX DCAP, TDX and IAS, AMD SEV-SNP,
AWS Nitro Enclaves and NVIDIA GPUs.

This package is the verifier only, and pure: every verify function takes the verification time as
``at=``, and nothing here issues evidence (the simulated quoter, report service and development
root are :mod:`adytum.issuer`). Every kind of evidence yields a `Verdict` and is judged by one
`Policy`; every refusal is an `AttestationError` whose `reason` names what failed. Enclaves load
`measurement`, and `verify` to check a peer enclave's evidence before keys move between them
(`adytum.enclave.provisioning`); the whole package is part of their measurement.
"""

from __future__ import annotations

from adytum.attestation.bundle import Bundle, CollateralCache, load_bundle
from adytum.attestation.detect import detect_format, verify_detected
from adytum.attestation.errors import AttestationError, Reason
from adytum.attestation.measurement import Measurement, measure
from adytum.attestation.nitro import verify_nitro_document
from adytum.attestation.nvidia import verify_gpu_evidence
from adytum.attestation.policy import ALL_STATUSES, Policy, Verdict, measurement_set, normalize_status
from adytum.attestation.rim import verify_rim
from adytum.attestation.roots import vendor_roots
from adytum.attestation.sevsnp import verify_snp_report
from adytum.attestation.sgx import (
    Collateral,
    IasEvidence,
    load_collateral,
    load_ias_evidence,
    verify_dcap_quote,
    verify_ias_evidence,
    verify_ias_report,
    verify_quote_signatures,
)
from adytum.attestation.simulated import SIMULATED_IAS
from adytum.attestation.verify import (
    TEE_AWS_NITRO,
    TEE_NVIDIA_GPU,
    TEE_SEV_SNP,
    TEE_SGX_DCAP,
    TEE_SGX_IAS,
    TEE_TDX_DCAP,
    check_key_binding,
    report_data_for,
    verify_evidence,
    verify_worker_evidence,
)

__all__ = [
    "ALL_STATUSES",
    "SIMULATED_IAS",
    "TEE_SGX_DCAP",
    "TEE_SGX_IAS",
    "TEE_AWS_NITRO",
    "TEE_NVIDIA_GPU",
    "TEE_SEV_SNP",
    "TEE_TDX_DCAP",
    "AttestationError",
    "Bundle",
    "CollateralCache",
    "detect_format",
    "load_bundle",
    "verify_rim",
    "vendor_roots",
    "verify_detected",
    "verify_gpu_evidence",
    "verify_nitro_document",
    "verify_snp_report",
    "Collateral",
    "IasEvidence",
    "Measurement",
    "Policy",
    "measurement_set",
    "Reason",
    "Verdict",
    "check_key_binding",
    "load_collateral",
    "load_ias_evidence",
    "measure",
    "normalize_status",
    "report_data_for",
    "verify_dcap_quote",
    "verify_evidence",
    "verify_ias_evidence",
    "verify_ias_report",
    "verify_quote_signatures",
    "verify_worker_evidence",
]
