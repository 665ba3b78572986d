"""Why attestation evidence was refused.

Every refusal, hardware or simulated, raises :class:`AttestationError` with a machine-readable
``reason`` (one :class:`Reason` per distinct failure) and a sentence a human can act on. Callers
branch on ``reason``; they show ``str(error)``.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from adytum.errors import AdytumError

__all__ = ["AttestationError", "Reason"]


class Reason(StrEnum):
    """One value per distinct way evidence can fail. Compares equal to its string value."""

    MALFORMED = "malformed"
    """The evidence or collateral cannot be parsed (truncated, bad lengths, bad encoding, bad key)."""
    UNSUPPORTED = "unsupported"
    """Well-formed but of a kind this verifier does not handle (quote version, key type, TEE, vendor)."""
    SIGNATURE = "signature"
    """The quote (attestation key over header and body) or IAS report signature does not verify."""
    QE_SIGNATURE = "qe-signature"
    """The quoting enclave's report is not signed by the PCK certificate's key."""
    QE_BINDING = "qe-binding"
    """The QE report data does not commit to the attestation key and QE authentication data."""
    CHAIN = "chain"
    """A certificate chain is broken or does not end at a trusted anchor (Intel, AMD, AWS, NVIDIA; matched by key)."""
    CRL = "crl"
    """A revocation list is not signed by the certificate it claims to come from."""
    REVOKED = "revoked"
    """A certificate is on a revocation list, or Intel lists the TCB level as Revoked."""
    EXPIRED = "expired"
    """Something (certificate, CRL, TCB info, QE identity, evidence window) ended before the verification time."""
    NOT_YET_VALID = "not-yet-valid"
    """Something starts after the verification time."""
    STALE = "stale"
    """The collateral or report is older than the policy's maximum age."""
    COLLATERAL = "collateral"
    """Collateral is missing or does not belong to this evidence (wrong FMSPC, PCE ID, TEE kind, id)."""
    COLLATERAL_SIGNATURE = "collateral-signature"
    """TCB info or QE identity is not signed, over its exact bytes, by its issuer."""
    NO_TCB_MATCH = "no-tcb-match"
    """No TCB level in the collateral is satisfied by the platform, QE or TDX module (TCB not supported)."""
    QE_IDENTITY = "qe-identity"
    """The quoting enclave is not the one Intel's QE identity describes (mrsigner, product, attributes)."""
    TDX_MODULE = "tdx-module"
    """The TDX module (MRSIGNER_SEAM, SEAM attributes, version) does not match the TCB info."""
    TCB_STATUS = "tcb-status"
    """The computed TCB status is not one the policy accepts."""
    DEBUG = "debug"
    """The enclave or TD runs in debug mode and the policy does not allow debug."""
    MEASUREMENT = "measurement"
    """A measurement (mr_enclave, mr_signer, MRTD, RTMR) is not in the policy's allow-list."""
    PRODUCT = "product"
    """The ISV product id differs from the policy's."""
    SVN = "svn"
    """The ISV security version is below the policy's minimum."""
    REPORT_DATA = "report-data"
    """The report data does not start with the value the policy expects (nonce or key binding)."""
    NONCE = "nonce"
    """The evidence's nonce is not the one the verifier expects, or the evidence has none."""
    TCB_MISMATCH = "tcb-mismatch"
    """The TCB or chip the report states is not the one its signing certificate (VCEK) was issued for."""


class AttestationError(AdytumError):
    """Evidence refused. ``reason`` is a :class:`Reason`; the message says what and where.

    ``verdict`` is set when the evidence itself verified and only the policy refused it, so a
    caller can still show what the evidence says.
    """

    def __init__(self, reason: Reason | str, message: str, verdict: Any = None) -> None:
        self.reason = Reason(reason)
        self.message = message
        self.verdict = verdict
        super().__init__(f"{self.reason.value}: {message}")


def json_object(data: str | bytes, what: str) -> dict[str, Any]:
    """Parse JSON that must be an object; anything else is MALFORMED evidence."""
    try:
        obj = json.loads(data)
    except ValueError:
        raise AttestationError(Reason.MALFORMED, f"{what} is not JSON") from None
    if not isinstance(obj, dict):
        raise AttestationError(Reason.MALFORMED, f"{what} is not a JSON object")
    return obj
