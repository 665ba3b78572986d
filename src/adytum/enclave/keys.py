"""The worker's keys: made inside the key-manager enclave once, sealed, and reused across restarts.

Rotation replaces the encryption key and keeps the one before it, so that work orders already
encrypted to the previous key still complete. The signing key (the worker's identity) never changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives.asymmetric import rsa

from .. import crypto
from ..files import write_atomic
from ..protocol import encryption_key_digest, encryption_key_get_digest
from .sealing import Sealer

#: The label sealed keys are bound to (associated data): fixed forever, whatever the file is called.
SEAL_LABEL = "worker-keys.sealed"


class _SealedKeys(msgspec.Struct):
    worker_id: str
    signing_secret: bytes
    rsa_der: bytes
    encryption_key_nonce: str
    previous_rsa_der: bytes = b""


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

    def __post_init__(self) -> None:
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

    @classmethod
    def generate(cls, worker_id: str) -> WorkerKeys:
        return cls(worker_id, crypto.SigningKey(), crypto.rsa_generate(), crypto.random_bytes(16).hex())

    def rotated(self) -> WorkerKeys:
        """The same identity with a fresh encryption key; this one's key becomes the previous."""
        return WorkerKeys(
            self.worker_id,
            self.signing,
            crypto.rsa_generate(),
            crypto.random_bytes(16).hex(),
            previous_encryption=self.encryption,
        )

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
    return keys


def rotate(path: Path, sealer: Sealer, keys: WorkerKeys) -> WorkerKeys:
    """Seal a rotated key set at `path` in place of `keys` (atomically: a crash leaves the old set or the new)."""
    new = keys.rotated()
    write_atomic(path, new.seal(sealer))
    return new
