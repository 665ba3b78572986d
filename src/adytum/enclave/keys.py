"""The worker's keys: made inside the key-manager enclave once, sealed, and reused across restarts.

Rotation replaces the encryption keys (the RSA key and the HPKE key of each suite, `suites.py`) and keeps the
ones it replaced for a while (the history), so that work orders already encrypted to a previous key still
complete: each previous key serves for `history_seconds`
after the rotation that retired it (the host sets it at each rotation; by default one attestation lifetime,
the longest a record that published the key stays fresh), and at most MAX_HISTORY of them are kept. The
worker id never changes. The signing key changes only when the operator asks (`rotated(new_signing=True)`): the
old key signs a handover to the new one, and the chain of handovers travels with the keys, so that heads,
receipts and results signed under an earlier key still verify for whoever follows the chain.

The worker's first signing secret (`root_secret`) keeps the uses requesters never see: the state keys, the
counters between enclaves, and the key manager's anchor records, identity and witness statements (`anchor_view`).
Rotating the signing key therefore neither re-keys the workload state nor starts the anchor afresh.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives.asymmetric import rsa

from .. import crypto
from ..channel import Handover
from ..files import write_atomic
from ..protocol import encryption_key_digest, encryption_key_get_digest, key_handover_digest
from .sealing import Sealer
from .suites import SuiteKeys

#: The label sealed keys are bound to (associated data): fixed forever, whatever the file is called.
SEAL_LABEL = "worker-keys.sealed"
#: Previous encryption keys kept at most, however often the host rotates (each is a few kB sealed).
MAX_HISTORY = 64


class _SealedRetired(msgspec.Struct):
    rsa_der: bytes
    nonce: str
    retired_at: float
    suites: bytes = b""  # SuiteKeys.to_bytes: the HPKE keys retired with this RSA key


class _SealedKeys(msgspec.Struct):
    worker_id: str
    signing_secret: bytes
    rsa_der: bytes
    encryption_key_nonce: str
    previous_rsa_der: bytes = b""  # the one previous key of sealed sets from before the history (read only)
    history: list[_SealedRetired] = []
    history_seconds: float = 0.0
    root_secret: bytes = b""  # empty: the signing secret (never rotated)
    handovers: list[Handover] = []
    suites: bytes = b""  # SuiteKeys.to_bytes


@dataclass(frozen=True)
class RetiredKey:
    """One previous encryption key (its private key and nonce) and the HPKE keys retired with it, with when a
    rotation replaced them."""

    encryption: rsa.RSAPrivateKey
    nonce: str
    retired_at: float  # seconds since the epoch, the key manager's clock
    suites: SuiteKeys = field(default_factory=SuiteKeys)

    @property
    def encryption_key(self) -> str:
        return crypto.rsa_public_pem(self.encryption)


@dataclass
class WorkerKeys:
    worker_id: str
    signing: crypto.SigningKey
    encryption: rsa.RSAPrivateKey
    encryption_key_nonce: str
    history: list[RetiredKey] = field(default_factory=list)  # newest first
    history_seconds: float = 0.0  # how long after its retirement a previous key still serves
    root_secret: bytes = b""  # the worker's first signing secret (empty: this signing key's)
    handovers: list[Handover] = field(default_factory=list)  # from the first signing key to this one
    verifying_key: str = ""
    encryption_key: str = ""
    encryption_key_signature: str = ""  # hex, over SHA-256 of the PEM (the worker record's field)
    key_get_signature: str = ""  # base64, over the EncryptionKeyGet digest with an empty tag
    suites: SuiteKeys = field(default_factory=SuiteKeys)  # one HPKE key per suite offered
    hpke_keys: dict[str, str] = field(default_factory=dict)  # suite -> hex public key (the record's)

    def __post_init__(self) -> None:
        self.hpke_keys = self.suites.public()
        self.root_secret = self.root_secret or self.signing.secret
        self.verifying_key = self.signing.public_pem()
        self.encryption_key = crypto.rsa_public_pem(self.encryption)
        self.encryption_key_signature = self.signing.sign_digest(encryption_key_digest(self.encryption_key)).hex()
        self.key_get_signature = crypto.b64encode(
            self.signing.sign_digest(
                encryption_key_get_digest(self.worker_id, self.encryption_key, self.encryption_key_nonce)
            )
        )

    @property
    def verifying_keys(self) -> tuple[str, ...]:
        """The current verifying key first, then each earlier one along the handover chain."""
        return (self.verifying_key, *(h.previous_key for h in reversed(self.handovers)))

    def anchor_view(self) -> WorkerKeys:
        """These keys signing with the worker's first key: what the key manager's identity, anchor records and
        witness statements use, so that its witnesses and their pinned keys outlive a signing-key rotation."""
        if self.root_secret == self.signing.secret:
            return self
        root = crypto.SigningKey(self.root_secret)
        return WorkerKeys(
            self.worker_id,
            root,
            self.encryption,
            self.encryption_key_nonce,
            self.history,
            self.history_seconds,
            suites=self.suites,
        )

    def serves_until(self, retired: RetiredKey) -> float:
        return retired.retired_at + self.history_seconds

    def decryption_keys(self, now: float) -> tuple[rsa.RSAPrivateKey, ...]:
        """The current encryption key first, then the previous ones still serving at `now`, newest first."""
        return (self.encryption, *(r.encryption for r in self.history if now < self.serves_until(r)))

    def hpke_decryption_keys(self, suite: crypto.KeySuite, now: float) -> tuple[crypto.HpkeKey, ...]:
        """The current key of `suite` first, then the previous ones still serving at `now` (none: the worker
        does not offer the suite)."""
        keys = (self.suites.get(suite), *(r.suites.get(suite) for r in self.history if now < self.serves_until(r)))
        return tuple(key for key in keys if key is not None)

    def expired(self, now: float) -> list[RetiredKey]:
        """Previous keys still held whose time is over (deleted at the next rotation): to name them in refusals."""
        return [r for r in self.history if now >= self.serves_until(r)]

    @classmethod
    def generate(cls, worker_id: str) -> WorkerKeys:
        return cls(
            worker_id,
            crypto.SigningKey(),
            crypto.rsa_generate(),
            crypto.random_bytes(16).hex(),
            suites=SuiteKeys.generate(),
        )

    def rotated(self, history_seconds: float, now: float | None = None, new_signing: bool = False) -> WorkerKeys:
        """The same worker with fresh encryption keys (RSA and HPKE); this one's join the history, which keeps
        the previous keys retired less than `history_seconds` ago (at most MAX_HISTORY). `new_signing`: a fresh
        signing key too, which the current one hands over to."""
        now = time.time() if now is None else now
        retired = RetiredKey(self.encryption, self.encryption_key_nonce, now, self.suites)
        kept = [r for r in self.history if now < r.retired_at + history_seconds]
        signing, handovers = self.signing, self.handovers
        if new_signing:
            signing = crypto.SigningKey()
            next_key = signing.public_pem()
            digest = key_handover_digest(self.worker_id, len(handovers), self.verifying_key, next_key)
            step = Handover(self.verifying_key, next_key, crypto.b64encode(self.signing.sign_digest(digest)))
            handovers = [*handovers, step]
        return WorkerKeys(
            self.worker_id,
            signing,
            crypto.rsa_generate(),
            crypto.random_bytes(16).hex(),
            history=[retired, *kept][:MAX_HISTORY] if history_seconds > 0 else [],
            history_seconds=history_seconds,
            root_secret=self.root_secret,
            handovers=handovers,
            suites=SuiteKeys.generate(),
        )

    def with_all_suites(self) -> WorkerKeys:
        """These keys with an HPKE key for every suite this machine serves (itself if none was missing)."""
        suites = self.suites.completed()
        return self if suites is self.suites else dataclasses.replace(self, suites=suites)

    def to_bytes(self) -> bytes:
        """Every secret of the worker, serialized: what is sealed, and what a key manager provisions."""
        return msgspec.msgpack.encode(
            _SealedKeys(
                self.worker_id,
                self.signing.secret,
                crypto.rsa_private_to_der(self.encryption),
                self.encryption_key_nonce,
                history=[
                    _SealedRetired(crypto.rsa_private_to_der(r.encryption), r.nonce, r.retired_at, r.suites.to_bytes())
                    for r in self.history
                ],
                history_seconds=self.history_seconds,
                root_secret=b"" if self.root_secret == self.signing.secret else self.root_secret,
                handovers=self.handovers,
                suites=self.suites.to_bytes(),
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> WorkerKeys:
        body = msgspec.msgpack.decode(data, type=_SealedKeys)
        history = [
            RetiredKey(crypto.rsa_private_from_der(r.rsa_der), r.nonce, r.retired_at, SuiteKeys.from_bytes(r.suites))
            for r in body.history
        ]
        history_seconds = body.history_seconds
        if body.previous_rsa_der and not history:  # sealed before the history: its one previous key, for one day
            history, history_seconds = (
                [RetiredKey(crypto.rsa_private_from_der(body.previous_rsa_der), "", time.time())],
                86400.0,
            )
        return cls(
            body.worker_id,
            crypto.SigningKey(body.signing_secret),
            crypto.rsa_private_from_der(body.rsa_der),
            body.encryption_key_nonce,
            history,
            history_seconds,
            body.root_secret,
            body.handovers,
            suites=SuiteKeys.from_bytes(body.suites),
        )

    def seal(self, sealer: Sealer) -> bytes:
        return sealer.seal(SEAL_LABEL, self.to_bytes())

    @classmethod
    def unseal(cls, sealer: Sealer, blob: bytes) -> WorkerKeys:
        return cls.from_bytes(sealer.unseal(SEAL_LABEL, blob))


def load_or_create(path: Path, sealer: Sealer, worker_id: str) -> WorkerKeys:
    """Unseal the worker's keys from `path`, or make and seal them there on first start."""
    if not path.exists():  # exclusive: two key managers racing on one directory end up with one set
        write_atomic(path, WorkerKeys.generate(worker_id).seal(sealer), exclusive=True)
    keys = WorkerKeys.unseal(sealer, path.read_bytes())
    if keys.worker_id != worker_id:
        raise ValueError(f"sealed keys belong to worker {keys.worker_id}, not {worker_id}")
    complete = keys.with_all_suites()  # sealed before an HPKE suite was offered: add its key, once
    if complete is not keys:
        write_atomic(path, complete.seal(sealer))
    return complete


def rotate(
    path: Path, sealer: Sealer, keys: WorkerKeys, history_seconds: float, new_signing: bool = False
) -> WorkerKeys:
    """Seal a rotated key set at `path` in place of `keys` (atomically: a crash leaves the old set or the new)."""
    new = keys.rotated(history_seconds, new_signing=new_signing)
    write_atomic(path, new.seal(sealer))
    return new
