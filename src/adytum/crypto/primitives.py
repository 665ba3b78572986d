"""The hazardous layer: AES-256-GCM under a caller-supplied IV, and raw RSA-OAEP.

Nothing outside `adytum.crypto` calls these, with one named exception: answering an Avalon client in
`--avalon-compat` mode, which must encrypt every output under the session IV the client chose (the
only form it can decrypt). That reuses one IV under one key for several messages, which breaks
AES-GCM's confidentiality and integrity guarantees for them: it is weaker, and accepted only for
compatibility. Everything else uses the recipes in `adytum.crypto`, which draw a fresh IV for every
encryption. `tests/test_crypto.py` checks the rule over the sources.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import CryptoError, LengthError

KEY_LEN = 32
IV_LEN = 12
TAG_LEN = 16


def _check_sizes(key: bytes, iv: bytes) -> None:
    if len(key) != KEY_LEN:
        raise LengthError(f"AES-256 key must be {KEY_LEN} bytes, got {len(key)}")
    if len(iv) != IV_LEN:
        raise LengthError(f"AES-GCM IV must be {IV_LEN} bytes, got {len(iv)}")


def aes_gcm_encrypt(key: bytes, iv: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    """Return ciphertext || tag under `iv`. The caller owns IV uniqueness: never reuse an IV under one key."""
    _check_sizes(key, iv)
    return AESGCM(key).encrypt(iv, plaintext, aad)


def aes_gcm_decrypt(key: bytes, iv: bytes, ciphertext: bytes, aad: bytes = b"") -> bytes:
    """Open ciphertext || tag; CryptoError if the key, IV, associated data or ciphertext is wrong."""
    _check_sizes(key, iv)
    try:
        return AESGCM(key).decrypt(iv, ciphertext, aad)
    except (InvalidTag, ValueError) as exc:
        raise CryptoError("authenticated decryption failed (wrong key or tampered data)") from exc


def _oaep(legacy_sha1: bool) -> padding.OAEP:
    algo: hashes.HashAlgorithm = hashes.SHA1() if legacy_sha1 else hashes.SHA256()
    return padding.OAEP(mgf=padding.MGF1(algorithm=algo), algorithm=algo, label=None)


def rsa_encrypt(public_key: rsa.RSAPublicKey, plaintext: bytes, *, legacy_sha1: bool = False) -> bytes:
    """RSA-OAEP of any short message (SHA-256; SHA-1 only for Avalon). Callers wrap session keys instead."""
    return public_key.encrypt(plaintext, _oaep(legacy_sha1))


def rsa_decrypt(private_key: rsa.RSAPrivateKey, ciphertext: bytes, *, legacy_sha1: bool = False) -> bytes:
    try:
        return private_key.decrypt(ciphertext, _oaep(legacy_sha1))
    except ValueError as exc:
        raise CryptoError("RSA-OAEP decryption failed (wrong key or tampered session key)") from exc
