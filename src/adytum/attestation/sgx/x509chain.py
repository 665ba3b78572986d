"""Certificate chains and CRLs for Intel's attestation PKI.

Intel re-issued its CA certificates (Root CA, PCK Processor CA, TCB Signing) with the same key
and serial but new validity dates, so a trust anchor is a *public key*: the chain must end at a
certificate whose key is an anchor's key. Every link is a signature check plus issuer-name match;
every certificate must be valid at the verification time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from adytum.attestation.errors import AttestationError, Reason
from adytum.attestation.sgx.quote import split_pem_certificates

__all__ = [
    "key_id",
    "load_pem_chain",
    "load_der_certificate",
    "check_validity",
    "verify_chain",
    "verify_crl",
    "check_not_revoked",
]


def key_id(cert: x509.Certificate) -> bytes:
    """The certificate's SubjectPublicKeyInfo DER: what an anchor is compared by. A certificate whose key
    cannot be parsed (an invalid point, an unknown algorithm) is MALFORMED, never an exception of its own."""
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise AttestationError(
            Reason.MALFORMED, f"certificate {cert.subject.rfc4514_string()!r} has an unusable public key ({exc})"
        ) from None
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_der_certificate(der: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except (ValueError, x509.InvalidVersion) as exc:
        raise AttestationError(Reason.MALFORMED, f"{what}: not an X.509 certificate ({exc})") from None


def load_pem_chain(data: bytes, what: str) -> list[x509.Certificate]:
    """Parse concatenated PEM certificates (as in quotes and Intel's issuer-chain headers)."""
    return [load_der_certificate(der, what) for der in split_pem_certificates(data)]


def _name(cert: x509.Certificate) -> str:
    try:
        for attr in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME):
            return str(attr.value)
        return cert.subject.rfc4514_string()
    except ValueError:
        return "<unreadable subject>"


def check_validity(cert: x509.Certificate, at: datetime) -> None:
    """Refuse a certificate outside its notBefore..notAfter at time ``at``."""
    if at < cert.not_valid_before_utc:
        raise AttestationError(
            Reason.NOT_YET_VALID, f"certificate '{_name(cert)}' is valid from {cert.not_valid_before_utc}"
        )
    if at > cert.not_valid_after_utc:
        raise AttestationError(Reason.EXPIRED, f"certificate '{_name(cert)}' expired at {cert.not_valid_after_utc}")


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False
    except (ValueError, x509.DuplicateExtension) as exc:
        raise AttestationError(
            Reason.MALFORMED, f"certificate '{_name(cert)}' has malformed extensions ({exc})"
        ) from None


def _link(child: x509.Certificate, parent: x509.Certificate) -> None:
    if not _is_ca(parent):
        raise AttestationError(Reason.CHAIN, f"'{_name(parent)}' is not a CA but issues '{_name(child)}'")
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as exc:
        raise AttestationError(
            Reason.CHAIN, f"'{_name(child)}' is not issued by '{_name(parent)}' ({exc or 'bad signature'})"
        ) from None


def verify_chain(
    chain: Sequence[x509.Certificate], anchors: Iterable[x509.Certificate], at: datetime
) -> list[x509.Certificate]:
    """Check ``chain`` (leaf first) links up to an anchor key and is valid at ``at``.

    The last certificate must carry an anchor's key (any issue of it) and be self-signed, or be
    directly issued by an anchor. Returns the chain, ending with the anchor-keyed certificate.
    """
    if not chain:
        raise AttestationError(Reason.CHAIN, "empty certificate chain")
    anchor_list = list(anchors)
    anchor_keys = {key_id(a) for a in anchor_list}
    path = list(chain)
    for child, parent in zip(path, path[1:], strict=False):
        _link(child, parent)
    top = path[-1]
    if key_id(top) in anchor_keys:
        _link(top, top)
    else:
        issuers = [a for a in anchor_list if a.subject == top.issuer]
        if not issuers:
            raise AttestationError(Reason.CHAIN, f"chain ends at '{_name(top)}', which is not a trusted anchor")
        failure: AttestationError | None = None
        for anchor in issuers:
            try:
                _link(top, anchor)
            except AttestationError as exc:
                failure = exc
                continue
            path.append(anchor)
            break
        else:
            assert failure is not None
            raise failure
    for cert in path:
        check_validity(cert, at)
    return path


def verify_crl(crl: x509.CertificateRevocationList, issuer: x509.Certificate, at: datetime, what: str) -> None:
    """Check ``crl`` is issued and signed by ``issuer`` and current at ``at``."""
    try:
        signed = crl.issuer == issuer.subject and crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except (ValueError, TypeError, UnsupportedAlgorithm):
        signed = False
    if not signed:
        raise AttestationError(Reason.CRL, f"{what} is not signed by '{_name(issuer)}'")
    if at < crl.last_update_utc:
        raise AttestationError(
            Reason.NOT_YET_VALID, f"{what} is issued {crl.last_update_utc}, after the verification time"
        )
    if crl.next_update_utc is None or at > crl.next_update_utc:
        raise AttestationError(Reason.EXPIRED, f"{what} expired at {crl.next_update_utc}")


def check_not_revoked(cert: x509.Certificate, crl: x509.CertificateRevocationList, what: str) -> None:
    """Refuse ``cert`` if its serial is on ``crl`` (whose signature the caller has checked)."""
    try:
        entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    except ValueError as exc:
        raise AttestationError(Reason.MALFORMED, f"{what} has malformed entries ({exc})") from None
    if entry is not None:
        raise AttestationError(
            Reason.REVOKED, f"'{_name(cert)}' (serial {cert.serial_number:x}) is revoked by the {what}"
        )
