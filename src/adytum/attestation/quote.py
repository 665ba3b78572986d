"""The simulated quote: what the enclave says about itself, signed by the platform quoting key.

It plays the role of an SGX quote: the platform (here a P-256 key from ``adytum init``, there the
CPU's quoting enclave) vouches for the enclave's identity and 64 bytes of report data chosen by
the enclave. The report data binds every key a requester uses (:func:`report_data_for`).

Layout (240 bytes; integers little-endian, as in SGX)::

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

The body (bytes 0..175) is what the attestation service copies into its report as
``isvEnclaveQuoteBody``. Imports: standard library, ``cryptography``, and this package's errors.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from adytum.attestation.errors import AttestationError, Reason

__all__ = [
    "BODY_LEN",
    "QUOTE_LEN",
    "Quoter",
    "SimulatedQuote",
    "SimulatedQuoter",
    "make_quote",
    "parse_quote",
    "parse_quote_body",
    "platform_id",
    "report_data_for",
    "verify_quote_signature",
]

VERSION = 1
KEY_TYPE_P256 = 2
FLAG_DEBUG = 0x02
BODY_LEN = 176
SIGNATURE_LEN = 64
QUOTE_LEN = BODY_LEN + SIGNATURE_LEN
_BODY = struct.Struct("<HH32s32sHHQ64s32s")
_REPORT_DATA_DOMAIN = b"adytum-report-data/1"
assert _BODY.size == BODY_LEN


def _frame(*items: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(item)) + item for item in items)


def report_data_for(verifying_key_pem: str, encryption_key_pem: str, worker_id: str) -> bytes:
    """The 64 report-data bytes that bind a worker's keys: SHA-256(framed keys and id) ‖ 32 zero bytes.

    Each item is length-prefixed (u32 big-endian) after a domain label, so no two different key
    sets frame to the same bytes. Keys are the exact PEM strings the worker record publishes; the
    worker id is compared in lower case (the SDK and the enclave both lower-case it).
    """
    digest = hashlib.sha256(
        _frame(_REPORT_DATA_DOMAIN, verifying_key_pem.encode("utf-8"), encryption_key_pem.encode("utf-8"),
               worker_id.lower().encode("utf-8"))
    ).digest()
    return digest + bytes(32)


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


def make_quote(
    quoting_key: ec.EllipticCurvePrivateKey,
    *,
    mr_enclave: bytes,
    mr_signer: bytes,
    isv_prod_id: int,
    isv_svn: int,
    debug: bool,
    report_data: bytes,
) -> bytes:
    """Build and sign a quote (done inside the enclave, with the platform's quoting key)."""
    if not isinstance(quoting_key.curve, ec.SECP256R1):
        raise ValueError("the quoting key must be ECDSA P-256")
    for name, value in (("isv_prod_id", isv_prod_id), ("isv_svn", isv_svn)):
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"{name} must fit in 16 bits")
    body = _BODY.pack(
        VERSION,
        KEY_TYPE_P256,
        _check_len("mr_enclave", mr_enclave, 32),
        _check_len("mr_signer", mr_signer, 32),
        isv_prod_id,
        isv_svn,
        FLAG_DEBUG if debug else 0,
        _check_len("report_data", report_data, 64),
        platform_id(quoting_key.public_key()),
    )
    r, s = utils.decode_dss_signature(quoting_key.sign(body, ec.ECDSA(hashes.SHA256())))
    return body + r.to_bytes(32, "big") + s.to_bytes(32, "big")


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
    return SimulatedQuote(version, mr_enclave, mr_signer, prod, svn, bool(flags & FLAG_DEBUG), report_data, pid, bytes(body))


def parse_quote(data: bytes) -> SimulatedQuote:
    """Parse a whole quote (body and signature). Does not check the signature."""
    if len(data) != QUOTE_LEN:
        raise _malformed(f"must be {QUOTE_LEN} bytes, got {len(data)}")
    parsed = parse_quote_body(data[:BODY_LEN])
    return SimulatedQuote(**{**parsed.__dict__, "signature": bytes(data[BODY_LEN:])})


def verify_quote_signature(quote: SimulatedQuote, public_key: ec.EllipticCurvePublicKey) -> None:
    """Raise ``SIGNATURE`` unless ``quote`` is signed by ``public_key`` and names it as its platform."""
    if quote.platform_id != platform_id(public_key):
        raise AttestationError(Reason.SIGNATURE, "simulated quote names another platform than the key checking it")
    r, s = int.from_bytes(quote.signature[:32], "big"), int.from_bytes(quote.signature[32:], "big")
    try:
        public_key.verify(utils.encode_dss_signature(r, s), quote.body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise AttestationError(Reason.SIGNATURE, "simulated quote signature by the platform quoting key does not verify") from None


class Quoter(Protocol):
    """What the enclave needs to attest: report data in, quote out. Simulated and Gramine alike."""

    #: ``"simulated"`` or ``"sgx-dcap"``: which service turns the quote into proofData.
    kind: str

    def quote(self, report_data: bytes) -> bytes: ...


@dataclass(frozen=True)
class SimulatedQuoter:
    """Quotes for one enclave identity with the simulated platform's quoting key."""

    quoting_key: ec.EllipticCurvePrivateKey = field(repr=False)
    mr_enclave: bytes
    mr_signer: bytes
    isv_prod_id: int = 0
    isv_svn: int = 0
    debug: bool = False
    kind: str = "simulated"

    def quote(self, report_data: bytes) -> bytes:
        return make_quote(
            self.quoting_key,
            mr_enclave=self.mr_enclave,
            mr_signer=self.mr_signer,
            isv_prod_id=self.isv_prod_id,
            isv_svn=self.isv_svn,
            debug=self.debug,
            report_data=report_data,
        )
