"""DCAP collateral: TCB info, QE identity, their issuer chains, and the PCK / Root CA CRLs.

TCB info and QE identity are signed over the *exact bytes* of the inner JSON object as Intel
served it (``{"tcbInfo":<these bytes>,"signature":"<hex r||s>"}``). We locate that member's
byte span in the file and verify the signature over it; the object we then use is parsed from
those same signed bytes, never re-serialised.

A collateral directory holds ``tcb_info.json``, ``tcb_info_issuer_chain.pem``,
``qe_identity.json``, ``qe_identity_issuer_chain.pem``, ``pck_crl.der`` and ``root_ca_crl.der``
(CRLs in DER or PEM); any may be missing. A dcap-qvl ``QuoteCollateralV3`` JSON file (or a
directory holding only ``collateral.dcap-qvl.json``) is accepted too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from adytum.attestation.errors import AttestationError, Reason, json_object
from adytum.attestation.sgx.x509chain import check_not_revoked, load_pem_chain, verify_chain

__all__ = [
    "SignedDocument",
    "Collateral",
    "extract_member",
    "parse_signed_document",
    "verify_signed_document",
    "load_crl",
    "load_collateral",
    "parse_time",
    "raw_signature_to_der",
]

TCB_INFO = "tcbInfo"
QE_IDENTITY = "enclaveIdentity"


def parse_time(value: Any, what: str) -> datetime:
    """An Intel timestamp ("2025-06-19T10:16:03Z") as an aware datetime."""
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise AttestationError(Reason.MALFORMED, f"{what}: bad timestamp {value!r}") from None
    if moment.tzinfo is None:
        raise AttestationError(Reason.MALFORMED, f"{what}: timestamp {value!r} has no time zone")
    return moment


def raw_signature_to_der(raw: bytes) -> bytes:
    """Intel's P-256 signatures are raw r||s (64 bytes); ``cryptography`` wants DER."""
    if len(raw) != 64:
        raise AttestationError(Reason.MALFORMED, f"ECDSA P-256 signature must be 64 bytes, got {len(raw)}")
    return utils.encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))


def extract_member(data: bytes, key: str) -> tuple[bytes, dict[str, Any]]:
    """Return (exact bytes of top-level member ``key``'s value, the whole top-level object).

    Walks the top-level object with the JSON decoder's own span reporting, so the span is the
    one the parser would read; duplicate top-level keys are refused (they could hide a second,
    unsigned object from a naive substring search).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise AttestationError(Reason.MALFORMED, "collateral JSON is not UTF-8") from None
    decoder = json.JSONDecoder()
    ws = " \t\r\n"

    def skip(pos: int) -> int:
        while pos < len(text) and text[pos] in ws:
            pos += 1
        return pos

    def expect(pos: int, char: str) -> int:
        pos = skip(pos)
        if pos >= len(text) or text[pos] != char:
            raise AttestationError(Reason.MALFORMED, f"collateral JSON: expected {char!r} at {pos}")
        return pos + 1

    try:
        pos = expect(0, "{")
        members: dict[str, Any] = {}
        spans: dict[str, tuple[int, int]] = {}
        if skip(pos) < len(text) and text[skip(pos)] == "}":
            pos = skip(pos) + 1
        else:
            while True:
                name, pos = decoder.raw_decode(text, skip(pos))
                if not isinstance(name, str) or name in members:
                    raise AttestationError(Reason.MALFORMED, f"collateral JSON: bad or duplicate key {name!r}")
                pos = expect(pos, ":")
                start = skip(pos)
                members[name], pos = decoder.raw_decode(text, start)
                spans[name] = (start, pos)
                pos = skip(pos)
                if pos < len(text) and text[pos] == ",":
                    pos += 1
                    continue
                pos = expect(pos, "}")
                break
    except json.JSONDecodeError as exc:
        raise AttestationError(Reason.MALFORMED, f"collateral JSON: {exc}") from None
    if skip(pos) != len(text):
        raise AttestationError(Reason.MALFORMED, "collateral JSON: trailing data")
    if key not in spans or not isinstance(members[key], dict):
        raise AttestationError(Reason.MALFORMED, f"collateral JSON has no {key!r} object")
    start, end = spans[key]
    return text[start:end].encode("utf-8"), members


@dataclass(frozen=True)
class SignedDocument:
    """A TCB info or QE identity: the signed bytes, what they say, and who signed them."""

    kind: str
    raw: bytes
    body: dict[str, Any]
    signature: bytes
    issuer_chain: tuple[x509.Certificate, ...]

    @property
    def issue_date(self) -> datetime:
        return parse_time(self.body.get("issueDate"), f"{self.kind}.issueDate")

    @property
    def next_update(self) -> datetime:
        return parse_time(self.body.get("nextUpdate"), f"{self.kind}.nextUpdate")


def _document(kind: str, raw: bytes, signature_hex: Any, chain_pem: bytes) -> SignedDocument:
    try:
        body = json.loads(raw)
        signature = bytes.fromhex(signature_hex)
    except (TypeError, ValueError):
        raise AttestationError(Reason.MALFORMED, f"{kind}: bad JSON or signature hex") from None
    if not isinstance(body, dict):
        raise AttestationError(Reason.MALFORMED, f"{kind} is not a JSON object")
    chain = tuple(load_pem_chain(chain_pem, f"{kind} issuer chain"))
    return SignedDocument(kind, raw, body, signature, chain)


def parse_signed_document(data: bytes, kind: str, issuer_chain_pem: bytes) -> SignedDocument:
    """Parse a PCS response ``{"<kind>":{...},"signature":"<hex>"}`` with its issuer chain."""
    raw, members = extract_member(data, kind)
    return _document(kind, raw, members.get("signature"), issuer_chain_pem)


def verify_signed_document(
    doc: SignedDocument,
    anchors: Iterable[x509.Certificate],
    at: datetime,
    root_crl: x509.CertificateRevocationList | None = None,
) -> None:
    """Check the issuer chain, the signature over the exact raw bytes, and the issueDate..nextUpdate window."""
    chain = verify_chain(doc.issuer_chain, anchors, at)
    if root_crl is not None:
        for cert in chain[:-1]:
            check_not_revoked(cert, root_crl, "Root CA CRL")
    key = chain[0].public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise AttestationError(Reason.CHAIN, f"{doc.kind} signer does not have an EC key")
    try:
        key.verify(raw_signature_to_der(doc.signature), doc.raw, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise AttestationError(
            Reason.COLLATERAL_SIGNATURE, f"{doc.kind} signature does not verify over its bytes"
        ) from None
    if at < doc.issue_date:
        raise AttestationError(
            Reason.NOT_YET_VALID, f"{doc.kind} is issued {doc.issue_date}, after the verification time"
        )
    if at > doc.next_update:
        raise AttestationError(Reason.EXPIRED, f"{doc.kind} expired at {doc.next_update} (nextUpdate)")


def load_crl(data: bytes, what: str) -> x509.CertificateRevocationList:
    """A CRL in DER, PEM, or hex-encoded DER (dcap-qvl's form)."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        stripped = data.strip()
        if stripped and all(c in b"0123456789abcdefABCDEF" for c in stripped):
            data = bytes.fromhex(stripped.decode())
        return x509.load_der_x509_crl(data)
    except (ValueError, x509.InvalidVersion) as exc:
        raise AttestationError(Reason.MALFORMED, f"{what}: not a CRL ({exc})") from None


@dataclass(frozen=True)
class Collateral:
    """Everything besides the quote that DCAP verification needs. Any part may be absent."""

    tcb_info: SignedDocument | None = None
    qe_identity: SignedDocument | None = None
    pck_crl: x509.CertificateRevocationList | None = None
    root_ca_crl: x509.CertificateRevocationList | None = None

    @classmethod
    def from_bytes(
        cls,
        *,
        tcb_info: bytes | None = None,
        tcb_info_issuer_chain: bytes | None = None,
        qe_identity: bytes | None = None,
        qe_identity_issuer_chain: bytes | None = None,
        pck_crl: bytes | None = None,
        root_ca_crl: bytes | None = None,
    ) -> Collateral:
        """Build from PCS responses (JSON bodies, PEM issuer chains, DER/PEM CRLs)."""

        def doc(data: bytes | None, chain: bytes | None, kind: str) -> SignedDocument | None:
            if data is None:
                return None
            if chain is None:
                raise AttestationError(Reason.COLLATERAL, f"{kind} given without its issuer chain")
            return parse_signed_document(data, kind, chain)

        return cls(
            tcb_info=doc(tcb_info, tcb_info_issuer_chain, TCB_INFO),
            qe_identity=doc(qe_identity, qe_identity_issuer_chain, QE_IDENTITY),
            pck_crl=None if pck_crl is None else load_crl(pck_crl, "PCK CRL"),
            root_ca_crl=None if root_ca_crl is None else load_crl(root_ca_crl, "Root CA CRL"),
        )

    @classmethod
    def from_dcap_qvl_json(cls, data: bytes) -> Collateral:
        """dcap-qvl's ``QuoteCollateralV3``: inner JSON strings are the signed bytes themselves."""
        obj = json_object(data, "dcap-qvl collateral")

        def doc(name: str, kind: str) -> SignedDocument | None:
            if name not in obj:
                return None
            raw = obj[name]
            if not isinstance(raw, str):
                raise AttestationError(Reason.MALFORMED, f"dcap-qvl {name} is not a string")
            return _document(
                kind,
                raw.encode("utf-8"),
                obj.get(f"{name}_signature"),
                str(obj.get(f"{name}_issuer_chain", "")).encode(),
            )

        def crl(name: str) -> x509.CertificateRevocationList | None:
            return load_crl(str(obj[name]).encode(), name) if obj.get(name) else None

        return cls(doc("tcb_info", TCB_INFO), doc("qe_identity", QE_IDENTITY), crl("pck_crl"), crl("root_ca_crl"))


def load_collateral(path: str | Path) -> Collateral:
    """Load a collateral directory (standard file names) or a dcap-qvl collateral JSON file."""
    path = Path(path)
    if path.is_file():
        return Collateral.from_dcap_qvl_json(path.read_bytes())
    if not path.is_dir():
        raise AttestationError(Reason.COLLATERAL, f"no collateral at {path}")

    def read(name: str) -> bytes | None:
        file = path / name
        return file.read_bytes() if file.is_file() else None

    names = ("tcb_info.json", "qe_identity.json", "pck_crl.der", "root_ca_crl.der")
    if not any((path / n).is_file() for n in names) and (path / "collateral.dcap-qvl.json").is_file():
        return Collateral.from_dcap_qvl_json((path / "collateral.dcap-qvl.json").read_bytes())
    return Collateral.from_bytes(
        tcb_info=read("tcb_info.json"),
        tcb_info_issuer_chain=read("tcb_info_issuer_chain.pem"),
        qe_identity=read("qe_identity.json"),
        qe_identity_issuer_chain=read("qe_identity_issuer_chain.pem"),
        pck_crl=read("pck_crl.der"),
        root_ca_crl=read("root_ca_crl.der"),
    )
