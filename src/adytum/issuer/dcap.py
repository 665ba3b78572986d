"""The node's attestation service on SGX hardware (host side): DCAP quotes published with their collateral.

The quote is the enclave's (Gramine's ``/dev/attestation/quote``); nothing here vouches for it. This service
only attaches the collateral a verifier needs (TCB info, QE identity, PCK and Root CA CRLs with their issuer
chains, read from a directory the operator fills from a PCCS or Intel's PCS) as ``TEE-SGX-DCAP`` proofData,
so that the node, its peers and requesters verify it offline with :mod:`adytum.attestation.sgx`. The
directory is read afresh for each quote: refreshed collateral is used without a restart.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from adytum.attestation.sgx.collateral import Collateral, SignedDocument, load_collateral
from adytum.attestation.verify import TEE_SGX_DCAP

__all__ = ["DcapAttestation", "to_dcap_qvl_json"]


def _chain_pem(doc: SignedDocument) -> str:
    return "".join(cert.public_bytes(serialization.Encoding.PEM).decode() for cert in doc.issuer_chain)


def _crl_hex(crl: x509.CertificateRevocationList | None) -> str:
    return "" if crl is None else crl.public_bytes(serialization.Encoding.DER).hex()


def to_dcap_qvl_json(collateral: Collateral) -> dict[str, str]:
    """The collateral as dcap-qvl's ``QuoteCollateralV3`` object (what ``TEE-SGX-DCAP`` proofData carries)."""
    out: dict[str, str] = {}
    for name, doc in (("tcb_info", collateral.tcb_info), ("qe_identity", collateral.qe_identity)):
        if doc is not None:
            out[name] = doc.raw.decode("utf-8")
            out[f"{name}_signature"] = doc.signature.hex()
            out[f"{name}_issuer_chain"] = _chain_pem(doc)
    for name, crl in (("pck_crl", collateral.pck_crl), ("root_ca_crl", collateral.root_ca_crl)):
        if crl is not None:
            out[name] = _crl_hex(crl)
    return out


class DcapAttestation:
    """The manager's `AttestationService` for Gramine-SGX enclaves: ``TEE-SGX-DCAP`` evidence, chained to
    Intel's SGX Root CA (built into the verifier, so no root of the host's)."""

    proof_data_type = TEE_SGX_DCAP

    def __init__(self, collateral_dir: Path) -> None:
        self.collateral_dir = collateral_dir
        self.trusted_roots: list[x509.Certificate] = []

    def attest(self, quote: bytes) -> str:
        """proofData for `quote` with the collateral as it is on disk now (AttestationError if unreadable)."""
        collateral = to_dcap_qvl_json(load_collateral(self.collateral_dir))
        return json.dumps({"quote": base64.b64encode(quote).decode(), "collateral": collateral})
