"""The simulated attestation service: plays Intel's IAS for simulated quotes (host side).

It checks a quote against the registered platform quoting keys of a development root and answers
with a verification report shaped like IAS's, signed by the root's report-signing certificate, as
:class:`~adytum.attestation.simulated.Evidence` (``proofDataType`` ``SIMULATED-IAS``; the format
is the verifier's, :mod:`adytum.attestation.simulated`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from adytum.attestation.errors import AttestationError, Reason
from adytum.attestation.simulated import BODY_LEN, SIMULATED_IAS, Evidence, parse_quote, verify_quote_signature
from adytum.datadir import DataDir
from adytum.issuer.devroot import DevRoot, init_dev_root

__all__ = ["REPORT_VERSION", "SimulatedAttestation", "SimulatedAttestationService", "report_timestamp", "sign_report"]

REPORT_VERSION = 4
MAX_NONCE_LEN = 64
log = logging.getLogger("adytum.issuer")


def report_timestamp(moment: datetime) -> str:
    """IAS's timestamp format: UTC, microseconds, no zone (``2025-01-02T03:04:05.000000``)."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


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
            raise AttestationError(
                Reason.MALFORMED, f"nonce must be printable text of at most {MAX_NONCE_LEN} characters"
            )
        parsed = parse_quote(quote)
        key = self._root.platforms.get(parsed.platform_id)
        if key is None:
            raise AttestationError(
                Reason.CHAIN, f"simulated quote comes from unregistered platform {parsed.platform_id.hex()[:16]}…"
            )
        verify_quote_signature(parsed, key)
        moment = at or datetime.now(UTC)
        fields = {
            "id": os.urandom(16).hex(),
            "timestamp": report_timestamp(moment),
            "version": REPORT_VERSION,
            "isvEnclaveQuoteStatus": "OK",
            "isvEnclaveQuoteBody": base64.b64encode(quote[:BODY_LEN]).decode(),
            "nonce": nonce,
            "epidPseudonym": base64.b64encode(
                hashlib.sha256(b"adytum-pseudonym/1" + parsed.platform_id).digest()
            ).decode(),
            "simulated": True,
        }
        return sign_report(self._root, fields)


class SimulatedAttestation:
    """The node's attestation service in simulation (the manager's `AttestationService`): reports on its
    enclaves' quotes signed by the data directory's development root, which requesters must trust explicitly."""

    proof_data_type = SIMULATED_IAS

    def __init__(self, data: DataDir) -> None:
        root = init_dev_root(data.platform)
        log.warning(
            "SIMULATION: enclaves are attested by the development root %s, not by hardware; "
            "requesters must trust it explicitly",
            data.platform_root,
        )
        self._service = SimulatedAttestationService(root)
        self.trusted_roots: list[x509.Certificate] = [root.root_certificate]

    def attest(self, quote: bytes) -> str:
        return self._service.verify_quote(quote, nonce=os.urandom(16).hex()).to_proof_data()
