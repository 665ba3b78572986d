"""The worker's identity and attestation verdict as this node publishes it, for the dashboard.

The published evidence is checked again here exactly as a requester checks it (`verify_worker_evidence`, the
node's own roots and TCB rules), once per report; its age is counted from the report's time at each look.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..attestation import AttestationError, Policy, Verdict, verify_worker_evidence
from ..config import ManagerConfig
from ..crypto import sha256
from .evidence import AttestationService
from .publish import Publisher


class IdentityView:
    def __init__(self, config: ManagerConfig, publisher: Publisher, attestation: AttestationService) -> None:
        self.config, self.publisher, self.attestation = config, publisher, attestation
        self._checked: tuple[str, Verdict | str] | None = None  # (proof data, its verdict or the refusal)

    def identity(self) -> dict[str, Any]:
        ident, proof = self.publisher.identity, self.publisher.proof_data
        kind = self.attestation.proof_data_type
        out: dict[str, Any] = {
            "workerId": self.config.worker_id,
            "proofDataType": kind,
            "tee": "simulated" if kind.upper().startswith("SIMULATED") else "hardware",
        }
        if ident is None or not proof:
            return out | {"verdict": "not published yet"}
        out["verifyingKey"] = sha256(ident.verifying_key.encode()).hex()[:32]
        out["measurement"], out["signer"] = ident.mr_enclave, ident.mr_signer
        if self._checked is None or self._checked[0] != proof:
            self._checked = (proof, self._verify(ident.verifying_key, ident.encryption_key, ident.hpke_keys, proof))
        verdict = self._checked[1]
        if isinstance(verdict, str):
            return out | {"verdict": f"refused: {verdict}"}
        issued = verdict.issued_at or verdict.verified_at
        return out | {
            "verdict": "verified",
            "kind": verdict.kind,
            "tcbStatus": verdict.tcb_status or "",
            "debug": verdict.debug,
            "issuedAt": issued.isoformat(),
            "ageSeconds": round((datetime.now(UTC) - issued).total_seconds(), 1),
        }

    def _verify(self, verifying_key: str, encryption_key: str, hpke_keys: dict[str, str], proof: str) -> Verdict | str:
        policy = Policy(
            allow_debug=self.config.allow_debug, accepted_statuses=frozenset(self.config.accepted_tcb_statuses)
        )
        try:
            return verify_worker_evidence(
                self.attestation.proof_data_type,
                proof,
                verifying_key=verifying_key,
                encryption_key=encryption_key,
                worker_id=self.config.worker_id,
                policy=policy,
                at=datetime.now(UTC),
                trusted_roots=self.attestation.trusted_roots,
                hpke_keys=hpke_keys,
            )
        except AttestationError as exc:
            return str(exc)
