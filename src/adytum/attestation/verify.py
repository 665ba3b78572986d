"""Verify a worker's attestation: the one function the SDK, the manager and the key manager call.

:func:`verify_worker_evidence` takes the worker record's ``proofDataType`` and ``proofData``, the
keys the caller is about to use and the verification time ``at``, and either returns the
:class:`Verdict` the policy accepts or raises :class:`AttestationError` naming the first failed
rule. The caller need not know which kind of evidence it is; every kind ends with the same binding
check: the report data must be :func:`report_data_for` (verification key, encryption key, worker
id, and the HPKE keys if the worker has any), so a key the host swapped after attestation is refused. Nothing here reads the clock: ``at``
is always the caller's, so old evidence can be judged at its own time.

proofDataType / proofData:

* ``SIMULATED-IAS`` — see :mod:`adytum.attestation.simulated`. Accepted only when its chain ends at
  one of ``trusted_roots`` (a development root the caller trusts explicitly); the verdict's kind
  is ``"simulated"``.
* ``TEE-SGX-IAS`` — Avalon's EPID proofData ``{"verification_report", "ias_report_signature"
  (base64), "ias_report_signing_certificate" (PEM)}``, checked by
  :func:`adytum.attestation.sgx.verify_ias_report` against Intel's IAS Report Signing CA.
* ``TEE-SGX-DCAP`` (and ``TEE-TDX-DCAP``) — the JSON object ``{"quote": "<base64 DCAP quote>",
  "collateral": <dcap-qvl QuoteCollateralV3 object, or its JSON text>}``, checked by
  :func:`adytum.attestation.sgx.verify_dcap_quote`. The quote is what the enclave's platform
  produced over :func:`report_data_for` (under Gramine-SGX: written to
  ``/dev/attestation/user_report_data``, read back from ``/dev/attestation/quote``); the
  collateral is what the host fetched from a PCCS/PCS for the quote's FMSPC, published so a
  requester can verify offline. ``collateral=`` overrides it with fresher collateral the caller
  fetched itself.
* ``TEE-SEV-SNP`` — ``{"report": "<base64 1184-byte report>", "certificates": "<PEM: VCEK or VLEK,
  optionally ASK/ARK>", "crl": "<base64 DER ARK CRL>" (optional)}``, checked by
  :func:`adytum.attestation.sevsnp.verify_snp_report`; the report data is the key binding.
* ``TEE-AWS-NITRO`` — ``{"document": "<base64 COSE_Sign1>"}``, checked by
  :func:`adytum.attestation.nitro.verify_nitro_document`; ``user_data`` is the key binding.
* ``TEE-NVIDIA-GPU`` — ``{"evidence": "<base64 SPDM exchange>", "certificates": "<PEM device
  chain>"}``, checked by :func:`adytum.attestation.nvidia.verify_gpu_evidence`. SPDM evidence has
  no report data, so it cannot bind a worker's keys alone: as worker evidence it is refused by the
  binding check; it is verified on its own (``verify_evidence``) beside a CPU TEE's evidence.

Non-Intel evidence is chained to ``vendor_roots`` (default: the built-in AMD ARKs, the AWS Nitro
root and NVIDIA's Device Identity CA, :mod:`adytum.attestation.roots`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import struct
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from cryptography import x509

from adytum.attestation.certpool import load_certificates
from adytum.attestation.errors import AttestationError, Reason, json_object
from adytum.attestation.nitro import verify_nitro_document
from adytum.attestation.nvidia import verify_gpu_evidence
from adytum.attestation.policy import Policy, Verdict, require_aware
from adytum.attestation.sevsnp import verify_snp_report
from adytum.attestation.sgx.collateral import Collateral
from adytum.attestation.sgx.dcap import verify_dcap_quote
from adytum.attestation.sgx.ias import verify_ias_report
from adytum.attestation.simulated import SIMULATED_IAS, verify_simulated

__all__ = [
    "PROOF_DATA_TYPES",
    "TEE_SGX_DCAP",
    "TEE_SGX_IAS",
    "TEE_TDX_DCAP",
    "TEE_AWS_NITRO",
    "TEE_NVIDIA_GPU",
    "TEE_SEV_SNP",
    "check_key_binding",
    "report_data_for",
    "verify_evidence",
    "verify_worker_evidence",
]

TEE_SGX_IAS = "TEE-SGX-IAS"
TEE_SGX_DCAP = "TEE-SGX-DCAP"
TEE_TDX_DCAP = "TEE-TDX-DCAP"
TEE_SEV_SNP = "TEE-SEV-SNP"
TEE_AWS_NITRO = "TEE-AWS-NITRO"
TEE_NVIDIA_GPU = "TEE-NVIDIA-GPU"
PROOF_DATA_TYPES = (SIMULATED_IAS, TEE_SGX_IAS, TEE_SGX_DCAP, TEE_TDX_DCAP, TEE_SEV_SNP, TEE_AWS_NITRO, TEE_NVIDIA_GPU)
_REPORT_DATA_DOMAIN = b"adytum-report-data/1"


def _frame(*items: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(item)) + item for item in items)


def report_data_for(
    verifying_key_pem: str, encryption_key_pem: str, worker_id: str, hpke_keys: Mapping[str, str] | None = None
) -> bytes:
    """The 64 report-data bytes that bind a worker's keys: SHA-256(framed keys and id) ‖ 32 zero bytes.

    Each item is length-prefixed (u32 big-endian) after a domain label, so no two different key
    sets frame to the same bytes. Keys are the exact PEM strings the worker record publishes; the
    worker id is compared in lower case (the SDK and the enclave both lower-case it). The HPKE keys
    (`hpkeEncryptionKeys`: suite name -> hex public key) follow as name, key pairs in name order; a
    worker without them frames as before they existed. The enclave quotes over these bytes, whatever
    its kind of evidence.
    """
    suites = sorted((hpke_keys or {}).items())
    digest = hashlib.sha256(
        _frame(
            _REPORT_DATA_DOMAIN,
            verifying_key_pem.encode("utf-8"),
            encryption_key_pem.encode("utf-8"),
            worker_id.lower().encode("utf-8"),
            *(item.encode("utf-8") for pair in suites for item in pair),
        )
    ).digest()
    return digest + bytes(32)


def verify_worker_evidence(
    proof_data_type: str,
    proof_data: str,
    *,
    verifying_key: str,
    encryption_key: str,
    worker_id: str,
    policy: Policy,
    at: datetime,
    trusted_roots: Sequence[x509.Certificate],
    ias_anchor: x509.Certificate | None = None,
    dcap_anchors: Sequence[x509.Certificate] | None = None,
    collateral: Collateral | None = None,
    vendor_roots: Sequence[x509.Certificate] | None = None,
    hpke_keys: Mapping[str, str] | None = None,
) -> Verdict:
    """Verify ``proof_data`` at time ``at`` and its binding of the worker's keys; return the accepted verdict.

    ``trusted_roots`` are the development roots trusted for simulated evidence (empty: refuse all
    simulated evidence). ``ias_anchor`` / ``dcap_anchors`` default to the shipped Intel anchors.
    Raises :class:`AttestationError`; its ``reason`` says which rule failed.
    """
    verdict = verify_evidence(
        proof_data_type,
        proof_data,
        policy=policy,
        at=at,
        trusted_roots=trusted_roots,
        ias_anchor=ias_anchor,
        dcap_anchors=dcap_anchors,
        collateral=collateral,
        vendor_roots=vendor_roots,
    )
    check_key_binding(
        verdict, verifying_key=verifying_key, encryption_key=encryption_key, worker_id=worker_id, hpke_keys=hpke_keys
    )
    return verdict


def verify_evidence(
    proof_data_type: str,
    proof_data: str,
    *,
    policy: Policy,
    at: datetime,
    trusted_roots: Sequence[x509.Certificate],
    ias_anchor: x509.Certificate | None = None,
    dcap_anchors: Sequence[x509.Certificate] | None = None,
    collateral: Collateral | None = None,
    vendor_roots: Sequence[x509.Certificate] | None = None,
) -> Verdict:
    """Verify ``proof_data`` alone at time ``at`` and return the verdict ``policy`` accepts; what the
    report data must bind is the caller's rule (``policy.report_data_prefix`` or :func:`check_key_binding`)."""
    require_aware(at)
    if not isinstance(proof_data, str) or not proof_data:
        raise AttestationError(
            Reason.UNSUPPORTED, f"no attestation evidence presented (proofDataType {proof_data_type!r})"
        )
    if proof_data_type == SIMULATED_IAS:
        verdict = verify_simulated(proof_data, policy, trusted_roots, at=at)
    elif proof_data_type == TEE_SGX_IAS:
        verdict = _verify_ias(proof_data, policy, at, ias_anchor)
    elif proof_data_type in (TEE_SGX_DCAP, TEE_TDX_DCAP):
        verdict = _verify_dcap(proof_data, policy, at, dcap_anchors, collateral)
    elif proof_data_type in (TEE_SEV_SNP, TEE_AWS_NITRO, TEE_NVIDIA_GPU):
        verdict = _verify_vendor(proof_data_type, proof_data, policy, at, vendor_roots)
    else:
        raise AttestationError(
            Reason.UNSUPPORTED, f"unknown proofDataType {proof_data_type!r} (known: {', '.join(PROOF_DATA_TYPES)})"
        )
    return verdict


def check_key_binding(
    verdict: Verdict,
    *,
    verifying_key: str,
    encryption_key: str,
    worker_id: str,
    hpke_keys: Mapping[str, str] | None = None,
) -> None:
    """Raise ``REPORT_DATA`` unless the verdict's report data binds exactly these keys and worker id."""
    expected = report_data_for(verifying_key, encryption_key, worker_id, hpke_keys)
    if not hmac.compare_digest(verdict.report_data, expected):
        raise AttestationError(
            Reason.REPORT_DATA,
            "the attested report data does not bind this verification key, encryption key, HPKE keys and worker "
            "id (a key was replaced, added or removed after attestation, or the enclave bound something else)",
            verdict,
        )


def _json_object(proof_data: str, kind: str) -> dict[str, Any]:
    return json_object(proof_data, f"{kind} proofData")


def _verify_ias(proof_data: str, policy: Policy, at: datetime, anchor: x509.Certificate | None) -> Verdict:
    obj = _json_object(proof_data, TEE_SGX_IAS)
    report, sig, certs = (
        obj.get(k) for k in ("verification_report", "ias_report_signature", "ias_report_signing_certificate")
    )
    if not (isinstance(report, str) and isinstance(sig, str) and isinstance(certs, str)):
        raise AttestationError(
            Reason.MALFORMED,
            "TEE-SGX-IAS proofData needs string verification_report, ias_report_signature, ias_report_signing_certificate",
        )
    try:
        signature = base64.b64decode(sig, validate=True)
    except binascii.Error:
        raise AttestationError(Reason.MALFORMED, "ias_report_signature is not base64") from None
    return verify_ias_report(
        report.encode("utf-8"), signature, certs.encode("ascii", "replace"), policy, at=at, trust_anchor=anchor
    )


def _verify_dcap(
    proof_data: str,
    policy: Policy,
    at: datetime,
    anchors: Sequence[x509.Certificate] | None,
    collateral: Collateral | None,
) -> Verdict:
    obj = _json_object(proof_data, "DCAP")
    try:
        quote = base64.b64decode(obj.get("quote", ""), validate=True)
    except (binascii.Error, TypeError):
        raise AttestationError(Reason.MALFORMED, "DCAP proofData quote is not base64") from None
    if collateral is None:
        published = obj.get("collateral")
        if published is None:
            raise AttestationError(Reason.COLLATERAL, "DCAP proofData carries no collateral and none was given")
        text = published if isinstance(published, str) else json.dumps(published)
        collateral = Collateral.from_dcap_qvl_json(text.encode("utf-8"))
    return verify_dcap_quote(quote, collateral, policy, at=at, anchors=anchors)


def _b64(obj: dict[str, Any], name: str, kind: str) -> bytes:
    try:
        return base64.b64decode(obj.get(name) or "", validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise AttestationError(Reason.MALFORMED, f"{kind} proofData {name} is not base64") from None


def _verify_vendor(
    kind: str, proof_data: str, policy: Policy, at: datetime, roots: Sequence[x509.Certificate] | None
) -> Verdict:
    obj = _json_object(proof_data, kind)
    pem = obj.get("certificates") or ""
    certs = load_certificates(pem.encode("ascii", "replace"), f"{kind} certificates") if pem else []
    if kind == TEE_AWS_NITRO:
        return verify_nitro_document(_b64(obj, "document", kind), policy, at=at, roots=roots)
    if kind == TEE_NVIDIA_GPU:
        return verify_gpu_evidence(_b64(obj, "evidence", kind), certs, policy, at=at, roots=roots)
    crls = []
    if obj.get("crl"):
        try:
            crls.append(x509.load_der_x509_crl(_b64(obj, "crl", kind)))
        except ValueError:
            raise AttestationError(Reason.MALFORMED, "TEE-SEV-SNP proofData crl is not a DER CRL") from None
    return verify_snp_report(_b64(obj, "report", kind), certs, policy, at=at, roots=roots, crls=crls)
