"""Intel's public CA certificates, shipped with adytum as trust anchors.

``intel_sgx_root_ca.pem``: Intel SGX Root CA (DCAP PCK chains, TCB info, QE identity, CRLs).
``ias_report_signing_ca.pem``: Intel SGX Attestation Report Signing CA (IAS/EPID reports).
Anchors are matched by public key, so Intel's re-issued certificates (same key, new dates) work.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from cryptography import x509

__all__ = ["intel_sgx_root_ca", "ias_report_signing_ca"]


def _load(name: str) -> x509.Certificate:
    data = resources.files(__name__).joinpath(name).read_bytes()
    return x509.load_pem_x509_certificate(data)


@cache
def intel_sgx_root_ca() -> x509.Certificate:
    """The Intel SGX Root CA (2018-05-21 to 2049-12-31 issue)."""
    return _load("intel_sgx_root_ca.pem")


@cache
def ias_report_signing_ca() -> x509.Certificate:
    """The Intel SGX Attestation Report Signing CA (RSA-3072)."""
    return _load("ias_report_signing_ca.pem")
