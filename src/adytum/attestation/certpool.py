"""Certificates found in collateral, and the chain from a leaf to a vendor root through them.

Non-Intel evidence comes with loose certificates (a VCEK and AMD's cert_chain, a Nitro cabundle, a
GPU's device chain) whose order is not to be relied on. :func:`chain_to_root` orders them by issuer
name from the leaf up and hands the path to :func:`~adytum.attestation.sgx.x509chain.verify_chain`,
which checks every signature, the CA flags, the validity at ``at`` and that the top is a trusted
root, matched by key.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from adytum.attestation.errors import AttestationError, Reason
from adytum.attestation.sgx.x509chain import key_id, verify_chain

__all__ = ["chain_to_root", "load_certificate", "load_certificates"]


def load_certificate(der: bytes, what: str) -> x509.Certificate:
    """One DER certificate. AMD's VCEKs have serial number 0, which ``cryptography`` still loads with a
    deprecation warning; the warning is silenced here, where that is known and expected."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cert = x509.load_der_x509_certificate(der)
            cert.serial_number  # noqa: B018 - parse the serial inside the silenced block
            return cert
    except (ValueError, x509.InvalidVersion) as exc:
        raise AttestationError(Reason.MALFORMED, f"{what}: not an X.509 certificate ({exc})") from None


def load_certificates(data: bytes, what: str) -> list[x509.Certificate]:
    """Every certificate in ``data``: one DER certificate, or any number of PEM blocks."""
    if b"-----BEGIN CERTIFICATE-----" not in data:
        return [load_certificate(data, what)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pems = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise AttestationError(Reason.MALFORMED, f"{what}: bad PEM certificate ({exc})") from None
    return [load_certificate(c.public_bytes(serialization.Encoding.DER), what) for c in pems]


def chain_to_root(
    leaf: x509.Certificate,
    pool: Iterable[x509.Certificate],
    roots: Sequence[x509.Certificate],
    at: datetime,
) -> list[x509.Certificate]:
    """The verified path ``leaf`` → ... → a certificate carrying one of ``roots``' keys, valid at ``at``.

    Issuers are looked up by name among ``pool`` and ``roots``; a self-signed certificate ends the
    walk. The path is then verified link by link; a pool that holds a look-alike issuer (same name,
    other key) fails on that link's signature, never silently elsewhere.
    """
    candidates = [*pool, *roots]
    root_keys = {key_id(r) for r in roots}
    path = [leaf]
    while len(path) < 8:
        top = path[-1]
        if top.issuer == top.subject or key_id(top) in root_keys:
            break
        issuers = [c for c in candidates if c.subject == top.issuer and c not in path]
        if not issuers:
            break
        path.append(_verified_first(top, issuers))
    return verify_chain(path, roots, at)


def _verified_first(child: x509.Certificate, issuers: list[x509.Certificate]) -> x509.Certificate:
    for issuer in issuers:
        try:
            child.verify_directly_issued_by(issuer)
        except Exception:  # noqa: BLE001 - any failure: try the next issuer of that name
            continue
        return issuer
    return issuers[0]
