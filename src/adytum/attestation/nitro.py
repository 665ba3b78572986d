"""AWS Nitro Enclaves attestation documents: COSE_Sign1 (ES384) over a CBOR payload, chained to AWS's root.

The Nitro Security Module signs a CBOR map (``module_id``, ``digest``, ``timestamp`` in ms, ``pcrs``,
``certificate``, ``cabundle``, optional ``public_key``, ``user_data``, ``nonce``) with a leaf key
that lives about three hours. The checks, in order: the COSE structure and its algorithm (ES384
only), the payload's fields and sizes, the leaf's ECDSA P-384 signature over the COSE
``Sig_structure``, ``cabundle[0]`` carrying the AWS root's key, and the chain leaf → cabundle → root
valid at the verification time and at the document's own time (which must not be after the
verification time). A document whose PCR0, PCR1 and PCR2 are all zero comes from an enclave
started in debug mode. The policy sees the PCRs and ``public_key`` as named measurements
(``PCR0``.., ``public_key``), ``user_data`` as the report data and ``nonce`` as the nonce.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from adytum.attestation import cbor
from adytum.attestation.certpool import load_certificate
from adytum.attestation.errors import AttestationError, Reason
from adytum.attestation.policy import Policy, Verdict, require_aware
from adytum.attestation.roots import aws_nitro_root
from adytum.attestation.sgx.x509chain import key_id, verify_chain

__all__ = ["KIND", "is_nitro_document", "verify_nitro_document"]

KIND = "aws-nitro"
_ES384 = -35
_MAX_OPTIONAL = 1024
_PCR_SIZES = (32, 48, 64)


def _malformed(what: str) -> AttestationError:
    return AttestationError(Reason.MALFORMED, f"Nitro attestation document: {what}")


def is_nitro_document(data: bytes) -> bool:
    """A CBOR array of four (untagged, or COSE_Sign1 tag 18) starting with a byte string."""
    return data[:2] in (b"\x84\x44", b"\x84\x58", b"\x84\x40") or data[:3] in (b"\xd2\x84\x44", b"\xd2\x84\x58")


def _sign1(data: bytes) -> tuple[bytes, bytes, bytes]:
    doc = cbor.decode(data)
    if isinstance(doc, cbor.Tag):
        if doc.number != 18:
            raise _malformed(f"CBOR tag {doc.number} is not COSE_Sign1 (18)")
        doc = doc.value
    if not (isinstance(doc, list) and len(doc) == 4):
        raise _malformed("not a COSE_Sign1 array of four")
    protected, unprotected, payload, signature = doc
    if not (isinstance(protected, bytes) and isinstance(payload, bytes) and isinstance(signature, bytes)):
        raise _malformed("COSE_Sign1 members have the wrong types")
    if not isinstance(unprotected, dict):
        raise _malformed("COSE_Sign1 unprotected header is not a map")
    header = cbor.decode(protected) if protected else {}
    if not isinstance(header, dict) or header.get(1) != _ES384:
        raise AttestationError(Reason.UNSUPPORTED, f"Nitro document algorithm {header!r} is not ES384 (-35)")
    return protected, payload, signature


def _field(payload: dict[str, Any], name: str, kind: type) -> Any:
    value = payload.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _malformed(f"{name} is missing or not a {kind.__name__}")
    return value


def _optional(payload: dict[str, Any], name: str) -> bytes | None:
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, bytes) or len(value) > _MAX_OPTIONAL:
        raise _malformed(f"{name} must be null or at most {_MAX_OPTIONAL} bytes")
    return value


def _pcrs(payload: dict[str, Any]) -> dict[int, bytes]:
    pcrs = _field(payload, "pcrs", dict)
    if not pcrs or len(pcrs) > 32:
        raise _malformed("pcrs must hold 1 to 32 entries")
    for index, value in pcrs.items():
        if not (isinstance(index, int) and 0 <= index < 32 and isinstance(value, bytes) and len(value) in _PCR_SIZES):
            raise _malformed(f"PCR {index!r} is not an index 0..31 with a 32/48/64-byte value")
    return dict(sorted(pcrs.items()))


def verify_nitro_document(
    data: bytes, policy: Policy, *, at: datetime, roots: Sequence[x509.Certificate] | None = None
) -> Verdict:
    """Verify a Nitro attestation document at ``at`` against the AWS root (or ``roots``); apply ``policy``."""
    require_aware(at)
    protected, payload_bytes, signature = _sign1(bytes(data))
    payload = cbor.decode(payload_bytes)
    if not isinstance(payload, dict):
        raise _malformed("payload is not a map")
    module_id = _field(payload, "module_id", str)
    if _field(payload, "digest", str) != "SHA384":
        raise AttestationError(Reason.UNSUPPORTED, f"Nitro digest {payload['digest']!r} is not SHA384")
    timestamp = _field(payload, "timestamp", int)
    pcrs = _pcrs(payload)
    leaf = load_certificate(_field(payload, "certificate", bytes), "Nitro signing certificate")
    bundle = payload.get("cabundle")
    if not isinstance(bundle, list) or not bundle or not all(isinstance(c, bytes) for c in bundle):
        raise AttestationError(Reason.CHAIN, "Nitro document has no cabundle (a self-signed or test document)")
    cabundle = [load_certificate(c, "Nitro cabundle certificate") for c in bundle]
    public_key, user_data, nonce = (_optional(payload, n) for n in ("public_key", "user_data", "nonce"))

    key_id(leaf)  # MALFORMED if the leaf's key cannot be read
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1" or len(signature) != 96:
        raise AttestationError(Reason.MALFORMED, "Nitro signature must be ECDSA P-384 (96 bytes) by a P-384 leaf")
    to_sign = cbor.encode(["Signature1", protected, b"", payload_bytes])
    der = utils.encode_dss_signature(int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big"))
    try:
        key.verify(der, to_sign, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise AttestationError(Reason.SIGNATURE, "the Nitro document's COSE signature does not verify") from None

    anchors = list(roots) if roots is not None else [aws_nitro_root()]
    if key_id(cabundle[0]) not in {key_id(a) for a in anchors}:
        raise AttestationError(Reason.CHAIN, "the Nitro cabundle does not start with a trusted root (AWS Nitro root)")
    path = verify_chain([leaf, *reversed(cabundle[1:])], anchors, at)
    issued = datetime.fromtimestamp(timestamp / 1000, UTC)
    if any(not c.not_valid_before_utc <= issued <= c.not_valid_after_utc for c in path):
        raise _malformed(f"its timestamp {issued.isoformat()} is outside its certificate chain's validity")
    if at < issued:
        raise AttestationError(Reason.NOT_YET_VALID, f"the document is dated {issued.isoformat()}, after {at}")
    debug = all(not any(pcrs.get(i, b"\x01")) for i in (0, 1, 2))
    details = (("module_id", module_id), ("timestamp", issued.isoformat()))
    named = [(f"PCR{i}", v) for i, v in pcrs.items()]
    if public_key is not None:
        named.append(("public_key", public_key))
    verdict = Verdict(
        kind=KIND,
        tcb_status=None,
        verified_at=at,
        debug=debug,
        report_data=user_data or b"",
        measurements=tuple(named),
        nonce=nonce,
        details=details,
        valid_from=max([issued, *(c.not_valid_before_utc for c in path)]),
        valid_until=min(c.not_valid_after_utc for c in path),
        issued_at=issued,
        checked=("cose-es384-signature", "cabundle-to-aws-root", "certificate-validity"),
        unchecked=("revocation (AWS publishes no CRL for Nitro enclave certificates)",),
    )
    return policy.enforce(verdict, at=at)
