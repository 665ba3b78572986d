"""A worker as a requester sees it: ids and public keys, checked before anything is encrypted to it.

A worker is used only if its encryption key is signed by its verification key and its attestation
evidence verifies against the roots and measurements the requester trusts, binding its keys (HPKE keys
included) and the worker id (so a host can neither swap, add nor remove a key after attestation).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509

from .. import crypto
from ..attestation import AttestationError, Policy, Verdict, measurement_set, vendor_roots, verify_worker_evidence
from ..crypto import KeySuite
from ..errors import AdytumError
from ..protocol import EeaError, Status, WorkerStatus, encryption_key_digest, key_handover_digest

DEFAULT_MAX_REPORT_AGE = timedelta(days=1)


class UntrustedWorker(AdytumError):
    """The worker's keys or attestation do not check out: refuse to use it."""

    def __init__(self, message: str, reason: str = "keys") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Trust:
    """What a requester trusts: attestation roots for simulated evidence, the vendor roots for SEV-SNP,
    Nitro and NVIDIA evidence (default: the built-in AMD ARKs, AWS Nitro root and NVIDIA device root;
    Intel's anchors are built in for SGX/TDX), and the policy evidence must meet. No roots: simulated
    workers are refused; no vendor roots: SEV-SNP and Nitro workers are refused."""

    roots: tuple[x509.Certificate, ...] = ()
    policy: Policy = field(default_factory=lambda: Policy(max_collateral_age=DEFAULT_MAX_REPORT_AGE))
    vendor_roots: tuple[x509.Certificate, ...] = field(default_factory=vendor_roots)

    @classmethod
    def from_files(
        cls,
        root_files: Iterable[str | Path] = (),
        *,
        mr_enclaves: Iterable[str] = (),
        allow_debug: bool = False,
        max_age: timedelta = DEFAULT_MAX_REPORT_AGE,
    ) -> Trust:
        roots = []
        for path in root_files:
            data = Path(path).read_bytes()
            try:
                roots.extend(x509.load_pem_x509_certificates(data))
            except ValueError:
                raise ValueError(f"{path} holds no PEM certificate") from None
        return cls(
            tuple(roots),
            Policy(mr_enclaves=measurement_set(mr_enclaves), allow_debug=allow_debug, max_collateral_age=max_age),
        )

    def verify(self, info: WorkerInfo, at: datetime | None = None) -> Verdict:
        """Check the worker's evidence as of `at` (default now: an old receipt's worker is checked at its time)."""
        data = info.record.get("details", {}).get("workerTypeData", {})
        try:
            return verify_worker_evidence(
                str(data.get("proofDataType") or ""),
                str(data.get("proofData") or ""),
                verifying_key=info.verifying_key,
                encryption_key=info.encryption_key,
                worker_id=info.worker_id,
                policy=self.policy,
                at=at or datetime.now(UTC),
                trusted_roots=self.roots,
                vendor_roots=self.vendor_roots,
                hpke_keys=info.hpke_keys,
            )
        except AttestationError as exc:
            hint = (
                ""
                if self.roots
                else (
                    " (no attestation root is trusted: pass --trust-root; a development "
                    "node's root is DATA_DIR/devroot/root.pem)"
                )
            )
            raise UntrustedWorker(
                f"worker {info.worker_id[:16]}…: attestation refused: {exc}{hint}", reason=str(exc.reason)
            ) from exc


@dataclass(frozen=True)
class WorkerInfo:
    worker_id: str
    verifying_key: str
    encryption_key: str
    encryption_key_signature: str
    status: int = WorkerStatus.ACTIVE  # an int: a server may report a status this client does not know
    record: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    verdict: Verdict | None = field(default=None, compare=False, repr=False)
    #: The worker's earlier signing keys, newest first, along the record's handovers (each signature checked)
    previous_verifying_keys: tuple[str, ...] = field(default=(), compare=False, repr=False)
    #: HPKE suite name -> hex public key (`hpkeEncryptionKeys`), as attested with the other keys
    hpke_keys: dict[str, str] = field(default_factory=dict)

    @property
    def verifying_keys(self) -> tuple[str, ...]:
        """The current verification key, then the earlier ones: what the worker's older heads, receipts and
        results verify under."""
        return (self.verifying_key, *self.previous_verifying_keys)

    def descends_from(self, trusted_key: str) -> None:
        """UntrustedWorker unless the current key is `trusted_key` or was handed over to from it (offline: the
        chain is in the record, its signatures were checked by `from_record`). For a requester who trusted an
        earlier record: the new one is the same worker, not another identity under its id."""
        if _pem(trusted_key) not in map(_pem, self.verifying_keys):
            raise UntrustedWorker(
                f"worker {self.worker_id[:16]}…: its signing key does not descend from the key trusted before "
                "(no handover chain leads from it): another identity under the same worker id"
            )

    @property
    def suites(self) -> tuple[KeySuite, ...]:
        """The key-encryption suites this client can use with the worker: RSA, then its HPKE suites."""
        known = {suite.value: suite for suite in KeySuite}
        return (KeySuite.RSA_OAEP_3072, *(known[name] for name in self.hpke_keys if name in known))

    @classmethod
    def verified(cls, worker_id: str, record: dict[str, Any], trust: Trust, at: datetime | None = None) -> WorkerInfo:
        """Parse a `WorkerRetrieve` result and check keys and attestation (as of `at`, default now);
        UntrustedWorker if anything fails."""
        info = cls.from_record(worker_id, record)
        return dataclasses.replace(info, verdict=trust.verify(info, at))

    @classmethod
    def from_record(cls, worker_id: str, record: dict[str, Any]) -> WorkerInfo:
        """Parse a `WorkerRetrieve` result and check the key signature only (no attestation)."""
        try:
            data = record["details"]["workerTypeData"]
            hpke_keys = data.get("hpkeEncryptionKeys") or {}
            if not (isinstance(hpke_keys, dict) and all(isinstance(v, str) for v in hpke_keys.values())):
                raise ValueError("hpkeEncryptionKeys (an object of hex keys)")
            info = cls(
                worker_id=worker_id.lower(),
                verifying_key=data["verificationKey"],
                encryption_key=data["encryptionKey"],
                encryption_key_signature=data["encryptionKeySignature"],
                status=int(record.get("status", WorkerStatus.ACTIVE)),
                record=record,
                hpke_keys=hpke_keys,
            )
            handovers = data.get("signingKeyHandovers") or []
        except (KeyError, TypeError, ValueError) as exc:
            raise UntrustedWorker(f"worker record lacks {exc}") from None
        info = dataclasses.replace(
            info, previous_verifying_keys=verify_handovers(info.worker_id, handovers, info.verifying_key)
        )
        info.check_keys()
        return info

    def check_keys(self) -> None:
        """The encryption key must be signed by the verification key (Avalon §4.8); the HPKE keys (bound by
        the attestation, not signed) must be keys of their suites."""
        try:
            crypto.verify_digest(
                self.verifying_key,
                encryption_key_digest(self.encryption_key),
                bytes.fromhex(self.encryption_key_signature),
            )
            crypto.rsa_public_from_pem(self.encryption_key)
        except (crypto.CryptoError, ValueError) as exc:
            raise UntrustedWorker(
                f"worker {self.worker_id[:16]}…: encryption key is not signed by its verification key ({exc})"
            ) from None
        for suite in self.suites[1:]:
            try:
                crypto.hpke_public_key(suite, bytes.fromhex(self.hpke_keys[suite.value]))
            except (crypto.CryptoError, ValueError) as exc:
                raise UntrustedWorker(f"worker {self.worker_id[:16]}…: its {suite} key is malformed ({exc})") from None


def verify_handovers(worker_id: str, handovers: list[Any], verifying_key: str) -> tuple[str, ...]:
    """Check a record's `signingKeyHandovers` (offline): each step signed by its previous key over
    `key_handover_digest`, each leading on from the one before, the last to `verifying_key`. Returns the
    earlier keys, newest first; UntrustedWorker naming the broken step otherwise."""
    keys: list[str] = []
    for index, step in enumerate(handovers):
        where = f"worker {worker_id[:16]}…: signing-key handover {index}"
        try:
            previous, following, signature = step["previousKey"], step["nextKey"], step["signature"]
            if keys and _pem(previous) != _pem(keys[-1]):
                raise UntrustedWorker(f"{where} does not start from the key the one before handed over to")
            digest = key_handover_digest(worker_id, index, previous, following)
            crypto.verify_digest(previous, digest, crypto.b64decode(signature))
        except (KeyError, TypeError) as exc:
            raise UntrustedWorker(f"{where} lacks {exc}") from None
        except (crypto.CryptoError, ValueError) as exc:
            raise UntrustedWorker(f"{where} is not signed by the key it hands over from ({exc})") from None
        keys += [previous, following] if not keys else [following]
    if keys and _pem(keys[-1]) != _pem(verifying_key):
        raise UntrustedWorker(
            f"worker {worker_id[:16]}…: the signing-key handovers do not lead to its verification key"
        )
    return tuple(reversed(keys[:-1]))


def _pem(key: str) -> str:
    return key.strip()


def require_active(info: WorkerInfo) -> None:
    if info.status != WorkerStatus.ACTIVE:
        raise EeaError(Status.INVALID_PARAMETER, f"worker {info.worker_id} is not active")
