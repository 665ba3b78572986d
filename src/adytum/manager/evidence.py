"""What the manager needs from an attestation service: evidence for a quote, and the roots it chains to.

`adytum.node` injects the implementation (in simulation, the IAS-shaped report service of the development
root; on hardware, IAS or DCAP collateral), so the manager never loads an issuer itself.
"""

from __future__ import annotations

from typing import Protocol

from cryptography import x509


class AttestationService(Protocol):
    @property
    def proof_data_type(self) -> str:
        """The worker record's `proofDataType` for the evidence `attest` makes (e.g. "SIMULATED-IAS")."""

    @property
    def trusted_roots(self) -> list[x509.Certificate]:
        """The roots that evidence chains to: what the node checks its own evidence against."""

    def attest(self, quote: bytes) -> str:
        """The proof data (a fresh report) for an enclave's quote."""
