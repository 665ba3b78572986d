"""Sealing: data only this enclave (on this platform) can read back.

The sealing key is HKDF(platform secret, measurement); the measurement is also the associated data,
so a changed enclave cannot unseal. In simulation the platform secret is a 0600 file in the data
directory (on SGX it is the CPU's sealing key, see docs/hardware.md). Files are written atomically.
"""

from __future__ import annotations

from pathlib import Path

from .. import crypto
from ..datadir import DataDir
from ..errors import AdytumError
from ..files import write_atomic


class UnsealError(AdytumError):
    """Sealed data does not open: another platform, another enclave build, or tampering."""


def platform_secret(data_dir: Path) -> bytes:
    """The simulated platform's secret, created once per data directory; UnsealError naming the file if it is
    missing while keys sealed with it exist (a new one would never open them)."""
    data = DataDir(data_dir)
    path = data.platform_secret
    try:
        return path.read_bytes()
    except FileNotFoundError:
        if data.kme_keys.exists():
            raise UnsealError(
                f"the platform secret {path} is missing, and {data.kme_keys} was sealed with it: restore the "
                f"file from a backup, or move {data.kme_keys} aside to start a new worker identity"
            ) from None
    write_atomic(path, crypto.random_bytes(32), exclusive=True)  # if another enclave won the race: theirs
    return path.read_bytes()


class Sealer:
    def __init__(self, secret: bytes, measurement: bytes = b"") -> None:
        self._measurement = measurement
        self._key = crypto.hkdf(secret, b"adytum seal v1" + measurement)

    def seal(self, name: str, data: bytes) -> bytes:
        return crypto.aead_encrypt(self._key, data, self._aad(name)).to_bytes()

    def unseal(self, name: str, blob: bytes) -> bytes:
        try:
            return crypto.aead_decrypt(self._key, crypto.Encrypted.from_bytes(blob), self._aad(name))
        except crypto.CryptoError:
            raise UnsealError(
                f"sealed {name!r} does not unseal: it was sealed on another platform "
                "or by a different enclave build, or it was altered"
            ) from None

    def _aad(self, name: str) -> bytes:
        return name.encode() + b"\0" + self._measurement
