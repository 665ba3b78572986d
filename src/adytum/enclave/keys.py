"""The worker's keys: made inside the enclave once, sealed, and reused across restarts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives.asymmetric import rsa

from .. import crypto
from ..protocol import encryption_key_digest
from ..files import write_atomic
from .sealing import Sealer

KEYS_FILE = "worker-keys.sealed"


class _SealedKeys(msgspec.Struct):
    worker_id: str
    signing_secret: bytes
    rsa_der: bytes
    encryption_key_nonce: str


@dataclass
class WorkerKeys:
    worker_id: str
    signing: crypto.SigningKey
    encryption: rsa.RSAPrivateKey
    encryption_key_nonce: str
    verifying_key: str = ""
    encryption_key: str = ""
    encryption_key_signature: str = ""

    def __post_init__(self) -> None:
        self.verifying_key = self.signing.public_pem()
        self.encryption_key = crypto.rsa_public_pem(self.encryption)
        self.encryption_key_signature = self.signing.sign_digest(
            encryption_key_digest(self.encryption_key)).hex()

    @classmethod
    def generate(cls, worker_id: str) -> "WorkerKeys":
        return cls(worker_id, crypto.SigningKey(), crypto.rsa_generate(),
                   crypto.random_bytes(16).hex())

    def seal(self, sealer: Sealer) -> bytes:
        body = _SealedKeys(self.worker_id, self.signing.secret,
                           crypto.rsa_private_to_der(self.encryption), self.encryption_key_nonce)
        return sealer.seal(KEYS_FILE, msgspec.msgpack.encode(body))

    @classmethod
    def unseal(cls, sealer: Sealer, blob: bytes) -> "WorkerKeys":
        body = msgspec.msgpack.decode(sealer.unseal(KEYS_FILE, blob), type=_SealedKeys)
        return cls(body.worker_id, crypto.SigningKey(body.signing_secret),
                   crypto.rsa_private_from_der(body.rsa_der), body.encryption_key_nonce)


def load_or_create(directory: Path, sealer: Sealer, worker_id: str) -> WorkerKeys:
    """Unseal the worker's keys, or make and seal them on first start (race-safe across enclaves)."""
    path = directory / KEYS_FILE
    if not path.exists():  # first start; if a sibling enclave seals first, everyone uses its keys
        write_atomic(path, WorkerKeys.generate(worker_id).seal(sealer), exclusive=True)
    keys = WorkerKeys.unseal(sealer, path.read_bytes())
    if keys.worker_id != worker_id:
        raise ValueError(f"sealed keys belong to worker {keys.worker_id}, not {worker_id}")
    return keys
