"""Verify a worker's attestation: the one function the SDK, the manager and the key manager call.

:func:`verify_worker_evidence` takes the worker record's ``proofDataType`` and ``proofData`` and the
keys the caller is about to use, and either returns the :class:`Verdict` the policy accepts or
raises :class:`AttestationError` naming the first failed rule. The caller need not know which kind
of evidence it is; every kind ends with the same binding check: the report data must be
:func:`~adytum.attestation.quote.report_data_for` (verification key, encryption key, worker id),
so a key the host swapped after attestation is refused.

proofDataType / proofData:

* ``SIMULATED-IAS`` — see :mod:`adytum.attestation.service`. Accepted only when its chain ends at
  one of ``trusted_roots`` (a development root the caller trusts explicitly); the verdict's kind
  is ``"simulated"``.
* ``TEE-SGX-IAS`` — Avalon's EPID proofData ``{"verification_report", "ias_report_signature"
  (base64), "ias_report_signing_certificate" (PEM)}``, checked by
  :func:`adytum.attestation.sgx.verify_ias_report` against Intel's IAS Report Signing CA.
* ``TEE-SGX-DCAP`` (and ``TEE-TDX-DCAP``) — ``{"quote": "<base64 DCAP quote>", "collateral":
  <dcap-qvl QuoteCollateralV3 object, or its JSON text>}`` (see :mod:`adytum.attestation.gramine`),
  checked by :func:`adytum.attestation.sgx.verify_dcap_quote`; ``collateral=`` overrides the
  published collateral with fresher collateral the caller fetched itself.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from adytum.attestation.errors import AttestationError, Reason, json_object
from adytum.attestation.policy import IAS_STATUS_MAP, Policy, Verdict
from adytum.attestation.quote import parse_quote_body, report_data_for
from adytum.attestation.service import PROOF_DATA_TYPE as SIMULATED_IAS
from adytum.attestation.service import Evidence
from adytum.attestation.sgx.collateral import Collateral
from adytum.attestation.sgx.dcap import verify_dcap_quote
from adytum.attestation.sgx.ias import verify_ias_report
from adytum.attestation.sgx.x509chain import key_id, load_pem_chain, verify_chain

__all__ = ["SIMULATED_IAS", "TEE_SGX_IAS", "TEE_SGX_DCAP", "TEE_TDX_DCAP", "PROOF_DATA_TYPES", "check_key_binding", "verify_evidence", "verify_worker_evidence"]

TEE_SGX_IAS = "TEE-SGX-IAS"
TEE_SGX_DCAP = "TEE-SGX-DCAP"
TEE_TDX_DCAP = "TEE-TDX-DCAP"
PROOF_DATA_TYPES = (SIMULATED_IAS, TEE_SGX_IAS, TEE_SGX_DCAP, TEE_TDX_DCAP)
_REVOKED = {"GROUP_REVOKED", "SIGNATURE_REVOKED", "KEY_REVOKED"}


def verify_worker_evidence(
    proof_data_type: str,
    proof_data: str,
    *,
    verifying_key: str,
    encryption_key: str,
    worker_id: str,
    policy: Policy,
    trusted_roots: Sequence[x509.Certificate],
    ias_anchor: x509.Certificate | None = None,
    dcap_anchors: Sequence[x509.Certificate] | None = None,
    collateral: Collateral | None = None,
) -> Verdict:
    """Verify ``proof_data`` and its binding of the worker's keys; return the accepted verdict.

    ``trusted_roots`` are the development roots trusted for simulated evidence (empty: refuse all
    simulated evidence). ``ias_anchor`` / ``dcap_anchors`` default to the shipped Intel anchors.
    Raises :class:`AttestationError`; its ``reason`` says which rule failed.
    """
    verdict = verify_evidence(proof_data_type, proof_data, policy=policy, trusted_roots=trusted_roots,
                              ias_anchor=ias_anchor, dcap_anchors=dcap_anchors, collateral=collateral)
    check_key_binding(verdict, verifying_key=verifying_key, encryption_key=encryption_key, worker_id=worker_id)
    return verdict


def verify_evidence(
    proof_data_type: str,
    proof_data: str,
    *,
    policy: Policy,
    trusted_roots: Sequence[x509.Certificate],
    ias_anchor: x509.Certificate | None = None,
    dcap_anchors: Sequence[x509.Certificate] | None = None,
    collateral: Collateral | None = None,
) -> Verdict:
    """Verify ``proof_data`` alone and return the verdict ``policy`` accepts; what the report data
    must bind is the caller's rule (``policy.report_data_prefix`` or :func:`check_key_binding`)."""
    if not isinstance(proof_data, str) or not proof_data:
        raise AttestationError(Reason.UNSUPPORTED, f"no attestation evidence presented (proofDataType {proof_data_type!r})")
    if proof_data_type == SIMULATED_IAS:
        verdict = _verify_simulated(proof_data, policy, trusted_roots)
    elif proof_data_type == TEE_SGX_IAS:
        verdict = _verify_ias(proof_data, policy, ias_anchor)
    elif proof_data_type in (TEE_SGX_DCAP, TEE_TDX_DCAP):
        verdict = _verify_dcap(proof_data, policy, dcap_anchors, collateral)
    else:
        raise AttestationError(Reason.UNSUPPORTED, f"unknown proofDataType {proof_data_type!r} (known: {', '.join(PROOF_DATA_TYPES)})")
    return verdict


def check_key_binding(verdict: Verdict, *, verifying_key: str, encryption_key: str, worker_id: str) -> None:
    """Raise ``REPORT_DATA`` unless the verdict's report data binds exactly these keys and worker id."""
    expected = report_data_for(verifying_key, encryption_key, worker_id)
    if not hmac.compare_digest(verdict.report_data, expected):
        raise AttestationError(
            Reason.REPORT_DATA,
            "the attested report data does not bind this verification key, encryption key and worker id "
            "(a key was replaced after attestation, or the enclave bound something else)",
            verdict,
        )


# --- simulated ---------------------------------------------------------------------------------


def _check_trusted_top(certs: Sequence[x509.Certificate], roots: Sequence[x509.Certificate]) -> None:
    if not roots:
        raise AttestationError(Reason.CHAIN, "simulated evidence needs an explicitly trusted development root; none was given")
    top = certs[-1]
    if key_id(top) in {key_id(r) for r in roots} or any(r.subject == top.issuer for r in roots):
        return
    raise AttestationError(Reason.CHAIN, "the report's certificate chain does not end at a trusted development root")


def _check_signing_certificate(chain: Sequence[x509.Certificate]) -> ec.EllipticCurvePublicKey:
    leaf = chain[0]
    if len(chain) < 2:
        raise AttestationError(Reason.CHAIN, "the report must be signed by a certificate issued by the root, not by the root")
    try:
        constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
        if constraints.ca:
            raise AttestationError(Reason.CHAIN, "the report-signing certificate is a CA certificate")
    except x509.ExtensionNotFound:
        pass
    except (ValueError, x509.DuplicateExtension) as exc:
        raise AttestationError(Reason.MALFORMED, f"report-signing certificate has malformed extensions ({exc})") from None
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
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _verify_simulated(proof_data: str, policy: Policy, roots: Sequence[x509.Certificate]) -> Verdict:
    evidence = Evidence.from_proof_data(proof_data)
    certs = load_pem_chain(evidence.certificates, "simulated report-signing certificate chain")
    if not certs:
        raise AttestationError(Reason.MALFORMED, "proofData carries no PEM certificate chain")
    _check_trusted_top(certs, roots)
    chain = verify_chain(certs, roots, policy.at)
    key = _check_signing_certificate(chain)
    try:
        key.verify(evidence.signature, evidence.report, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise AttestationError(Reason.SIGNATURE, "simulated report signature does not verify over the report bytes") from None
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
        verified_at=policy.at,
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
    return policy.enforce(verdict)


# --- hardware ----------------------------------------------------------------------------------


def _json_object(proof_data: str, kind: str) -> dict[str, Any]:
    return json_object(proof_data, f"{kind} proofData")


def _verify_ias(proof_data: str, policy: Policy, anchor: x509.Certificate | None) -> Verdict:
    obj = _json_object(proof_data, TEE_SGX_IAS)
    report, sig, certs = (obj.get(k) for k in ("verification_report", "ias_report_signature", "ias_report_signing_certificate"))
    if not all(isinstance(v, str) for v in (report, sig, certs)):
        raise AttestationError(Reason.MALFORMED, "TEE-SGX-IAS proofData needs string verification_report, ias_report_signature, ias_report_signing_certificate")
    try:
        signature = base64.b64decode(sig, validate=True)
    except binascii.Error:
        raise AttestationError(Reason.MALFORMED, "ias_report_signature is not base64") from None
    return verify_ias_report(report.encode("utf-8"), signature, certs.encode("ascii", "replace"), policy, anchor)


def _verify_dcap(proof_data: str, policy: Policy, anchors: Sequence[x509.Certificate] | None, collateral: Collateral | None) -> Verdict:
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
    return verify_dcap_quote(quote, collateral, policy, anchors=anchors)
