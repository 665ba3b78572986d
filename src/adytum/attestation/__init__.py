"""Attestation evidence and its verification: simulated, Intel SGX DCAP, TDX and IAS.

Every kind of evidence yields a `Verdict` and is judged by one `Policy`; every refusal is an
`AttestationError` whose `reason` names what failed. Names are imported on first use. Enclaves load
`measurement` and `quote`, and `verify` to check a peer enclave's evidence before keys move between
them (`adytum.enclave.provisioning`); the whole package is part of their measurement.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AttestationError": "errors", "Reason": "errors",
    "ALL_STATUSES": "policy", "Policy": "policy", "Verdict": "policy", "normalize_status": "policy",
    "Collateral": "sgx", "IasEvidence": "sgx", "load_collateral": "sgx", "load_ias_evidence": "sgx",
    "verify_dcap_quote": "sgx", "verify_ias_evidence": "sgx", "verify_ias_report": "sgx",
    "verify_quote_signatures": "sgx",
    "Measurement": "measurement", "measure": "measurement",
    "Quoter": "quote", "SimulatedQuoter": "quote", "report_data_for": "quote",
    "DevRoot": "devroot", "DevRootError": "devroot", "init_dev_root": "devroot", "load_dev_root": "devroot",
    "load_quoting_key": "devroot",
    "Evidence": "service", "SimulatedAttestationService": "service",
    "TEE_SGX_DCAP": "verify", "TEE_SGX_IAS": "verify", "check_key_binding": "verify",
    "verify_evidence": "verify", "verify_worker_evidence": "verify",
}
__all__ = sorted([*_EXPORTS, "SIMULATED_IAS"])


def __getattr__(name: str) -> Any:
    if name == "SIMULATED_IAS":
        return importlib.import_module(f"{__name__}.service").PROOF_DATA_TYPE
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
