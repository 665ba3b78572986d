"""Attest and publish: every enclave identity is attested once, checked as a requester would, and the
worker's record (`protocol.WorkerRecord`) is published in the store, where the listener reads it.

An enclave's admission (each start and restart) attests its identity; publishing that same identity
reuses the evidence made at admission instead of asking the attestation service a second time.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec

from ..attestation.errors import AttestationError
from ..attestation.policy import Policy, measurement_set
from ..attestation.verify import verify_worker_evidence
from ..channel import Identity
from ..config import ManagerConfig
from ..crypto import KeySuite
from ..protocol import (
    PreviousEncryptionKey,
    SigningKeyHandover,
    WorkerDetails,
    WorkerRecord,
    WorkerStatus,
    WorkerType,
    WorkerTypeData,
)
from ..store import GroupCommit, Store, WorkerRow
from .anchor import describe as describe_anchor
from .enclave import succeeds
from .errors import EnclaveStartError
from .evidence import AttestationService

#: Admissions whose evidence is kept for publishing (restarts between two publications add to it).
_ADMITTED_KEPT = 64


class Publisher:
    """The worker's published identity and evidence; `identity` is None until the first `publish`."""

    def __init__(
        self,
        config: ManagerConfig,
        attestation: AttestationService,
        committer: GroupCommit,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`clock` is the verification time (tests verify old hardware evidence at its own time)."""
        self.config = config
        self.clock = clock
        self.attestation = attestation
        self.committer = committer
        self.identity: Identity | None = None
        self.proof_data = ""
        self._admitted: OrderedDict[bytes, str] = OrderedDict()  # quote -> its evidence, not yet published

    def admit(self, ident: Identity) -> None:
        """A work-order enclave's start or restart: its evidence must verify under this node's policy and
        its signing key be the published worker's. Raises EnclaveStartError to keep it out of service."""
        proof = self._attest(ident, registered=True)
        if self.identity is not None and not succeeds(ident, self.identity.verifying_key):
            raise EnclaveStartError("enclave holds another worker identity than the one published")
        self._admitted[ident.quote] = proof
        while len(self._admitted) > _ADMITTED_KEPT:
            self._admitted.popitem(last=False)

    def admit_key_manager(self, ident: Identity) -> None:
        """The key manager's evidence must verify under this node's policy (it is never registered)."""
        self._attest(ident, registered=False)

    async def publish(self, ident: Identity) -> None:
        """Make `ident` the worker's registered record, fresh for attestation_lifetime: with the evidence of
        its admission if it was just admitted, else with a new report."""
        proof = self._admitted.pop(ident.quote, None) or self._attest(ident, registered=True)
        self.proof_data, self.identity = proof, ident
        await self.committer.persist(Store.put_worker, self._row(ident, proof))

    def record(self, ident: Identity, proof: str) -> WorkerRecord:
        """The EEA worker record (Avalon's shape, keys as PEM; the HPKE keys beside them, hex)."""
        return WorkerRecord(
            worker_type=WorkerType.TEE_SGX,
            organization_id=self.config.organization_id,
            application_type_id=self.config.application_type_id,
            status=WorkerStatus.ACTIVE,
            details=WorkerDetails(
                workloads=ident.workloads,
                key_encryption_algorithms=[KeySuite.RSA_OAEP_3072.value, *ident.hpke_keys],
                worker_type_data=WorkerTypeData(
                    verification_key=ident.verifying_key,
                    encryption_key=ident.encryption_key,
                    encryption_key_nonce=ident.encryption_key_nonce,
                    encryption_key_signature=ident.encryption_key_signature,
                    extended_measurements=[ident.mr_enclave, ident.mr_signer],
                    proof_data_type=self.attestation.proof_data_type,
                    proof_data=proof,
                    encryption_key_get_signature=ident.key_get_signature,
                    rollback_protection=describe_anchor(self.config),
                    previous_encryption_keys=[
                        PreviousEncryptionKey(p.encryption_key, p.nonce, p.retired_at, p.until)
                        for p in ident.previous_keys
                    ],
                    signing_key_handovers=[
                        SigningKeyHandover(h.previous_key, h.next_key, h.signature) for h in ident.handovers
                    ],
                    hpke_encryption_keys=ident.hpke_keys,
                ),
            ),
        )

    def _row(self, ident: Identity, proof: str) -> WorkerRow:
        return WorkerRow(
            self.config.worker_id,
            WorkerType.TEE_SGX,
            self.config.organization_id,
            self.config.application_type_id,
            WorkerStatus.ACTIVE,
            msgspec.json.encode(self.record(ident, proof)).decode(),
            time.time() + self.config.attestation_lifetime,
        )

    def _attest(self, ident: Identity, registered: bool) -> str:
        """Have the attestation service report on the enclave's quote, and check the report as a requester
        would: the node never registers evidence it would refuse."""
        allowed = self.config.allowed_mr_enclaves if registered else ()  # the allow-list is for what we register
        policy = Policy(
            mr_enclaves=measurement_set(allowed),
            allow_debug=self.config.allow_debug,
            accepted_statuses=frozenset(self.config.accepted_tcb_statuses),
        )
        try:
            proof = self.attestation.attest(ident.quote)
            verify_worker_evidence(
                self.attestation.proof_data_type,
                proof,
                verifying_key=ident.verifying_key,
                encryption_key=ident.encryption_key,
                worker_id=ident.worker_id,
                policy=policy,
                at=self.clock(),
                trusted_roots=self.attestation.trusted_roots,
                hpke_keys=ident.hpke_keys,
            )
        except AttestationError as exc:
            raise EnclaveStartError(f"enclave evidence refused by this node: {exc}") from None
        return proof
