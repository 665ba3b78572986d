"""The simulated attestation service: plays Intel's IAS for simulated quotes.

It checks a quote against the registered platform quoting keys and answers with a verification
report shaped like IAS's (``id``, ``timestamp``, ``version``, ``isvEnclaveQuoteStatus``,
``isvEnclaveQuoteBody``, ``nonce``, ``epidPseudonym``) plus ``"simulated": true``, signed
(ECDSA P-256, SHA-256, DER, base64) by the development report-signing certificate.

The worker publishes the result as ``proofDataType`` :data:`PROOF_DATA_TYPE` (``"SIMULATED-IAS"``)
with ``proofData`` the JSON text (Avalon's DCAP proofData keys, plus ``simulated``)::

    {"verification_report": "<exact report JSON text>",
     "report_signature": "<base64 DER ECDSA signature over the report's UTF-8 bytes>",
     "report_signing_certificate": "<PEM: report-signing certificate, then the root>",
     "simulated": true}
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from adytum.attestation.devroot import DevRoot
from adytum.attestation.errors import AttestationError, Reason
from adytum.attestation.quote import BODY_LEN, parse_quote, verify_quote_signature

__all__ = ["PROOF_DATA_TYPE", "REPORT_VERSION", "Evidence", "SimulatedAttestationService", "sign_report", "report_timestamp"]

PROOF_DATA_TYPE = "SIMULATED-IAS"
REPORT_VERSION = 4
MAX_NONCE_LEN = 64


def report_timestamp(moment: datetime) -> str:
    """IAS's timestamp format: UTC, microseconds, no zone (``2025-01-02T03:04:05.000000``)."""
    return moment.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Evidence:
    """A signed verification report: exact report bytes, signature (DER), PEM certificate chain."""

    report: bytes
    signature: bytes
    certificates: bytes

    def to_proof_data(self) -> str:
        """The worker record's ``proofData`` (see the module docstring)."""
        return json.dumps(
            {
                "verification_report": self.report.decode("utf-8"),
                "report_signature": base64.b64encode(self.signature).decode(),
                "report_signing_certificate": self.certificates.decode("ascii"),
                "simulated": True,
            }
        )

    @classmethod
    def from_proof_data(cls, proof_data: str) -> Evidence:
        """Parse ``proofData``; ``MALFORMED`` when it is not the simulated format."""
        try:
            obj = json.loads(proof_data)
            if not isinstance(obj, dict) or obj.get("simulated") is not True:
                raise ValueError("not a simulated proofData object")
            report, sig, certs = obj["verification_report"], obj["report_signature"], obj["report_signing_certificate"]
            if not all(isinstance(v, str) for v in (report, sig, certs)):
                raise ValueError("fields must be strings")
            return cls(report.encode("utf-8"), base64.b64decode(sig, validate=True), certs.encode("ascii"))
        except (ValueError, KeyError, TypeError, UnicodeError) as exc:
            raise AttestationError(Reason.MALFORMED, f"SIMULATED-IAS proofData: {exc}") from None


def sign_report(dev_root: DevRoot, fields: dict[str, Any]) -> Evidence:
    """Serialise ``fields`` as the report and sign it with the development report-signing key."""
    report = json.dumps(fields, separators=(",", ":")).encode("utf-8")
    signature = dev_root.signing_key.sign(report, ec.ECDSA(hashes.SHA256()))
    return Evidence(report, signature, dev_root.chain_pem)


class SimulatedAttestationService:
    """Verifies simulated quotes against registered platforms and signs reports about them."""

    def __init__(self, dev_root: DevRoot) -> None:
        self._root = dev_root

    def verify_quote(self, quote: bytes, nonce: str, *, at: datetime | None = None) -> Evidence:
        """Check ``quote`` comes from a registered platform; return the signed report.

        Raises ``CHAIN`` for an unregistered platform, ``SIGNATURE`` for a bad quote signature,
        ``MALFORMED`` for a bad quote or nonce. ``at`` is the report time (default: now).
        """
        if not isinstance(nonce, str) or len(nonce) > MAX_NONCE_LEN or not nonce.isprintable():
            raise AttestationError(Reason.MALFORMED, f"nonce must be printable text of at most {MAX_NONCE_LEN} characters")
        parsed = parse_quote(quote)
        key = self._root.platforms.get(parsed.platform_id)
        if key is None:
            raise AttestationError(Reason.CHAIN, f"simulated quote comes from unregistered platform {parsed.platform_id.hex()[:16]}…")
        verify_quote_signature(parsed, key)
        moment = at or datetime.now(timezone.utc)
        fields = {
            "id": os.urandom(16).hex(),
            "timestamp": report_timestamp(moment),
            "version": REPORT_VERSION,
            "isvEnclaveQuoteStatus": "OK",
            "isvEnclaveQuoteBody": base64.b64encode(quote[:BODY_LEN]).decode(),
            "nonce": nonce,
            "epidPseudonym": base64.b64encode(hashlib.sha256(b"adytum-pseudonym/1" + parsed.platform_id).digest()).decode(),
            "simulated": True,
        }
        return sign_report(self._root, fields)
