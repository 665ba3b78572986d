"""Verify an Intel DCAP quote (SGX v3, SGX/TDX v4, TDX v5) against collateral and a policy.

Order follows Intel's QVL: PCK chain to the Intel SGX Root CA key, CRLs and revocation, TCB info
and QE identity signatures and windows, their match with the PCK certificate and the quote's
TEE, QE report signature by the PCK key, QE report data binding the attestation key, QE
identity, quote signature by the attestation key, TCB level status. Then the policy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from adytum.attestation.errors import AttestationError, Reason
from adytum.attestation.policy import Policy, Verdict, require_aware
from adytum.attestation.sgx.anchors import intel_sgx_root_ca
from adytum.attestation.sgx.collateral import Collateral, SignedDocument, raw_signature_to_der, verify_signed_document
from adytum.attestation.sgx.pck import PckInfo, parse_pck_extension
from adytum.attestation.sgx.quote import Quote, TdReport, parse_quote
from adytum.attestation.sgx.tcb import REVOKED, TcbResult, evaluate_tcb
from adytum.attestation.sgx.x509chain import check_not_revoked, load_pem_chain, verify_chain, verify_crl

__all__ = ["QuoteCheck", "verify_quote_signatures", "verify_dcap_quote"]


@dataclass(frozen=True)
class QuoteCheck:
    """A quote whose signatures and PCK chain verified, with what its PCK certificate says."""

    quote: Quote
    chain: tuple[x509.Certificate, ...]
    pck: PckInfo


def _verify_ecdsa(key: ec.EllipticCurvePublicKey, raw_sig: bytes, data: bytes, reason: Reason, what: str) -> None:
    try:
        key.verify(raw_signature_to_der(raw_sig), data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise AttestationError(reason, f"{what} does not verify") from None


def _pck_chain(quote: Quote, anchors: Sequence[x509.Certificate], at: datetime) -> tuple[x509.Certificate, ...]:
    chain = load_pem_chain(quote.signature.certification_data, "PCK certificate chain")
    path = tuple(verify_chain(chain, anchors, at))
    if len(path) < 3:
        raise AttestationError(Reason.CHAIN, "PCK chain must be leaf, PCK CA and root")
    leaf_cn = path[0].subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if not leaf_cn or "SGX PCK Certificate" not in str(leaf_cn[0].value):
        raise AttestationError(Reason.CHAIN, "leaf certificate is not an SGX PCK Certificate")
    return path


def _check_quote_crypto(quote: Quote, leaf: x509.Certificate) -> None:
    sig = quote.signature
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise AttestationError(Reason.CHAIN, "PCK certificate key is not an EC key")
    _verify_ecdsa(
        key, sig.qe_report_signature, sig.qe_report.raw, Reason.QE_SIGNATURE, "QE report signature by the PCK key"
    )
    binding = hashlib.sha256(sig.attestation_key + sig.qe_auth_data).digest()
    if sig.qe_report.report_data != binding + bytes(32):
        raise AttestationError(Reason.QE_BINDING, "QE report data is not SHA-256(attestation key || QE auth data)")
    _verify_ecdsa(
        sig.attestation_public_key,
        sig.signature,
        quote.signed_bytes,
        Reason.SIGNATURE,
        "quote signature by the attestation key",
    )


def verify_quote_signatures(
    quote_bytes: bytes, *, at: datetime, anchors: Iterable[x509.Certificate] | None = None
) -> QuoteCheck:
    """Parse a quote and check at time ``at`` everything it proves on its own: PCK chain, QE report,
    binding, quote signature.

    No collateral: this says the quote comes from a genuine Intel platform, not how current it is.
    """
    require_aware(at)
    quote = parse_quote(quote_bytes)
    chain = _pck_chain(quote, list(anchors or [intel_sgx_root_ca()]), at)
    pck = parse_pck_extension(chain[0])
    _check_quote_crypto(quote, chain[0])
    return QuoteCheck(quote, chain, pck)


def _check_crls(
    chain: Sequence[x509.Certificate], collateral: Collateral, policy: Policy, at: datetime
) -> tuple[list[str], list[datetime], list[datetime]]:
    unchecked: list[str] = []
    starts: list[datetime] = []
    ends: list[datetime] = []
    for crl, issuer, subjects, name in (
        (collateral.pck_crl, chain[1], chain[:1], "pck-crl"),
        (collateral.root_ca_crl, chain[-1], chain[1:-1], "root-ca-crl"),
    ):
        if crl is None:
            if policy.require_crls:
                raise AttestationError(Reason.COLLATERAL, f"collateral has no {name.replace('-', ' ').upper()}")
            unchecked.append(name)
            continue
        what = "PCK CRL" if name == "pck-crl" else "Root CA CRL"
        verify_crl(crl, issuer, at, what)
        for cert in subjects:
            check_not_revoked(cert, crl, what)
        starts.append(crl.last_update_utc)
        if crl.next_update_utc is not None:
            ends.append(crl.next_update_utc)
    return unchecked, starts, ends


def _check_document(
    doc: SignedDocument | None, name: str, collateral: Collateral, anchors: Sequence[x509.Certificate], at: datetime
) -> SignedDocument:
    if doc is None:
        raise AttestationError(Reason.COLLATERAL, f"collateral has no {name}")
    verify_signed_document(doc, anchors, at, collateral.root_ca_crl)
    return doc


def _check_collateral_matches(
    tcb_info: dict[str, Any], qe_identity: dict[str, Any], quote: Quote, pck: PckInfo
) -> None:
    tdx = quote.is_tdx
    version = tcb_info.get("version")
    if not isinstance(version, int) or version not in (2, 3):
        raise AttestationError(Reason.UNSUPPORTED, f"TCB info version {version!r}")
    if version >= 3 and tcb_info.get("id") != ("TDX" if tdx else "SGX"):
        raise AttestationError(
            Reason.COLLATERAL, f"TCB info is for {tcb_info.get('id')}, the quote is {'TDX' if tdx else 'SGX'}"
        )
    if version < 3 and tdx:
        raise AttestationError(Reason.COLLATERAL, "TCB info version 2 cannot describe a TDX platform")
    if tcb_info.get("tcbType", 0) != 0:
        raise AttestationError(Reason.UNSUPPORTED, f"TCB type {tcb_info.get('tcbType')!r}")
    if str(tcb_info.get("fmspc", "")).lower() != pck.fmspc.hex():
        raise AttestationError(
            Reason.COLLATERAL, f"TCB info is for FMSPC {tcb_info.get('fmspc')}, PCK says {pck.fmspc.hex()}"
        )
    if str(tcb_info.get("pceId", "")).lower() != pck.pce_id.hex():
        raise AttestationError(
            Reason.COLLATERAL, f"TCB info is for PCE ID {tcb_info.get('pceId')}, PCK says {pck.pce_id.hex()}"
        )
    wanted = "TD_QE" if tdx else "QE"
    if qe_identity.get("id") != wanted or qe_identity.get("version") != 2:
        raise AttestationError(
            Reason.COLLATERAL, f"QE identity is {qe_identity.get('id')} v{qe_identity.get('version')}, need {wanted} v2"
        )


def _verdict(
    quote: Quote,
    pck: PckInfo,
    tcb: TcbResult,
    at: datetime,
    starts: list[datetime],
    ends: list[datetime],
    issued: datetime,
    unchecked: list[str],
) -> Verdict:
    body = quote.body
    common = Verdict(
        kind="sgx-dcap",
        tcb_status=tcb.status,
        verified_at=at,
        advisory_ids=tcb.advisory_ids,
        debug=body.debug,
        report_data=body.report_data,
        fmspc=pck.fmspc.hex(),
        valid_from=max(starts),
        valid_until=min(ends),
        issued_at=issued,
        tcb_date=tcb.tcb_date,
        platform_status=tcb.platform_status,
        qe_status=tcb.qe_status,
        tdx_module_status=tcb.tdx_module_status,
        unchecked=tuple(unchecked),
    )
    if isinstance(body, TdReport):
        return replace(
            common,
            kind="tdx-dcap",
            mr_td=body.mr_td,
            rtmrs=body.rtmrs,
            mr_seam=body.mr_seam,
            tee_tcb_svn=body.tee_tcb_svn,
        )
    return replace(
        common, mr_enclave=body.mr_enclave, mr_signer=body.mr_signer, isv_prod_id=body.isv_prod_id, isv_svn=body.isv_svn
    )


def verify_dcap_quote(
    quote_bytes: bytes,
    collateral: Collateral,
    policy: Policy,
    *,
    at: datetime,
    anchors: Iterable[x509.Certificate] | None = None,
) -> Verdict:
    """Verify a DCAP quote at time ``at`` and return the :class:`Verdict` the policy accepts.

    Raises :class:`AttestationError` naming the first failed rule. ``anchors`` defaults to the
    shipped Intel SGX Root CA; any certificate with the same key is accepted in its place.
    """
    require_aware(at)
    anchor_list = list(anchors or [intel_sgx_root_ca()])
    quote = parse_quote(quote_bytes)
    chain = _pck_chain(quote, anchor_list, at)
    pck = parse_pck_extension(chain[0])
    unchecked, starts, ends = _check_crls(chain, collateral, policy, at)
    tcb_doc = _check_document(collateral.tcb_info, "TCB info", collateral, anchor_list, at)
    qe_doc = _check_document(collateral.qe_identity, "QE identity", collateral, anchor_list, at)
    _check_collateral_matches(tcb_doc.body, qe_doc.body, quote, pck)
    _check_quote_crypto(quote, chain[0])
    tcb = evaluate_tcb(tcb_doc.body, qe_doc.body, pck, quote)
    if tcb.status == REVOKED:
        raise AttestationError(
            Reason.REVOKED, f"Intel lists this TCB as Revoked (platform {tcb.platform_status}, QE {tcb.qe_status})"
        )
    signers = (*chain, *tcb_doc.issuer_chain, *qe_doc.issuer_chain)
    starts += [c.not_valid_before_utc for c in signers] + [tcb_doc.issue_date, qe_doc.issue_date]
    ends += [c.not_valid_after_utc for c in signers] + [tcb_doc.next_update, qe_doc.next_update]
    issued = [tcb_doc.issue_date, qe_doc.issue_date]
    if collateral.pck_crl is not None:
        issued.append(collateral.pck_crl.last_update_utc)
    return policy.enforce(_verdict(quote, pck, tcb, at, starts, ends, min(issued), unchecked), at=at)
