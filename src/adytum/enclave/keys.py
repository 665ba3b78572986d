"""The worker's keys: made inside the key-manager enclave once, sealed, and reused across restarts.

Rotation replaces the encryption keys (the RSA key and the HPKE keys, `suites.py`) and keeps the ones
before them, so that work orders already encrypted to the previous keys still complete. The signing key
(the worker's identity) never changes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives.asymmetric import rsa

from .. import crypto
from ..files import write_atomic
from ..protocol import encryption_key_digest, encryption_key_get_digest
from .sealing import Sealer
from .suites import SuiteKeys

#: The label sealed keys are bound to (associated data): fixed forever, whatever the file is called.
SEAL_LABEL = "worker-keys.sealed"


class _SealedKeys(msgspec.Struct):
    worker_id: str
    signing_secret: bytes
    rsa_der: bytes
    encryption_key_nonce: str
    previous_rsa_der: bytes = b""
    suites: bytes = b""  # SuiteKeys.to_bytes
    previous_suites: bytes = b""


@dataclass
class WorkerKeys:
    worker_id: str
    signing: crypto.SigningKey
    encryption: rsa.RSAPrivateKey
    encryption_key_nonce: str
    previous_encryption: rsa.RSAPrivateKey | None = None
    verifying_key: str = ""
    encryption_key: str = ""
    encryption_key_signature: str = ""  # hex, over SHA-256 of the PEM (the worker record's field)
    key_get_signature: str = ""  # base64, over the EncryptionKeyGet digest with an empty tag
    suites: SuiteKeys = field(default_factory=SuiteKeys)
    previous_suites: SuiteKeys = field(default_factory=SuiteKeys)
    hpke_keys: dict[str, str] = field(default_factory=dict)  # suite -> hex public key (the record's)

    def __post_init__(self) -> None:
        self.hpke_keys = self.suites.public()
        self.verifying_key = self.signing.public_pem()
        self.encryption_key = crypto.rsa_public_pem(self.encryption)
        self.encryption_key_signature = self.signing.sign_digest(encryption_key_digest(self.encryption_key)).hex()
        self.key_get_signature = crypto.b64encode(
            self.signing.sign_digest(
                encryption_key_get_digest(self.worker_id, self.encryption_key, self.encryption_key_nonce)
            )
        )

    @property
    def decryption_keys(self) -> tuple[rsa.RSAPrivateKey, ...]:
        """The current encryption key first, then the one it replaced."""
        return (self.encryption,) if self.previous_encryption is None else (self.encryption, self.previous_encryption)

    def hpke_decryption_keys(self, suite: crypto.KeySuite) -> tuple[crypto.HpkeKey, ...]:
        """The current key of `suite` first, then the one it replaced (none: the worker does not offer it)."""
        return tuple(key for key in (self.suites.get(suite), self.previous_suites.get(suite)) if key is not None)

    @classmethod
    def generate(cls, worker_id: str) -> WorkerKeys:
        return cls(
            worker_id,
            crypto.SigningKey(),
            crypto.rsa_generate(),
            crypto.random_bytes(16).hex(),
            suites=SuiteKeys.generate(),
        )

    def rotated(self) -> WorkerKeys:
        """The same identity with fresh encryption keys; this one's keys become the previous."""
        return WorkerKeys(
            self.worker_id,
            self.signing,
            crypto.rsa_generate(),
            crypto.random_bytes(16).hex(),
            previous_encryption=self.encryption,
            suites=SuiteKeys.generate(),
            previous_suites=self.suites,
        )

    def with_all_suites(self) -> WorkerKeys:
        """These keys with an HPKE key for every suite this machine serves (itself if none was missing)."""
        suites = self.suites.completed()
        return self if suites is self.suites else dataclasses.replace(self, suites=suites)

    def to_bytes(self) -> bytes:
        """Every secret of the worker, serialized: what is sealed, and what a key manager provisions."""
        previous = b"" if self.previous_encryption is None else crypto.rsa_private_to_der(self.previous_encryption)
        return msgspec.msgpack.encode(
            _SealedKeys(
                self.worker_id,
                self.signing.secret,
                crypto.rsa_private_to_der(self.encryption),
                self.encryption_key_nonce,
                previous,
                self.suites.to_bytes(),
                self.previous_suites.to_bytes(),
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> WorkerKeys:
        body = msgspec.msgpack.decode(data, type=_SealedKeys)
        previous = crypto.rsa_private_from_der(body.previous_rsa_der) if body.previous_rsa_der else None
        return cls(
            body.worker_id,
            crypto.SigningKey(body.signing_secret),
            crypto.rsa_private_from_der(body.rsa_der),
            body.encryption_key_nonce,
            previous,
            suites=SuiteKeys.from_bytes(body.suites),
            previous_suites=SuiteKeys.from_bytes(body.previous_suites),
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


def rotate(path: Path, sealer: Sealer, keys: WorkerKeys) -> WorkerKeys:
    """Seal a rotated key set at `path` in place of `keys` (atomically: a crash leaves the old set or the new)."""
    new = keys.rotated()
    write_atomic(path, new.seal(sealer))
    return new
