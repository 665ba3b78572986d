"""Tell which kind of hardware evidence some bytes are, and verify them with a collateral bundle.

Recognised by content: an SEV-SNP report (1184 bytes, version 2/3/5, ECDSA P-384), a Nitro
document (a COSE_Sign1 CBOR array, raw or base64), NVIDIA GPU evidence (an SPDM 1.1
GET_MEASUREMENTS exchange, raw or hex) and an Intel DCAP quote (SGX v3/v4, TDX v4/v5). IAS
evidence is JSON and handled by the SGX package's own loader.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import datetime

from cryptography import x509

from adytum.attestation.bundle import Bundle
from adytum.attestation.errors import AttestationError, Reason
from adytum.attestation.nitro import is_nitro_document, verify_nitro_document
from adytum.attestation.nvidia import is_gpu_evidence, verify_gpu_evidence
from adytum.attestation.policy import Policy, Verdict
from adytum.attestation.sevsnp import is_snp_report, verify_snp_report

__all__ = ["DCAP", "GPU", "NITRO", "SNP", "detect_format", "verify_detected"]

SNP, NITRO, GPU, DCAP = "sev-snp", "aws-nitro", "nvidia-gpu", "dcap-quote"


def _unwrapped(data: bytes) -> list[bytes]:
    """The bytes themselves, then their hex or base64 decoding if they are such text."""
    out = [data]
    text = data.strip()
    if text and all(c in b"0123456789abcdefABCDEF" for c in text) and len(text) % 2 == 0:
        out.append(bytes.fromhex(text.decode("ascii")))
    else:
        try:
            out.append(base64.b64decode(b"".join(text.split()), validate=True))
        except (binascii.Error, ValueError):
            pass
    return out


def detect_format(data: bytes) -> tuple[str, bytes] | None:
    """(format, the evidence's binary bytes), or None if it is none of the hardware formats."""
    for candidate in _unwrapped(data):
        if is_snp_report(candidate):
            return SNP, candidate
        if is_nitro_document(candidate):
            return NITRO, candidate
        if is_gpu_evidence(candidate):
            return GPU, candidate
        if len(candidate) >= 48 and candidate[1] == 0 and candidate[0] in (3, 4, 5):
            return DCAP, candidate
    return None


def verify_detected(
    kind: str,
    evidence: bytes,
    bundle: Bundle,
    policy: Policy,
    *,
    at: datetime,
    roots: Sequence[x509.Certificate] | None = None,
) -> Verdict:
    """Verify evidence of a non-Intel ``kind`` (from :func:`detect_format`) with the bundle's collateral."""
    if kind == SNP:
        return verify_snp_report(evidence, bundle.certificates, policy, at=at, roots=roots, crls=bundle.crls)
    if kind == NITRO:
        return verify_nitro_document(evidence, policy, at=at, roots=roots)
    if kind == GPU:
        return verify_gpu_evidence(evidence, bundle.certificates, policy, at=at, roots=roots, rims=bundle.rims)
    raise AttestationError(Reason.UNSUPPORTED, f"no bundle verifier for {kind} evidence")
