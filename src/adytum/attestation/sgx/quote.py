"""Binary parsing of Intel DCAP ECDSA quotes: SGX v3, SGX/TDX v4, TDX v5 (TD report 1.0 and 1.5).

Layouts follow Intel's "ECDSA Quote Library API" and "TDX DCAP Quote Generation" documents:
a 48-byte header, a report body (384-byte SGX report, 584-byte TD 1.0 report or 648-byte
TD 1.5 report; v5 prefixes it with a u16 body type and u32 body size), a u32 signature-data
length and the ECDSA signature data. Bytes after the signature data are padding, unsigned and
ignored. Parsing is strict about everything inside: lengths must add up exactly.
"""

from __future__ import annotations

import base64
import re
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from adytum.attestation.errors import AttestationError, Reason

__all__ = [
    "INTEL_QE_VENDOR_ID",
    "TEE_SGX",
    "TEE_TDX",
    "EnclaveReport",
    "TdReport",
    "QuoteHeader",
    "QuoteSignature",
    "Quote",
    "parse_quote",
    "parse_enclave_report",
    "split_pem_certificates",
]

HEADER_LEN = 48
SGX_REPORT_LEN = 384
TD10_REPORT_LEN = 584
TD15_REPORT_LEN = 648
TEE_SGX = 0x00000000
TEE_TDX = 0x00000081
ATT_KEY_ECDSA_P256 = 2
CERT_PCK_CHAIN = 5
CERT_QE_REPORT = 6
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
_BODY_TYPES = {1: (TEE_SGX, SGX_REPORT_LEN), 2: (TEE_TDX, TD10_REPORT_LEN), 3: (TEE_TDX, TD15_REPORT_LEN)}


def _malformed(what: str) -> AttestationError:
    return AttestationError(Reason.MALFORMED, f"quote: {what}")


class _Reader:
    """Cursor over bytes that refuses to read past the end."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise _malformed(
                f"{self.what} is truncated (need {count} bytes at offset {self.pos}, have {len(self.data) - self.pos})"
            )
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "little")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "little")

    def rest(self) -> int:
        return len(self.data) - self.pos


@dataclass(frozen=True)
class QuoteHeader:
    version: int
    att_key_type: int
    tee_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    user_data: bytes


@dataclass(frozen=True)
class EnclaveReport:
    """An SGX REPORT body (384 bytes): the ISV enclave's, or the quoting enclave's."""

    raw: bytes
    cpu_svn: bytes
    misc_select: int
    attributes: bytes
    mr_enclave: bytes
    mr_signer: bytes
    isv_prod_id: int
    isv_svn: int
    config_svn: int
    report_data: bytes

    @property
    def debug(self) -> bool:
        """ATTRIBUTES.DEBUG (flags bit 1): the enclave's memory can be read by a debugger."""
        return bool(self.attributes[0] & 0x02)


@dataclass(frozen=True)
class TdReport:
    """A TD report body: 584 bytes (TDX 1.0) or 648 bytes (TDX 1.5, adds TEE_TCB_SVN2 and MRSERVICETD)."""

    raw: bytes
    tee_tcb_svn: bytes
    mr_seam: bytes
    mr_signer_seam: bytes
    seam_attributes: bytes
    td_attributes: bytes
    xfam: bytes
    mr_td: bytes
    mr_config_id: bytes
    mr_owner: bytes
    mr_owner_config: bytes
    rtmrs: tuple[bytes, bytes, bytes, bytes]
    report_data: bytes
    tee_tcb_svn2: bytes | None = None
    mr_servicetd: bytes | None = None

    @property
    def debug(self) -> bool:
        """TDATTRIBUTES.DEBUG (bit 0): the host VMM can read and write the TD's state."""
        return bool(self.td_attributes[0] & 0x01)


@dataclass(frozen=True)
class QuoteSignature:
    """ECDSA-256 signature data with the QE report and its PCK certification data."""

    signature: bytes
    attestation_key: bytes
    attestation_public_key: ec.EllipticCurvePublicKey
    qe_report: EnclaveReport
    qe_report_signature: bytes
    qe_auth_data: bytes
    certification_data_type: int
    certification_data: bytes


@dataclass(frozen=True)
class Quote:
    header: QuoteHeader
    body: EnclaveReport | TdReport
    body_type: int
    signed_bytes: bytes
    signature: QuoteSignature

    @property
    def is_tdx(self) -> bool:
        return isinstance(self.body, TdReport)


def parse_enclave_report(raw: bytes) -> EnclaveReport:
    """Parse a 384-byte SGX report body."""
    if len(raw) != SGX_REPORT_LEN:
        raise _malformed(f"SGX report body must be {SGX_REPORT_LEN} bytes, got {len(raw)}")
    return EnclaveReport(
        raw=raw,
        cpu_svn=raw[0:16],
        misc_select=struct.unpack_from("<I", raw, 16)[0],
        attributes=raw[48:64],
        mr_enclave=raw[64:96],
        mr_signer=raw[128:160],
        isv_prod_id=struct.unpack_from("<H", raw, 256)[0],
        isv_svn=struct.unpack_from("<H", raw, 258)[0],
        config_svn=struct.unpack_from("<H", raw, 260)[0],
        report_data=raw[320:384],
    )


def _parse_td_report(raw: bytes) -> TdReport:
    def at(offset: int, size: int) -> bytes:
        return raw[offset : offset + size]

    td15 = len(raw) == TD15_REPORT_LEN
    return TdReport(
        raw=raw,
        tee_tcb_svn=at(0, 16),
        mr_seam=at(16, 48),
        mr_signer_seam=at(64, 48),
        seam_attributes=at(112, 8),
        td_attributes=at(120, 8),
        xfam=at(128, 8),
        mr_td=at(136, 48),
        mr_config_id=at(184, 48),
        mr_owner=at(232, 48),
        mr_owner_config=at(280, 48),
        rtmrs=(at(328, 48), at(376, 48), at(424, 48), at(472, 48)),
        report_data=at(520, 64),
        tee_tcb_svn2=at(584, 16) if td15 else None,
        mr_servicetd=at(600, 48) if td15 else None,
    )


def _parse_header(reader: _Reader) -> QuoteHeader:
    raw = reader.take(HEADER_LEN)
    version, key_type, tee_type, qe_svn, pce_svn = struct.unpack_from("<HHIHH", raw, 0)
    header = QuoteHeader(version, key_type, tee_type, qe_svn, pce_svn, raw[12:28], raw[28:48])
    if version not in (3, 4, 5):
        raise AttestationError(Reason.UNSUPPORTED, f"quote version {version} (supported: 3, 4, 5)")
    if key_type != ATT_KEY_ECDSA_P256:
        raise AttestationError(
            Reason.UNSUPPORTED, f"attestation key type {key_type} (supported: 2, ECDSA-256 with P-256)"
        )
    if tee_type not in (TEE_SGX, TEE_TDX) or (version == 3 and tee_type != TEE_SGX):
        raise AttestationError(Reason.UNSUPPORTED, f"TEE type {tee_type:#x} in a version {version} quote")
    if header.qe_vendor_id != INTEL_QE_VENDOR_ID:
        raise AttestationError(Reason.UNSUPPORTED, f"QE vendor id {header.qe_vendor_id.hex()} is not Intel's")
    return header


def _parse_body(reader: _Reader, header: QuoteHeader) -> tuple[int, EnclaveReport | TdReport]:
    if header.version == 5:
        body_type, size = reader.u16(), reader.u32()
        if body_type not in _BODY_TYPES:
            raise AttestationError(Reason.UNSUPPORTED, f"quote v5 body type {body_type} (supported: 1, 2, 3)")
        tee, expected = _BODY_TYPES[body_type]
        if tee != header.tee_type:
            raise _malformed(f"body type {body_type} does not match TEE type {header.tee_type:#x}")
        if size != expected:
            raise _malformed(f"body type {body_type} must be {expected} bytes, header says {size}")
    else:
        body_type = 1 if header.tee_type == TEE_SGX else 2
        expected = _BODY_TYPES[body_type][1]
    raw = reader.take(expected)
    return body_type, parse_enclave_report(raw) if body_type == 1 else _parse_td_report(raw)


def _parse_qe_report_block(reader: _Reader) -> tuple[EnclaveReport, bytes, bytes, int, bytes]:
    qe_report = parse_enclave_report(reader.take(SGX_REPORT_LEN))
    qe_report_signature = reader.take(64)
    auth = reader.take(reader.u16())
    cert_type, cert_size = reader.u16(), reader.u32()
    cert_data = reader.take(cert_size)
    return qe_report, qe_report_signature, auth, cert_type, cert_data


def _parse_signature(data: bytes, version: int) -> QuoteSignature:
    reader = _Reader(data, "signature data")
    signature, key = reader.take(64), reader.take(64)
    try:
        public_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + key)
    except ValueError:
        raise _malformed("attestation key is not a P-256 point") from None
    if version == 3:
        qe_report, qe_sig, auth, cert_type, cert_data = _parse_qe_report_block(reader)
    else:
        outer_type, outer_size = reader.u16(), reader.u32()
        if outer_type != CERT_QE_REPORT:
            raise AttestationError(
                Reason.UNSUPPORTED, f"v{version} certification data type {outer_type} (expected 6, QE report)"
            )
        inner = _Reader(reader.take(outer_size), "QE report certification data")
        qe_report, qe_sig, auth, cert_type, cert_data = _parse_qe_report_block(inner)
        if inner.rest():
            raise _malformed(f"{inner.rest()} unexplained bytes after the QE report certification data")
    if reader.rest():
        raise _malformed(f"{reader.rest()} unexplained bytes inside the signature data")
    if cert_type != CERT_PCK_CHAIN:
        raise AttestationError(Reason.UNSUPPORTED, f"certification data type {cert_type} (supported: 5, PCK chain)")
    return QuoteSignature(signature, key, public_key, qe_report, qe_sig, auth, cert_type, cert_data)


def parse_quote(data: bytes) -> Quote:
    """Parse a DCAP quote; raise :class:`AttestationError` (malformed/unsupported) if it is not one."""
    reader = _Reader(bytes(data), "quote")
    header = _parse_header(reader)
    body_type, body = _parse_body(reader, header)
    signed = reader.data[: reader.pos]
    signature_len = reader.u32()
    signature = _parse_signature(reader.take(signature_len), header.version)
    return Quote(header, body, body_type, signed, signature)


_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\r\n]*)-----END CERTIFICATE-----")


def split_pem_certificates(data: bytes) -> list[bytes]:
    """DER of each PEM certificate in ``data``, refusing anything but PEM blocks, whitespace and NULs.

    Strict on purpose: the certification data is not signed, so every byte of it must mean
    something or be provably empty (base64 must be canonical, so no flipped bit goes unnoticed).
    """
    ders: list[bytes] = []
    pos = 0
    for match in _PEM_BLOCK.finditer(data):
        if data[pos : match.start()].strip(b" \t\r\n\x00"):
            raise _malformed("unexpected bytes between PEM certificates")
        text = re.sub(rb"[\r\n]", b"", match.group(1))
        try:
            der = base64.b64decode(text, validate=True)
        except ValueError:
            raise _malformed("bad base64 in a PEM certificate") from None
        if base64.b64encode(der) != text:
            raise _malformed("non-canonical base64 in a PEM certificate")
        ders.append(der)
        pos = match.end()
    if data[pos:].strip(b" \t\r\n\x00"):
        raise _malformed("unexpected bytes after the PEM certificates")
    if not ders:
        raise _malformed("no certificate in the certification data")
    return ders
