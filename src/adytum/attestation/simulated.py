"""The simulated evidence format, ``SIMULATED-IAS``, and its verification.

Simulation plays SGX with EPID and IAS: the enclave's quote is signed by a platform quoting key,
and an IAS-shaped service signs a report about it (both live in :mod:`adytum.issuer`). This module
is what a verifier needs of that format: the quote layout, the ``proofData`` object and the checks.

Quote layout (240 bytes; integers little-endian, as in SGX)::

    offset size  field
    0      2     version             = 1
    2      2     attestation key type = 2 (ECDSA P-256 with SHA-256)
    4      32    mr_enclave
    36     32    mr_signer
    68     2     isv_prod_id
    70     2     isv_svn
    72     8     flags: bit 1 (0x02) = DEBUG, as SGX ATTRIBUTES.FLAGS; other bits must be 0
    80     64    report_data
    144    32    platform_id         = SHA-256(DER SubjectPublicKeyInfo of the quoting key)
    176    64    signature r ‖ s (big-endian, 32 bytes each) over bytes 0..175 (the body)

The report (IAS's fields ``id``, ``timestamp``, ``version``, ``isvEnclaveQuoteStatus``,
``isvEnclaveQuoteBody`` = the quote body in base64, ``nonce``, ``epidPseudonym``, plus
``"simulated": true``) is signed (ECDSA P-256, SHA-256, DER) by a report-signing certificate issued
by a development root. The worker publishes it as ``proofDataType`` :data:`SIMULATED_IAS` with
``proofData`` this JSON text (Avalon's DCAP proofData keys, plus ``simulated``)::

    {"verification_report": "<exact report JSON text>",
     "report_signature": "<base64 DER ECDSA signature over the report's UTF-8 bytes>",
     "report_signing_certificate": "<PEM: report-signing certificate, then the root>",
     "simulated": true}
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from adytum.attestation.errors import AttestationError, Reason, json_object
from adytum.attestation.policy import IAS_STATUS_MAP, Policy, Verdict, require_aware
from adytum.attestation.sgx.x509chain import key_id, load_pem_chain, verify_chain

__all__ = [
    "BODY_LEN",
    "QUOTE_LEN",
    "SIMULATED_IAS",
    "Evidence",
    "SimulatedQuote",
    "pack_quote_body",
    "parse_quote",
    "parse_quote_body",
    "platform_id",
    "verify_quote_signature",
    "verify_simulated",
]

SIMULATED_IAS = "SIMULATED-IAS"
VERSION = 1
KEY_TYPE_P256 = 2
FLAG_DEBUG = 0x02
BODY_LEN = 176
SIGNATURE_LEN = 64
QUOTE_LEN = BODY_LEN + SIGNATURE_LEN
_BODY = struct.Struct("<HH32s32sHHQ64s32s")
_REVOKED = {"GROUP_REVOKED", "SIGNATURE_REVOKED", "KEY_REVOKED"}
assert _BODY.size == BODY_LEN


# --- the quote ---------------------------------------------------------------------------------


def platform_id(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """SHA-256 of the quoting key's DER SubjectPublicKeyInfo: how the service finds the platform."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).digest()


@dataclass(frozen=True)
class SimulatedQuote:
    """A parsed simulated quote (``signature`` empty when only the body was parsed)."""

    version: int
    mr_enclave: bytes
    mr_signer: bytes
    isv_prod_id: int
    isv_svn: int
    debug: bool
    report_data: bytes
    platform_id: bytes
    body: bytes
    signature: bytes = b""


def _malformed(what: str) -> AttestationError:
    return AttestationError(Reason.MALFORMED, f"simulated quote: {what}")


def _check_len(name: str, value: bytes, size: int) -> bytes:
    if not isinstance(value, (bytes, bytearray)) or len(value) != size:
        raise ValueError(f"{name} must be {size} bytes")
    return bytes(value)


def pack_quote_body(
    *,
    mr_enclave: bytes,
    mr_signer: bytes,
    isv_prod_id: int,
    isv_svn: int,
    debug: bool,
    report_data: bytes,
    platform: bytes,
) -> bytes:
    """The 176-byte signed part of a quote; ``ValueError`` for a field that does not fit the layout."""
    for name, value in (("isv_prod_id", isv_prod_id), ("isv_svn", isv_svn)):
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"{name} must fit in 16 bits")
    return _BODY.pack(
        VERSION,
        KEY_TYPE_P256,
        _check_len("mr_enclave", mr_enclave, 32),
        _check_len("mr_signer", mr_signer, 32),
        isv_prod_id,
        isv_svn,
        FLAG_DEBUG if debug else 0,
        _check_len("report_data", report_data, 64),
        _check_len("platform_id", platform, 32),
    )


def parse_quote_body(body: bytes) -> SimulatedQuote:
    """Parse the 176-byte signed part (as carried in a report's ``isvEnclaveQuoteBody``)."""
    if len(body) != BODY_LEN:
        raise _malformed(f"body must be {BODY_LEN} bytes, got {len(body)}")
    version, key_type, mr_enclave, mr_signer, prod, svn, flags, report_data, pid = _BODY.unpack(body)
    if version != VERSION:
        raise AttestationError(Reason.UNSUPPORTED, f"simulated quote version {version}")
    if key_type != KEY_TYPE_P256:
        raise AttestationError(Reason.UNSUPPORTED, f"simulated quote attestation key type {key_type}")
    if flags & ~FLAG_DEBUG:
        raise _malformed(f"unknown flag bits {flags:#x}")
    return SimulatedQuote(
        version, mr_enclave, mr_signer, prod, svn, bool(flags & FLAG_DEBUG), report_data, pid, bytes(body)
    )


def parse_quote(data: bytes) -> SimulatedQuote:
    """Parse a whole quote (body and signature). Does not check the signature."""
    if len(data) != QUOTE_LEN:
        raise _malformed(f"must be {QUOTE_LEN} bytes, got {len(data)}")
    return replace(parse_quote_body(data[:BODY_LEN]), signature=bytes(data[BODY_LEN:]))


def verify_quote_signature(quote: SimulatedQuote, public_key: ec.EllipticCurvePublicKey) -> None:
    """Raise ``SIGNATURE`` unless ``quote`` is signed by ``public_key`` and names it as its platform."""
    if quote.platform_id != platform_id(public_key):
        raise AttestationError(Reason.SIGNATURE, "simulated quote names another platform than the key checking it")
    r, s = int.from_bytes(quote.signature[:32], "big"), int.from_bytes(quote.signature[32:], "big")
    try:
        public_key.verify(utils.encode_dss_signature(r, s), quote.body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise AttestationError(
            Reason.SIGNATURE, "simulated quote signature by the platform quoting key does not verify"
        ) from None


# --- the proofData -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """A signed verification report: exact report bytes, signature (DER), PEM certificate chain."""

    report: bytes
    signature: bytes
    certificates: bytes

    def to_proof_data(self) -> str:
        """The worker record's ``proofData`` (see the module docstring)."""
        return json.dumps(
            {
                "verification_report": self.report.decode("utf-8"),
                "report_signature": base64.b64encode(self.signature).decode(),
                "report_signing_certificate": self.certificates.decode("ascii"),
                "simulated": True,
            }
        )

    @classmethod
    def from_proof_data(cls, proof_data: str) -> Evidence:
        """Parse ``proofData``; ``MALFORMED`` when it is not the simulated format."""
        try:
            obj = json.loads(proof_data)
            if not isinstance(obj, dict) or obj.get("simulated") is not True:
                raise ValueError("not a simulated proofData object")
            report, sig, certs = obj["verification_report"], obj["report_signature"], obj["report_signing_certificate"]
            if not (isinstance(report, str) and isinstance(sig, str) and isinstance(certs, str)):
                raise ValueError("fields must be strings")
            return cls(report.encode("utf-8"), base64.b64decode(sig, validate=True), certs.encode("ascii"))
        except (ValueError, KeyError, TypeError, UnicodeError) as exc:
            raise AttestationError(Reason.MALFORMED, f"SIMULATED-IAS proofData: {exc}") from None


# --- verification ------------------------------------------------------------------------------


def _check_trusted_top(certs: Sequence[x509.Certificate], roots: Sequence[x509.Certificate]) -> None:
    if not roots:
        raise AttestationError(
            Reason.CHAIN, "simulated evidence needs an explicitly trusted development root; none was given"
        )
    top = certs[-1]
    if key_id(top) in {key_id(r) for r in roots} or any(r.subject == top.issuer for r in roots):
        return
    raise AttestationError(Reason.CHAIN, "the report's certificate chain does not end at a trusted development root")


def _check_signing_certificate(chain: Sequence[x509.Certificate]) -> ec.EllipticCurvePublicKey:
    leaf = chain[0]
    if len(chain) < 2:
        raise AttestationError(
            Reason.CHAIN, "the report must be signed by a certificate issued by the root, not by the root"
        )
    try:
        constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
        if constraints.ca:
            raise AttestationError(Reason.CHAIN, "the report-signing certificate is a CA certificate")
    except x509.ExtensionNotFound:
        pass
    except (ValueError, x509.DuplicateExtension) as exc:
        raise AttestationError(
            Reason.MALFORMED, f"report-signing certificate has malformed extensions ({exc})"
        ) from None
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise AttestationError(Reason.CHAIN, "the report-signing certificate does not hold a P-256 key")
    return key


def _report_fields(report: bytes) -> dict[str, Any]:
    body = json_object(report, "simulated report")
    if body.get("simulated") is not True:
        raise AttestationError(Reason.MALFORMED, "SIMULATED-IAS report does not say it is simulated")
    for name in ("id", "timestamp", "isvEnclaveQuoteStatus", "isvEnclaveQuoteBody", "nonce"):
        if not isinstance(body.get(name), str):
            raise AttestationError(Reason.MALFORMED, f"simulated report lacks {name}")
    return body


def _status(raw: str) -> str:
    if raw in IAS_STATUS_MAP:
        return IAS_STATUS_MAP[raw]
    if raw in _REVOKED:
        raise AttestationError(Reason.REVOKED, f"report says {raw}")
    raise AttestationError(Reason.UNSUPPORTED, f"unknown isvEnclaveQuoteStatus {raw!r}")


def _timestamp(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise AttestationError(Reason.MALFORMED, f"simulated report has a bad timestamp {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def verify_simulated(
    proof_data: str, policy: Policy, trusted_roots: Sequence[x509.Certificate], *, at: datetime
) -> Verdict:
    """Verify ``SIMULATED-IAS`` proofData at time ``at``: chain to one of ``trusted_roots``, report
    signature, report fields, quote body; return the verdict ``policy`` accepts (kind ``"simulated"``)."""
    require_aware(at)
    evidence = Evidence.from_proof_data(proof_data)
    certs = load_pem_chain(evidence.certificates, "simulated report-signing certificate chain")
    if not certs:
        raise AttestationError(Reason.MALFORMED, "proofData carries no PEM certificate chain")
    _check_trusted_top(certs, trusted_roots)
    chain = verify_chain(certs, trusted_roots, at)
    key = _check_signing_certificate(chain)
    try:
        key.verify(evidence.signature, evidence.report, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise AttestationError(
            Reason.SIGNATURE, "simulated report signature does not verify over the report bytes"
        ) from None
    body = _report_fields(evidence.report)
    raw_status = body["isvEnclaveQuoteStatus"]
    status = _status(raw_status)
    try:
        quote = parse_quote_body(base64.b64decode(body["isvEnclaveQuoteBody"], validate=True))
    except binascii.Error:
        raise AttestationError(Reason.MALFORMED, "isvEnclaveQuoteBody is not base64") from None
    issued = _timestamp(body["timestamp"])
    verdict = Verdict(
        kind="simulated",
        tcb_status=status,
        raw_status=raw_status,
        verified_at=at,
        debug=quote.debug,
        report_data=quote.report_data,
        mr_enclave=quote.mr_enclave,
        mr_signer=quote.mr_signer,
        isv_prod_id=quote.isv_prod_id,
        isv_svn=quote.isv_svn,
        valid_from=max([issued, *(c.not_valid_before_utc for c in chain)]),
        valid_until=min(c.not_valid_after_utc for c in chain),
        issued_at=issued,
        platform_status=status,
    )
    return policy.enforce(verdict, at=at)
