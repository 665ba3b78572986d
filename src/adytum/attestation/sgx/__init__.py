"""Intel SGX / TDX hardware evidence: DCAP ECDSA quotes and IAS (EPID) verification reports.

Pure Python on ``cryptography``. Entry points:

* :func:`verify_dcap_quote` — SGX v3, SGX/TDX v4, TDX v5 quotes with PCS collateral;
* :func:`verify_quote_signatures` — what a quote proves alone (PCK chain, QE report, signature);
* :func:`verify_ias_report` / :func:`verify_ias_evidence` — IAS attestation verification reports;
* :func:`load_collateral`, :func:`load_ias_evidence` — read them from files.
"""

from __future__ import annotations

from adytum.attestation.sgx.collateral import Collateral, load_collateral
from adytum.attestation.sgx.dcap import QuoteCheck, verify_dcap_quote, verify_quote_signatures
from adytum.attestation.sgx.ias import IasEvidence, load_ias_evidence, verify_ias_evidence, verify_ias_report
from adytum.attestation.sgx.quote import Quote, parse_quote

__all__ = [
    "Collateral",
    "IasEvidence",
    "Quote",
    "QuoteCheck",
    "load_collateral",
    "load_ias_evidence",
    "parse_quote",
    "verify_dcap_quote",
    "verify_ias_evidence",
    "verify_ias_report",
    "verify_quote_signatures",
]
