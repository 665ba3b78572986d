"""The worker's HPKE keys: one recipient key per HPKE suite it offers, beside its RSA key (`keys.py`).

They are made in the key-manager enclave with the RSA key, sealed and provisioned with it, and rotated
with it; the suites a worker offers are the ones its key set holds. A set sealed before a suite existed,
or on a machine whose OpenSSL lacked it, is completed by the key manager (`completed`).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from .. import crypto
from ..crypto import HpkeKey, KeySuite

_decoder = msgspec.msgpack.Decoder(dict[str, bytes])


@dataclass(frozen=True)
class SuiteKeys:
    """HPKE recipient keys by suite (none: an RSA-only worker)."""

    keys: tuple[HpkeKey, ...] = ()

    @classmethod
    def generate(cls) -> SuiteKeys:
        """A fresh key for every HPKE suite this machine can serve."""
        return cls(tuple(HpkeKey.generate(suite) for suite in crypto.hpke_suites()))

    def completed(self) -> SuiteKeys:
        """This set with a fresh key for each suite this machine can serve that it lacks (itself if none)."""
        have = {key.suite for key in self.keys}
        missing = tuple(HpkeKey.generate(suite) for suite in crypto.hpke_suites() if suite not in have)
        return SuiteKeys(self.keys + missing) if missing else self

    def get(self, suite: KeySuite) -> HpkeKey | None:
        return next((key for key in self.keys if key.suite is suite), None)

    def public(self) -> dict[str, str]:
        """Suite name -> hex public key: the record's `hpkeEncryptionKeys`, what the attestation binds."""
        return {key.suite.value: key.public.hex() for key in self.keys}

    def to_bytes(self) -> bytes:
        return msgspec.msgpack.encode({key.suite.value: key.secret for key in self.keys})

    @classmethod
    def from_bytes(cls, data: bytes) -> SuiteKeys:
        """What `to_bytes` made (empty: no keys); a suite this build does not know is dropped."""
        if not data:
            return cls()
        known = {suite.value: suite for suite in KeySuite if suite is not KeySuite.RSA_OAEP_3072}
        return cls(
            tuple(HpkeKey(known[name], secret) for name, secret in _decoder.decode(data).items() if name in known)
        )
