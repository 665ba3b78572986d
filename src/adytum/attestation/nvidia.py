"""NVIDIA Hopper/Blackwell confidential-computing GPU evidence: a signed SPDM 1.1 GET_MEASUREMENTS exchange.

The evidence is the verifier's GET_MEASUREMENTS request (with its 32-byte nonce) followed by the
GPU's response: 64 measurement blocks, the GPU's nonce, NVIDIA's opaque fields (driver and VBIOS
versions, project, FWID, ...) and an ECDSA P-384 signature over SHA-384 of request ‖ response up to
the signature. The checks, in order: the SPDM layout, the signature with the device leaf's key, the
device chain (GSP FMC leaf → BROM → provisioner → product identity CA) to NVIDIA's Device Identity
CA valid at ``at``, the FWID opaque field equal to the one in the leaf's DICE TcbInfo extension
(older 535.x firmware has none), the request nonce (``Policy.nonce``), and, when RIMs are given,
each RIM's signature and chain (:mod:`adytum.attestation.rim`) and every active golden measurement
against the block of the same index.

What is *not* verified, and the verdict says so in ``unchecked``: OCSP status of the device chain
and of the RIM chain (NVIDIA serves them online only), and NVIDIA's RIM service (RIMs must be given).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from adytum.attestation.certpool import chain_to_root
from adytum.attestation.errors import AttestationError, Reason
from adytum.attestation.policy import Policy, Verdict, require_aware
from adytum.attestation.rim import Rim, verify_rim
from adytum.attestation.roots import nvidia_device_root, nvidia_rim_root

__all__ = ["KIND", "GpuEvidence", "is_gpu_evidence", "parse_evidence", "verify_gpu_evidence"]

KIND = "nvidia-gpu"
_REQUEST_SIZE = 37  # version, code 0xE0, param1, param2, nonce[32], slot id
_SIGNATURE_SIZE = 96
_FWID = 20
_OPAQUE_TEXT = {3: "driver_version", 17: "project", 18: "project_sku", 15: "chip_sku"}
_DICE_TCB_INFO = ("2.23.133.5.4.1", "2.23.133.5.4.1.1")


def _malformed(what: str) -> AttestationError:
    return AttestationError(Reason.MALFORMED, f"NVIDIA GPU evidence: {what}")


@dataclass(frozen=True)
class GpuEvidence:
    raw: bytes
    request_nonce: bytes
    response_nonce: bytes
    blocks: dict[int, bytes]
    opaque: dict[int, bytes]
    signed: bytes
    signature: bytes


def is_gpu_evidence(data: bytes) -> bool:
    return len(data) > _REQUEST_SIZE + 8 and data[0] == 0x11 and data[1] == 0xE0 and data[_REQUEST_SIZE + 1] == 0x60


def parse_evidence(data: bytes) -> GpuEvidence:
    """Split the SPDM request and response (DSP0274 1.1 GET_MEASUREMENTS / MEASUREMENTS)."""
    if not is_gpu_evidence(data):
        raise _malformed("not an SPDM 1.1 GET_MEASUREMENTS request followed by its response")
    if not data[2] & 1:
        raise _malformed("the request did not ask for a signature")
    response = data[_REQUEST_SIZE:]
    if response[0] != 0x11:
        raise _malformed(f"response SPDM version 0x{response[0]:02x} is not 1.1")
    count = response[4]
    length = int.from_bytes(response[5:8], "little")
    pos = 8 + length
    if pos + 34 > len(response):
        raise _malformed("truncated response")
    blocks = _blocks(response[8:pos], count)
    nonce = response[pos : pos + 32]
    (opaque_length,) = struct.unpack_from("<H", response, pos + 32)
    pos += 34
    if pos + opaque_length + _SIGNATURE_SIZE != len(response):
        raise _malformed("the response's length is not its fields' (a P-384 signature ends it)")
    opaque = _opaque(response[pos : pos + opaque_length])
    return GpuEvidence(
        raw=bytes(data),
        request_nonce=bytes(data[4:36]),
        response_nonce=bytes(nonce),
        blocks=blocks,
        opaque=opaque,
        signed=bytes(data[: len(data) - _SIGNATURE_SIZE]),
        signature=bytes(data[len(data) - _SIGNATURE_SIZE :]),
    )


def _blocks(record: bytes, count: int) -> dict[int, bytes]:
    blocks: dict[int, bytes] = {}
    pos = 0
    for _ in range(count):
        if pos + 7 > len(record):
            raise _malformed("truncated measurement block")
        index, _spec, size = struct.unpack_from("<BBH", record, pos)
        _type, value_size = struct.unpack_from("<BH", record, pos + 4)
        if value_size + 3 != size or pos + 4 + size > len(record) or index in blocks:
            raise _malformed(f"bad measurement block {index}")
        blocks[index] = bytes(record[pos + 7 : pos + 4 + size])
        pos += 4 + size
    if pos != len(record):
        raise _malformed("bytes after the last measurement block")
    return blocks


def _opaque(data: bytes) -> dict[int, bytes]:
    fields: dict[int, bytes] = {}
    pos = 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise _malformed("truncated opaque field")
        kind, size = struct.unpack_from("<HH", data, pos)
        if pos + 4 + size > len(data) or kind in fields:
            raise _malformed(f"bad opaque field {kind}")
        fields[kind] = bytes(data[pos + 4 : pos + 4 + size])
        pos += 4 + size
    return fields


def _text(raw: bytes) -> str:
    return raw.rstrip(b"\x00").decode("ascii", "replace")


def _vbios(raw: bytes) -> str:
    if len(raw) < 5:
        return raw.hex()
    word = int.from_bytes(raw[:4], "little")
    return f"{word >> 24:02x}.{(word >> 16) & 0xFF:02x}.{(word >> 8) & 0xFF:02x}.{word & 0xFF:02x}.{raw[4]:02x}"


def _leaf(evidence: GpuEvidence, certs: Sequence[x509.Certificate]) -> x509.Certificate:
    """The certificate whose key signed the evidence (a directory may hold several GPUs' chains)."""
    der = utils.encode_dss_signature(
        int.from_bytes(evidence.signature[:48], "big"), int.from_bytes(evidence.signature[48:], "big")
    )
    for cert in certs:
        try:
            key = cert.public_key()
        except (ValueError, UnsupportedAlgorithm):
            continue
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
            continue
        try:
            key.verify(der, evidence.signed, ec.ECDSA(hashes.SHA384()))
        except InvalidSignature:
            continue
        return cert
    raise AttestationError(Reason.SIGNATURE, "the GPU evidence's signature does not verify with any given certificate")


def _check_fwid(evidence: GpuEvidence, leaf: x509.Certificate) -> bool:
    """FWID in the opaque data must be the one the leaf certificate was issued with; False when there is none."""
    fwid = evidence.opaque.get(_FWID)
    if fwid is None:
        return False
    for ext in leaf.extensions:
        if ext.oid.dotted_string in _DICE_TCB_INFO and isinstance(ext.value, x509.UnrecognizedExtension):
            if b"\x04" + bytes([len(fwid)]) + fwid in ext.value.value:
                return True
    raise AttestationError(Reason.MEASUREMENT, "the evidence's FWID is not the one in the GPU's leaf certificate")


def _compare(evidence: GpuEvidence, rims: Sequence[Rim]) -> None:
    for rim in rims:
        for index, digests in sorted(rim.golden.items()):
            value = evidence.blocks.get(index + 1)
            if value not in digests:
                shown = value.hex() if value is not None else "absent"
                raise AttestationError(
                    Reason.MEASUREMENT,
                    f"measurement block {index + 1} is {shown}, not a golden value of RIM {rim.name} {rim.version}",
                )


def verify_gpu_evidence(
    data: bytes,
    certs: Sequence[x509.Certificate],
    policy: Policy,
    *,
    at: datetime,
    roots: Sequence[x509.Certificate] | None = None,
    rims: Sequence[bytes] = (),
) -> Verdict:
    """Verify SPDM GPU evidence at ``at`` with the device chain in ``certs``; apply ``policy``.

    ``roots`` defaults to NVIDIA's Device Identity CA (for the device chain) and CoRIM root (for the
    RIMs); ``policy.nonce`` is compared with the request nonce. Each RIM (raw XML) must verify, and
    its active measurements must equal the evidence's blocks.
    """
    require_aware(at)
    evidence = parse_evidence(bytes(data))
    leaf = _leaf(evidence, certs)
    path = chain_to_root(leaf, certs, list(roots) if roots is not None else [nvidia_device_root()], at)
    verified_rims = [
        verify_rim(r, at=at, roots=list(roots) if roots is not None else [nvidia_rim_root()]) for r in rims
    ]
    checked = ["spdm-signature", "device-chain-to-nvidia-root", "certificate-validity"]
    unchecked = ["ocsp (device chain)"]
    if _check_fwid(evidence, leaf):
        checked.append("fwid-vs-leaf-certificate")
    else:
        unchecked.append("fwid (this firmware reports none)")
    if verified_rims:
        _compare(evidence, verified_rims)
        checked.append("rim-signature-and-chain")
        checked.append("measurements-vs-rim: " + ", ".join(f"{r.name} {r.version}" for r in verified_rims))
        unchecked.append("ocsp (RIM chain)")
    else:
        unchecked.append("measurements-vs-rim (no RIM given; NVIDIA RIM service not contacted)")
    details = [(name, _text(evidence.opaque[kind])) for kind, name in _OPAQUE_TEXT.items() if kind in evidence.opaque]
    if 6 in evidence.opaque:
        details.append(("vbios_version", _vbios(evidence.opaque[6])))
    details.append(("leaf", leaf.subject.rfc4514_string()))
    verdict = Verdict(
        kind=KIND,
        tcb_status=None,
        verified_at=at,
        measurements=tuple((f"block{i}", v) for i, v in sorted(evidence.blocks.items())),
        nonce=evidence.request_nonce,
        details=tuple(details),
        valid_from=max(c.not_valid_before_utc for c in path),
        valid_until=min([c.not_valid_after_utc for c in path] + [r.valid_until for r in verified_rims]),
        checked=tuple(checked),
        unchecked=tuple(unchecked),
    )
    return policy.enforce(verdict, at=at)
