"""Verify Intel Attestation Service (EPID) attestation verification reports.

IAS signs the exact HTTP response body (the report JSON) with RSA PKCS#1 v1.5 / SHA-256
(``X-IASReport-Signature``) under the "Intel SGX Attestation Report Signing" certificate
(``X-IASReport-Signing-Certificate``), issued by the Intel SGX Attestation Report Signing CA.
The report's ``isvEnclaveQuoteBody`` is the 432-byte EPID quote without its signature.

Evidence files accepted by :func:`load_ias_evidence`:

* adytum's format, a JSON object
  ``{"format": "adytum-ias/1", "report": "<exact report body>", "signature": "<base64>",
  "certificates": "<PEM chain, signing certificate first>"}``;
* Phala's ``{"raReport", "signature", "rawSigningCert"}`` (signature/cert in hex or base64);
* a bare ``*report.json`` with ``<prefix>sig.b64`` (or ``<prefix>report.sig.b64``) and
  ``<prefix>signing_cert.pem`` beside it;
* an RA-TLS certificate (``.der``/``.pem``) whose Netscape comment extension holds
  ``report|base64 signature|base64 DER signing certificate`` (integritee, MesaTEE).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from adytum.attestation.errors import AttestationError, Reason, json_object
from adytum.attestation.policy import IAS_STATUS_MAP, Policy, Verdict, require_aware
from adytum.attestation.sgx.anchors import ias_report_signing_ca
from adytum.attestation.sgx.quote import EnclaveReport, parse_enclave_report
from adytum.attestation.sgx.x509chain import load_der_certificate, load_pem_chain, verify_chain

__all__ = [
    "IasEvidence",
    "EpidQuote",
    "parse_epid_quote",
    "verify_ias_report",
    "verify_ias_evidence",
    "load_ias_evidence",
    "FORMAT",
]

FORMAT = "adytum-ias/1"
NETSCAPE_COMMENT = "2.16.840.1.113730.1.13"
EPID_QUOTE_LEN = 432
_REVOKED = {"GROUP_REVOKED", "SIGNATURE_REVOKED", "KEY_REVOKED"}


@dataclass(frozen=True)
class IasEvidence:
    """The three things IAS returns: exact report bytes, signature, signing certificate chain."""

    report: bytes
    signature: bytes
    certificates: tuple[x509.Certificate, ...]


@dataclass(frozen=True)
class EpidQuote:
    version: int
    sign_type: int
    epid_group_id: bytes
    qe_svn: int
    pce_svn: int
    basename: bytes
    report: EnclaveReport


def _malformed(what: str) -> AttestationError:
    return AttestationError(Reason.MALFORMED, f"IAS report: {what}")


def parse_epid_quote(body: bytes) -> EpidQuote:
    """The 432-byte EPID quote body inside an IAS report (no signature: IAS checked it)."""
    if len(body) != EPID_QUOTE_LEN:
        raise _malformed(f"isvEnclaveQuoteBody must be {EPID_QUOTE_LEN} bytes, got {len(body)}")
    version, sign_type = struct.unpack_from("<HH", body, 0)
    qe_svn, pce_svn = struct.unpack_from("<HH", body, 8)
    return EpidQuote(version, sign_type, body[4:8], qe_svn, pce_svn, body[16:48], parse_enclave_report(body[48:432]))


def _report_time(value: Any) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise _malformed(f"bad timestamp {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # IAS times are UTC without a zone


def _status(raw: Any) -> str:
    if raw in IAS_STATUS_MAP:
        return IAS_STATUS_MAP[raw]
    if raw in _REVOKED:
        raise AttestationError(Reason.REVOKED, f"IAS says {raw}")
    if raw == "SIGNATURE_INVALID":
        raise AttestationError(Reason.SIGNATURE, "IAS says the EPID quote signature is invalid")
    if raw == "SIGRL_VERSION_MISMATCH":
        raise AttestationError(
            Reason.TCB_STATUS, "IAS says SIGRL_VERSION_MISMATCH: the quote was made with a stale SigRL"
        )
    raise AttestationError(Reason.UNSUPPORTED, f"unknown isvEnclaveQuoteStatus {raw!r}")


def verify_ias_report(
    report: bytes,
    signature: bytes,
    signing_cert_chain: Sequence[x509.Certificate] | bytes,
    policy: Policy,
    *,
    at: datetime,
    trust_anchor: x509.Certificate | None = None,
) -> Verdict:
    """Verify an IAS report at time ``at`` and return the :class:`Verdict` the policy accepts.

    ``signing_cert_chain`` is the signing certificate first (PEM bytes or certificates); it must
    chain to ``trust_anchor`` (default: the shipped IAS Report Signing CA, matched by key).
    """
    require_aware(at)
    certs = (
        load_pem_chain(signing_cert_chain, "IAS signing certificate")
        if isinstance(signing_cert_chain, bytes)
        else list(signing_cert_chain)
    )
    chain = verify_chain(certs, [trust_anchor or ias_report_signing_ca()], at)
    key = chain[0].public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise AttestationError(Reason.CHAIN, "IAS signing certificate does not hold an RSA key")
    try:
        key.verify(signature, report, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise AttestationError(Reason.SIGNATURE, "IAS report signature does not verify over the report bytes") from None
    try:
        body = json.loads(report)
    except ValueError:
        raise _malformed("not JSON") from None
    if not isinstance(body, dict):
        raise _malformed("not a JSON object")
    raw_status = body.get("isvEnclaveQuoteStatus")
    status = _status(raw_status)
    try:
        quote_body = base64.b64decode(body.get("isvEnclaveQuoteBody", ""), validate=True)
    except (TypeError, binascii.Error):
        raise _malformed("isvEnclaveQuoteBody is not base64") from None
    quote = parse_epid_quote(quote_body)
    timestamp = _report_time(body.get("timestamp"))
    enclave = quote.report
    verdict = Verdict(
        kind="sgx-ias",
        tcb_status=status,
        raw_status=str(raw_status),
        verified_at=at,
        advisory_ids=tuple(str(a) for a in body.get("advisoryIDs") or ()),
        debug=enclave.debug,
        report_data=enclave.report_data,
        mr_enclave=enclave.mr_enclave,
        mr_signer=enclave.mr_signer,
        isv_prod_id=enclave.isv_prod_id,
        isv_svn=enclave.isv_svn,
        valid_from=max([timestamp, *(c.not_valid_before_utc for c in chain)]),
        valid_until=min(c.not_valid_after_utc for c in chain),
        issued_at=timestamp,
        platform_status=status,
    )
    return policy.enforce(verdict, at=at)


def verify_ias_evidence(
    evidence: IasEvidence, policy: Policy, *, at: datetime, trust_anchor: x509.Certificate | None = None
) -> Verdict:
    """:func:`verify_ias_report` on loaded :class:`IasEvidence`."""
    return verify_ias_report(
        evidence.report, evidence.signature, evidence.certificates, policy, at=at, trust_anchor=trust_anchor
    )


def _binary(text: Any, what: str) -> bytes:
    """Hex or base64, as the various IAS wrappers use either."""
    if not isinstance(text, str):
        raise _malformed(f"{what} is not a string")
    cleaned = re.sub(r"\s", "", text)
    if re.fullmatch(r"(?:[0-9a-fA-F]{2})+", cleaned):
        return bytes.fromhex(cleaned)
    try:
        return base64.b64decode(cleaned, validate=True)
    except binascii.Error:
        raise _malformed(f"{what} is neither hex nor base64") from None


def _certs(data: bytes, what: str) -> tuple[x509.Certificate, ...]:
    if b"-----BEGIN" in data:
        return tuple(load_pem_chain(data, what))
    return (load_der_certificate(data, what),)


def _from_ratls(cert_bytes: bytes) -> IasEvidence:
    try:
        cert = (
            x509.load_der_x509_certificate(cert_bytes)
            if not cert_bytes.lstrip().startswith(b"-----")
            else x509.load_pem_x509_certificate(cert_bytes)
        )
        ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(NETSCAPE_COMMENT)).value
    except (ValueError, x509.InvalidVersion, x509.ExtensionNotFound, x509.DuplicateExtension) as exc:
        raise _malformed(f"not an RA-TLS certificate carrying an IAS report ({exc})") from None
    if not isinstance(ext, x509.UnrecognizedExtension):
        raise _malformed("unexpected Netscape comment encoding")
    parts = ext.value.rsplit(b"|", 2)
    if len(parts) != 3:
        raise _malformed("RA-TLS comment is not report|signature|certificate")
    report, sig, der = parts
    return IasEvidence(
        report,
        _binary(sig.decode("ascii", "replace"), "signature"),
        _certs(_binary(der.decode("ascii", "replace"), "certificate"), "IAS signing certificate"),
    )


def _sibling(path: Path, *names: str) -> bytes:
    for name in names:
        candidate = path.with_name(name)
        if candidate.is_file():
            return candidate.read_bytes()
    raise AttestationError(Reason.COLLATERAL, f"no {' or '.join(names)} beside {path.name}")


def load_ias_evidence(path: str | Path) -> IasEvidence:
    """Read IAS evidence in any of the formats listed in this module's docstring."""
    path = Path(path)
    data = path.read_bytes()
    if not data.lstrip().startswith(b"{"):
        return _from_ratls(data)
    obj = json_object(data, f"IAS report: {path.name}")
    if obj.get("format") == FORMAT:
        report = obj.get("report")
        if not isinstance(report, str) or not isinstance(obj.get("certificates"), str):
            raise _malformed("adytum-ias/1 needs string report and certificates")
        return IasEvidence(
            report.encode("utf-8"),
            _binary(obj.get("signature"), "signature"),
            _certs(obj["certificates"].encode(), "IAS signing certificate"),
        )
    if "raReport" in obj:
        if not isinstance(obj["raReport"], str):
            raise _malformed("raReport is not a string")
        return IasEvidence(
            obj["raReport"].encode("utf-8"),
            _binary(obj.get("signature"), "signature"),
            _certs(_binary(obj.get("rawSigningCert"), "rawSigningCert"), "IAS signing certificate"),
        )
    if "isvEnclaveQuoteStatus" in obj:
        prefix = path.name[: -len("report.json")] if path.name.endswith("report.json") else path.stem + "."
        sig = _sibling(path, prefix + "sig.b64", prefix + "report.sig.b64")
        certs = _sibling(path, prefix + "signing_cert.pem")
        return IasEvidence(
            data, _binary(sig.decode("ascii", "replace"), "signature"), _certs(certs, "IAS signing certificate")
        )
    raise _malformed(f"{path.name} is not a recognised IAS evidence format")
